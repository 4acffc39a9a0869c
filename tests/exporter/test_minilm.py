"""The real bundled all-MiniLM-L6-v2: exported, rewritten, and compared with Hugging Face PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import bytetx
from bytetx.exporter import export_to_onnx, load_hf_model
from bytetx.exporter.verify import make_feeds, ragged_lengths, ragged_mask, run_onnx, run_torch
from bytetx.graph_rewrite import rewrite_padding_free
from fixtures.checks import assert_matches


@pytest.fixture(scope="module")
def minilm(minilm_dir, ort_library):
    loaded = load_hf_model(minilm_dir, "sdpa")
    rewritten, reports = rewrite_padding_free(export_to_onnx(loaded))
    assert reports[0].changed == 6
    return loaded, bytetx.InferenceSession(rewritten.SerializeToString())


@pytest.mark.parametrize("batch,max_length,padding", [(1, 1, "right"), (3, 128, "right"), (32, 97, "left"),
                                                      (8, 256, "holes")])
def test_minilm_matches_pytorch(minilm, batch, max_length, padding):
    loaded, session = minilm
    mask = ragged_mask(ragged_lengths(batch, max_length, np.random.default_rng(batch)), max_length, padding, batch)
    feeds = make_feeds(loaded.input_names, mask, loaded.config.vocab_size, loaded.pad_token_id,
                       loaded.config.type_vocab_size, seed=batch)
    assert_matches(run_onnx(session, feeds), run_torch(loaded.model, feeds, loaded.output_names), mask)
