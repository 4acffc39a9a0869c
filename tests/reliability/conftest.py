"""Fixtures of the reliability tests: the tiny BERT of tests/fixtures exported and rewritten
padding-free once per run (``op_session``, over the op-level models of tests/ort, is in
tests/conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The op-level models live with the op tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ort"))

REPO = Path(__file__).resolve().parents[2]


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
