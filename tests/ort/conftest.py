"""Fixtures of the ONNX Runtime op tests: the plugin library and cached sessions over it."""

from __future__ import annotations

from typing import Callable

import onnxruntime as ort
import pytest


@pytest.fixture(scope="session")
def make_session(ort_library: str) -> Callable[..., ort.InferenceSession]:
    """``make_session(model_bytes, threads=None)``: a session with the bytetx ops, cached per model."""
    cache: dict[tuple[bytes, int | None], ort.InferenceSession] = {}

    def make(model: bytes, threads: int | None = None) -> ort.InferenceSession:
        key = (model, threads)
        if key not in cache:
            options = ort.SessionOptions()
            options.register_custom_ops_library(ort_library)
            if threads is not None:
                options.intra_op_num_threads = threads
            cache[key] = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        return cache[key]

    return make
