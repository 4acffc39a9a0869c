"""The TensorRT section of CMakeLists.txt: found, skipped with a reason, or refused; and, where TensorRT's
headers and nvcc exist, libbytetx_trt.so built and linked without libnvinfer, exporting only the entry
points IPluginRegistry::loadLibrary looks up."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import trt_host

ROOT = Path(__file__).resolve().parents[2]


def _ort_include() -> str | None:
    for candidate in (
        os.environ.get("ORT_INCLUDE_DIR"),
        ROOT / ".deps" / "onnxruntime" / "include",
        "/usr/include/onnxruntime",
    ):
        if candidate and (Path(candidate) / "onnxruntime_c_api.h").is_file():
            return str(candidate)
    return None


ORT_INCLUDE = _ort_include()
pytestmark = pytest.mark.skipif(
    shutil.which("cmake") is None or ORT_INCLUDE is None,
    reason="needs cmake and ONNX Runtime's headers (scripts/fetch_ort_headers.sh)",
)


def configure(build: Path, *defines: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "TENSORRT_ROOT"} | (env or {})
    return subprocess.run(
        ["cmake", "-S", str(ROOT), "-B", str(build), f"-DORT_INCLUDE_DIR={ORT_INCLUDE}", *defines],
        check=False,
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )


def fake_tensorrt(root: Path, major: int) -> Path:
    include = root / "include"
    include.mkdir(parents=True)
    (include / "NvInferRuntime.h").write_text("")
    (include / "NvInferVersion.h").write_text(
        f"#define TRT_MAJOR_ENTERPRISE {major}\n"
        "#define TRT_MINOR_ENTERPRISE 3\n#define TRT_PATCH_ENTERPRISE 1\n"
    )
    return root


def test_configure_reports_why_it_skips(tmp_path):
    missing = configure(tmp_path / "a", "-DBYTETX_BUILD_CUDA=OFF", f"-DTENSORRT_ROOT={tmp_path / 'nowhere'}")
    assert missing.returncode == 0, missing.stderr
    assert (
        "TensorRT: skipping libbytetx_trt.so: "
        "TensorRT headers (NvInferRuntime.h, NvInferVersion.h) not found "
        f"(-DTENSORRT_ROOT={tmp_path / 'nowhere'}); pass -DTENSORRT_ROOT"
    ) in missing.stdout

    old = configure(
        tmp_path / "b",
        "-DBYTETX_BUILD_CUDA=OFF",
        env={"TENSORRT_ROOT": str(fake_tensorrt(tmp_path / "trt8", 8))},
    )
    assert "TensorRT 8.3.1 at " in old.stdout and "is too old" in old.stdout

    no_cuda = configure(
        tmp_path / "c", "-DBYTETX_BUILD_CUDA=OFF", f"-DTENSORRT_ROOT={fake_tensorrt(tmp_path / 'trt10', 10)}"
    )
    assert "TensorRT 10.3.1 found at" in no_cuda.stdout and "but the CUDA build is off" in no_cuda.stdout


def test_configure_on_refuses_to_skip(tmp_path):
    result = configure(
        tmp_path / "a",
        "-DBYTETX_BUILD_CUDA=OFF",
        "-DBYTETX_BUILD_TENSORRT=ON",
        f"-DTENSORRT_ROOT={tmp_path / 'nowhere'}",
    )
    assert result.returncode != 0
    assert "BYTETX_BUILD_TENSORRT=ON, but TensorRT headers" in result.stderr


INCLUDE = trt_host.tensorrt_include_dir()
NVCC = shutil.which("nvcc") or (
    "/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists() else None
)


@pytest.mark.slow
@pytest.mark.skipif(
    INCLUDE is None or NVCC is None, reason="needs TensorRT's headers (TENSORRT_ROOT) and nvcc"
)
def test_library_builds_without_libnvinfer(tmp_path):
    build = tmp_path / "build"
    configured = configure(
        build,
        f"-DTENSORRT_ROOT={INCLUDE}",
        "-DBYTETX_CUDA_ARCHITECTURES=80-real",
        f"-DCMAKE_CUDA_COMPILER={NVCC}",
    )
    assert configured.returncode == 0, configured.stderr
    assert f"TensorRT: headers {trt_host.tensorrt_header_version(INCLUDE)} at {INCLUDE}" in configured.stdout
    built = subprocess.run(
        ["cmake", "--build", str(build), "--target", "bytetx_trt", "-j2"],
        check=False,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    library = build / "libbytetx_trt.so"
    listing = subprocess.run(
        ["nm", "-D", "--defined-only", str(library)], check=True, capture_output=True, text=True
    ).stdout
    assert sorted(line.split()[-1] for line in listing.splitlines()) == ["getCreators", "setLoggerFinder"]
    needed = subprocess.run(
        ["readelf", "-d", str(library)], check=True, capture_output=True, text=True
    ).stdout
    assert "libnvinfer" not in needed and "libcudart" not in needed
