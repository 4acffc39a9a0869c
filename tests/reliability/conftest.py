"""Fixtures of the reliability tests: sessions over the op-level models of tests/ort, and the tiny
BERT of tests/fixtures exported and rewritten padding-free once per run."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort
import pytest

# The op-level models, masks and NumPy references live with the op tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ort"))

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def op_session(ort_library: str) -> Callable[..., ort.InferenceSession]:
    """``op_session(model_bytes, threads=None)``: a session with the bytetx ops, cached per model."""
    cache: dict[tuple[bytes, int | None], ort.InferenceSession] = {}

    def make(model: bytes, threads: int | None = None) -> ort.InferenceSession:
        key = (model, threads)
        if key not in cache:
            options = ort.SessionOptions()
            options.register_custom_ops_library(ort_library)
            options.log_severity_level = 4  # failed runs are expected here; keep stderr quiet
            if threads is not None:
                options.intra_op_num_threads = threads
            cache[key] = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        return cache[key]

    return make


@pytest.fixture(scope="session")
def tiny_bert(tiny_model_dirs, ort_library):
    """``(loaded, original ONNX, rewritten ONNX)`` of the tiny random-weight BERT (2 layers, hidden 32,
    4 heads), exported with TorchScript and rewritten padding-free."""
    from bytetx.exporter import export_to_onnx, load_hf_model
    from bytetx.graph_rewrite import rewrite_padding_free

    loaded = load_hf_model(tiny_model_dirs("bert"), "eager")
    original = export_to_onnx(loaded)
    rewritten, _ = rewrite_padding_free(original)
    return loaded, original, rewritten
