"""Optimum's exports (tests/fixtures/optimum, made with transformers 4.x) rewrite and verify too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import bytetx
from bytetx.exporter import load_hf_model, load_onnx
from bytetx.exporter.verify import make_feeds, ragged_lengths, ragged_mask, run_onnx, run_torch
from bytetx.graph_rewrite import rewrite_padding_free
from fixtures.checks import assert_matches

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "optimum"
NAMES = sorted(p.name for p in FIXTURES.iterdir() if (p / "model.onnx").is_file())


def test_fixtures_cover_every_architecture():
    from bytetx.exporter import EXPORT_CONFIGS

    assert set(EXPORT_CONFIGS) <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_optimum_export_matches_pytorch(name, ort_library):
    rewritten, reports = rewrite_padding_free(load_onnx(FIXTURES / name / "model.onnx"))
    assert reports[0].changed == 2
    loaded = load_hf_model(FIXTURES / name / "hf", "eager")
    session = bytetx.InferenceSession(rewritten.SerializeToString())
    input_names = [i.name for i in session.get_inputs()]
    for seed, (batch, padding) in enumerate([(1, "right"), (6, "right"), (9, "left"), (16, "holes")]):
        mask = ragged_mask(ragged_lengths(batch, 40, np.random.default_rng(seed)), 40, padding, seed)
        feeds = make_feeds(input_names, mask, loaded.config.vocab_size, loaded.pad_token_id,
                           getattr(loaded.config, "type_vocab_size", 1), seed=seed)
        expected = run_torch(loaded.model, feeds, ("last_hidden_state",))
        assert_matches(run_onnx(session, feeds), expected, mask, f"batch {batch} {padding}")
