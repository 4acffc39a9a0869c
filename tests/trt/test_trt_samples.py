"""The TensorRT samples' argument handling and their messages where tensorrt / pycuda are missing: no
TensorRT or GPU needed (test_trt_engine.py runs them for real where they exist)."""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture(scope="module")
def samples():
    sys.path.insert(0, str(SAMPLES))
    try:
        yield types.SimpleNamespace(
            run=importlib.import_module("trt_run"), deploy=importlib.import_module("trt_deploy_engine")
        )
    finally:
        sys.path.remove(str(SAMPLES))


@pytest.fixture
def no_gpu_packages(monkeypatch):
    """tensorrt and pycuda fail to import, whether or not they are installed."""
    for name in ("tensorrt", "pycuda", "pycuda.driver", "pycuda.autoinit"):
        monkeypatch.setitem(sys.modules, name, None)


@pytest.fixture
def files(tmp_path):
    """Stand-in files that pass the samples' existence checks."""
    paths = types.SimpleNamespace(
        model=tmp_path / "m.onnx",
        library=tmp_path / "libbytetx_trt.so",
        engine=tmp_path / "m.engine",
        tokenizer=tmp_path / "tokenizer.json",
    )
    for path in vars(paths).values():
        path.write_bytes(b"")
    return paths


def test_run_defaults(samples):
    args = samples.run.build_parser().parse_args([])
    assert (args.precision, args.max_batch, args.max_seq_len, args.batch, args.max_length) == (
        "fp32",
        32,
        256,
        16,
        128,
    )
    assert (
        args.model == samples.run.DEFAULT_MODEL and args.plugin_library is None and not args.serialize_plugin
    )
    assert args.tolerance is None and not args.tf32


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--batch", "0"], "argument --batch: must be a positive integer, got 0"),
        (["--max-length", "x"], "argument --max-length: invalid _positive value: 'x'"),
        (["--precision", "int8"], "argument --precision: invalid choice: 'int8'"),
    ],
)
def test_run_rejects_bad_arguments(samples, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        samples.run.build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_run_timed_batch_must_fit_the_engine(samples, capsys, files):
    argv = ["--model", str(files.model), "--plugin-library", str(files.library), "--batch", "64"]
    assert samples.run.main(argv) == 1
    assert (
        "the timed batch 64 x 128 exceeds the engine's --max-batch 32 x --max-seq-len 256"
        in capsys.readouterr().err
    )


def test_run_missing_model(samples, capsys, files, tmp_path):
    assert (
        samples.run.main(["--model", str(tmp_path / "nope.onnx"), "--plugin-library", str(files.library)])
        == 1
    )
    assert f"error: {tmp_path / 'nope.onnx'}: no such model file" in capsys.readouterr().err


def test_run_missing_plugin_library(samples, capsys, files, tmp_path, monkeypatch):
    monkeypatch.delenv("BYTETX_TRT_LIBRARY", raising=False)
    assert samples.run.main(["--model", str(files.model), "--plugin-library", str(tmp_path / "none.so")]) == 1
    err = capsys.readouterr().err
    assert f"plugin library {tmp_path / 'none.so'} not found: build it" in err
    monkeypatch.setenv("BYTETX_TRT_LIBRARY", str(tmp_path / "env.so"))
    assert samples.run.main(["--model", str(files.model)]) == 1
    assert f"plugin library {tmp_path / 'env.so'} not found" in capsys.readouterr().err


def test_run_without_tensorrt_and_pycuda(samples, capsys, files, no_gpu_packages):
    assert samples.run.main(["--model", str(files.model), "--plugin-library", str(files.library)]) == 1
    err = capsys.readouterr().err
    assert "error: this sample needs a GPU and the Python packages tensorrt (TensorRT 10 or newer" in err
    assert "and pycuda (pip install pycuda); they are not installed" in err


def test_only_pycuda_missing(samples, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.8.0"))
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    with pytest.raises(
        samples.deploy.SampleError, match=r"packages pycuda \(pip install pycuda\); they are not"
    ):
        samples.deploy.import_gpu_modules()


def test_tensorrt_too_old(samples, monkeypatch):
    pycuda = types.ModuleType("pycuda")
    pycuda.driver = types.ModuleType("pycuda.driver")
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="8.6.1"))
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", pycuda.driver)
    with pytest.raises(
        samples.deploy.SampleError,
        match="TensorRT 8.6.1 is too old: the bytetx plugins need TensorRT 10 or newer",
    ):
        samples.deploy.import_gpu_modules()


def test_deploy_arguments(samples, capsys, files):
    parser = samples.deploy.build_parser()
    args = parser.parse_args([str(files.engine), "--sentence", "a", "--sentence", "b c"])
    assert args.engine == files.engine and args.sentences == ["a", "b c"] and not args.embedded_plugin
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args([str(files.engine), "--embedded-plugin", "--plugin-library", "x.so"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args([])


def test_deploy_missing_files(samples, capsys, files, tmp_path):
    assert samples.deploy.main([str(tmp_path / "none.engine")]) == 1
    assert f"{tmp_path / 'none.engine'}: no such engine file" in capsys.readouterr().err
    assert samples.deploy.main([str(files.engine), "--plugin-library", str(tmp_path / "none.so")]) == 1
    assert "use --embedded-plugin for an engine that carries it" in capsys.readouterr().err
    assert (
        samples.deploy.main([str(files.engine), "--embedded-plugin", "--tokenizer", str(tmp_path / "t.json")])
        == 1
    )
    assert "tokenizer" in capsys.readouterr().err


def test_deploy_without_tensorrt_and_pycuda(samples, capsys, files, no_gpu_packages):
    argv = [str(files.engine), "--plugin-library", str(files.library), "--tokenizer", str(files.tokenizer)]
    assert samples.deploy.main(argv) == 1
    assert "this sample needs a GPU and the Python packages tensorrt" in capsys.readouterr().err


def test_samples_find_the_plugin_library_where_the_exporter_does(samples, monkeypatch, tmp_path):
    from bytetx.exporter import tensorrt as trt_export

    assert samples.deploy.LIBRARY_ENV == trt_export.LIBRARY_ENV
    monkeypatch.delenv(trt_export.LIBRARY_ENV, raising=False)
    assert samples.deploy.default_library() == trt_export.plugin_library_path()
    monkeypatch.setenv(trt_export.LIBRARY_ENV, str(tmp_path / "custom.so"))
    assert samples.deploy.default_library() == trt_export.plugin_library_path() == tmp_path / "custom.so"
