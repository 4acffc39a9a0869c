"""A source checkout as users meet it: the build finds (or fetches) ONNX Runtime's headers or says what
to do, and the in-tree ``bytetx`` package, which shadows the installed one from the checkout's root,
finds exporter/, graph_rewrite/ and the built library, or says where it looked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
needs_cmake = pytest.mark.skipif(
    shutil.which("cmake") is None or shutil.which("c++") is None, reason="needs cmake and a C++ compiler"
)


def _environment(**changes: str) -> dict[str, str]:
    unset = ("ORT_INCLUDE_DIR", "PYTHONPATH", "BYTETX_ORT_LIBRARY")
    environment = {k: v for k, v in os.environ.items() if k not in unset}
    return environment | changes


def _bare_tree(tmp_path: Path) -> Path:
    """A copy of the build's entry points without .deps/ (its headers are looked up before any source
    is compiled)."""
    tree = tmp_path / "src"
    (tree / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "CMakeLists.txt", tree)
    shutil.copy(ROOT / "scripts" / "fetch_ort_headers.sh", tree / "scripts")
    return tree


def _configure(tree: Path, build: Path, *defines: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    compiler = shutil.which("c++")
    return subprocess.run(
        [shutil.which("cmake"), "-S", str(tree), "-B", str(build), f"-DCMAKE_CXX_COMPILER={compiler}",
         "-DBYTETX_BUILD_CUDA=OFF", *defines],
        check=False, capture_output=True, text=True, env=env, timeout=300,
    )


@needs_cmake
@pytest.mark.skipif(Path("/usr/include/onnxruntime/onnxruntime_c_api.h").is_file(),
                    reason="this machine has the system's ONNX Runtime headers")
def test_configure_without_headers_and_fetching_says_what_to_do(tmp_path):
    tree = _bare_tree(tmp_path)
    result = _configure(tree, tmp_path / "build", "-DBYTETX_FETCH_ORT_HEADERS=OFF", env=_environment())
    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert (f"ONNX Runtime headers (onnxruntime_c_api.h) not found (looked in "
            f"{tree}/.deps/onnxruntime/include and /usr/include/onnxruntime)") in message
    assert "apt-get install libonnxruntime-dev" in message and "-DORT_INCLUDE_DIR=<folder>" in message


@needs_cmake
@pytest.mark.skipif(Path("/usr/include/onnxruntime/onnxruntime_c_api.h").is_file(),
                    reason="this machine has the system's ONNX Runtime headers")
def test_configure_fetches_the_headers_or_says_why_it_cannot(tmp_path):
    tools = tmp_path / "bin"  # an apt-get that cannot reach its mirrors, as on a machine offline
    tools.mkdir()
    (tools / "apt-get").write_text("#!/bin/sh\necho 'E: could not resolve deb.debian.org' >&2\nexit 100\n")
    (tools / "apt-get").chmod(0o755)
    tree = _bare_tree(tmp_path)
    offline = _environment(PATH=f"{tools}{os.pathsep}{os.environ['PATH']}")
    result = _configure(tree, tmp_path / "build", env=offline)
    assert result.returncode != 0
    assert "ONNX Runtime headers not found" in result.stdout and "fetching them into" in result.stdout
    message = " ".join(result.stderr.split())
    assert "fetching them failed:" in message
    assert "error: could not download Debian's libonnxruntime-dev; set ORT_INCLUDE_DIR" in message
    assert "apt-get install libonnxruntime-dev" in message  # and what to do instead
    assert not (tree / ".deps" / "onnxruntime" / "include").exists()


@needs_cmake
def test_configure_never_fetches_over_a_folder_it_was_given(tmp_path):
    tree = _bare_tree(tmp_path)
    given = tmp_path / "nowhere"
    result = _configure(tree, tmp_path / "build", env=_environment(ORT_INCLUDE_DIR=str(given)))
    assert result.returncode != 0 and "fetching" not in result.stdout
    message = " ".join(result.stderr.split())
    assert f"not found (environment variable ORT_INCLUDE_DIR={given})" in message


def _python(code: str, cwd: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *flags, "-c", textwrap.dedent(code)], cwd=cwd, check=False,
                          capture_output=True, text=True, env=_environment(), timeout=300)


def test_the_checkout_imports_its_own_packages_and_finds_the_library(ort_library):
    result = _python("""
        import bytetx, bytetx.exporter, bytetx.graph_rewrite
        packages = (bytetx, bytetx.exporter, bytetx.graph_rewrite)
        print(*(package.__file__ for package in packages), bytetx.ort_library_path())
    """, ROOT)
    assert result.returncode == 0, result.stderr
    package, exporter, graph_rewrite, library = result.stdout.split()
    assert Path(package) == ROOT / "bytetx" / "__init__.py"
    assert Path(exporter) == ROOT / "exporter" / "__init__.py"
    assert Path(graph_rewrite) == ROOT / "graph_rewrite" / "__init__.py"
    assert Path(library).is_file() and Path(library).name == "libbytetx_ort.so"


def _copy_packages(tmp_path: Path) -> Path:
    tree = tmp_path / "checkout"
    for folder in ("bytetx", "exporter", "graph_rewrite"):
        shutil.copytree(ROOT / folder, tree / folder, ignore=shutil.ignore_patterns("__pycache__", "lib"))
    shutil.copy(ROOT / "pyproject.toml", tree)
    return tree


def test_a_checkout_without_a_built_library_says_where_it_looked(tmp_path):
    tree = _copy_packages(tmp_path)
    # -S: no site-packages, so no installed bytetx to borrow the library from.
    result = _python("""
        import bytetx
        try:
            bytetx.ort_library_path()
        except bytetx.LibraryNotFoundError as error:
            print(error)
    """, tree, "-S")
    assert result.returncode == 0, result.stderr
    looked = f"libbytetx_ort.so not found (looked in {tree}/bytetx/lib/libbytetx_ort.so, {tree}/build/"
    assert looked in result.stdout
    assert "build it with `pip install .` in the source checkout" in result.stdout
    assert "or set BYTETX_ORT_LIBRARY" in result.stdout


def test_a_checkout_finds_the_library_in_its_cmake_build_folder(tmp_path):
    tree = _copy_packages(tmp_path)
    built = tree / "build" / "cp3-tag" / "libbytetx_ort.so"
    built.parent.mkdir(parents=True)
    built.write_bytes(b"")
    result = _python("import bytetx; print(bytetx.ort_library_path())", tree, "-S")
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == built


@pytest.mark.slow
def test_pytest_runs_from_the_checkout_root(ort_library):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/ort/test_library.py"],
        cwd=ROOT, check=False, capture_output=True, text=True, env=_environment(), timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout.splitlines()[-1]
