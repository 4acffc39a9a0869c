"""Fixtures of the ONNX Runtime op tests."""

from __future__ import annotations

from collections.abc import Callable

import onnxruntime as ort
import pytest


@pytest.fixture(scope="session")
def make_session(op_session) -> Callable[..., ort.InferenceSession]:
    """The op tests' name for ``op_session`` (tests/conftest.py)."""
    return op_session
