"""The plugins in real TensorRT engines: needs a GPU, the tensorrt and pycuda packages and a built
libbytetx_trt.so (``BYTETX_TRT_LIBRARY``, or installed with bytetx); skipped otherwise.

Registration both ways (static, then loadLibrary, in one process), the samples end to end (build from
the TensorRT flavour of all-MiniLM-L6-v2, ragged batches against ONNX Runtime on the CPU, float32 and
float16, a saved engine run by the deployment sample with the library loaded and embedded), and
trtexec's --dynamicPlugins / --staticPlugins where trtexec is on PATH.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from bytetx.exporter import export_to_onnx, load_hf_model, save_onnx_atomic
from bytetx.exporter import tensorrt as trt_export
from bytetx.graph_rewrite import rewrite_padding_free, to_tensorrt

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"


def _gpu_count() -> int:
    try:
        import pycuda.driver as cuda

        cuda.init()
        return cuda.Device.count()
    except Exception:  # noqa: BLE001 - no pycuda, no driver, no device
        return 0


def _skip_reason() -> str | None:
    for module in ("tensorrt", "pycuda"):
        if importlib.util.find_spec(module) is None:
            return f"the {module} package is not installed"
    if not trt_export.plugin_library_path().is_file():
        return (
            f"libbytetx_trt.so not built ({trt_export.plugin_library_path()}; set {trt_export.LIBRARY_ENV})"
        )
    if _gpu_count() == 0:
        return "no CUDA device"
    return None


REASON = _skip_reason()
pytestmark = [pytest.mark.trt, pytest.mark.gpu, pytest.mark.skipif(REASON is not None, reason=REASON or "")]


@pytest.fixture(scope="module")
def library() -> Path:
    return trt_export.plugin_library_path()


@pytest.fixture(scope="module")
def minilm_model(minilm_dir, tmp_path_factory) -> Path:
    """The float32 bytetx rewrite of all-MiniLM-L6-v2, as the samples take it."""
    path = tmp_path_factory.mktemp("trt") / "minilm.bytetx.onnx"
    rewritten, _ = rewrite_padding_free(export_to_onnx(load_hf_model(minilm_dir)))
    save_onnx_atomic(rewritten, path)
    return path


def _python(code: str) -> subprocess.CompletedProcess:
    """Runs ``code`` in a fresh interpreter (a process where no plugin is registered yet)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_static_registration_then_load_library_in_one_process(library):
    result = _python(f"""
        import ctypes
        import tensorrt as trt

        from bytetx import ops

        registry = trt.get_plugin_registry()

        def registered():
            versions = ops.PLUGIN_VERSIONS.items()
            return all(registry.get_creator(n, v, ops.PLUGIN_NAMESPACE) for n, v in versions)

        ctypes.CDLL({str(library)!r})  # static registration, as trtexec --staticPlugins loads it
        assert registered(), "static registration"
        assert registry.load_library({str(library)!r}) is not None, "loadLibrary after static registration"
        assert registered(), "after loadLibrary"
        print("ok")
    """)
    assert result.returncode == 0 and "ok" in result.stdout, result.stdout + result.stderr


def test_load_library_alone(library):
    result = _python(f"""
        import tensorrt as trt

        from bytetx import ops

        registry = trt.get_plugin_registry()
        assert registry.load_library({str(library)!r}) is not None
        versions = ops.PLUGIN_VERSIONS.items()
        assert all(registry.get_creator(n, v, ops.PLUGIN_NAMESPACE) for n, v in versions)
        print("ok")
    """)
    assert result.returncode == 0 and "ok" in result.stdout, result.stdout + result.stderr


def _sample(name: str):
    sys.path.insert(0, str(SAMPLES))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(SAMPLES))


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_run_sample_matches_onnx_runtime(minilm_model, library, tmp_path, capsys, precision):
    engine = tmp_path / f"minilm.{precision}.engine"
    argv = [
        "--model",
        str(minilm_model),
        "--plugin-library",
        str(library),
        "--precision",
        precision,
        "--max-batch",
        "16",
        "--max-seq-len",
        "128",
        "--batch",
        "8",
        "--max-length",
        "64",
        "--iterations",
        "5",
        "--save-engine",
        str(engine),
    ]
    assert _sample("trt_run").main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert out.count(": ok") == 5 and "tokens/s" in out
    deploy = subprocess.run(
        [
            sys.executable,
            str(SAMPLES / "trt_deploy_engine.py"),
            str(engine),
            "--plugin-library",
            str(library),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert deploy.returncode == 0, deploy.stderr
    assert "padding rows are exactly zero" in deploy.stdout


@pytest.mark.slow
def test_engine_carrying_the_plugin_library(minilm_model, library, tmp_path, capsys):
    engine = tmp_path / "minilm.vc.engine"
    argv = [
        "--model",
        str(minilm_model),
        "--plugin-library",
        str(library),
        "--serialize-plugin",
        "--max-batch",
        "8",
        "--max-seq-len",
        "64",
        "--batch",
        "4",
        "--max-length",
        "32",
        "--iterations",
        "3",
        "--save-engine",
        str(engine),
    ]
    assert _sample("trt_run").main(argv) == 0, capsys.readouterr().err
    deploy = subprocess.run(
        [sys.executable, str(SAMPLES / "trt_deploy_engine.py"), str(engine), "--embedded-plugin"],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert deploy.returncode == 0, deploy.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("trtexec") is None, reason="trtexec is not on PATH")
@pytest.mark.parametrize("loading", ["dynamic", "static"])
def test_trtexec_builds_and_runs_the_flavour(minilm_model, library, tmp_path, loading):
    import onnx

    model = onnx.load(str(minilm_model))
    flavour = tmp_path / "minilm.trt.onnx"
    onnx.save(to_tensorrt(model)[0], str(flavour))
    command = trt_export.trtexec_command(
        flavour,
        library,
        trt_export.profile_inputs(model),
        trt_export.ShapeProfile((1, 1), (4, 64), (8, 128)),
        engine_path=tmp_path / "minilm.engine",
        plugin_loading=loading,
    )
    result = subprocess.run(
        [*command, "--iterations=5", "--warmUp=0", "--duration=0"],
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
