"""Every supported architecture: export, rewrite, and compare with Hugging Face PyTorch.

Tolerance (float32): 1e-4 absolute on valid tokens; padding exactly zero; a sequence gives the
same output alone and inside a batch (within 1e-5: ONNX Runtime's MatMul may block T rows
differently for different T).
"""

from __future__ import annotations

import numpy as np
import pytest

import bytetx
from bytetx.exporter import EXPORT_CONFIGS, export_to_onnx, load_hf_model
from bytetx.exporter.verify import make_feeds, ragged_mask, run_onnx
from bytetx.graph_rewrite import rewrite_padding_free
from fixtures.checks import assert_matches_pytorch
from fixtures.tiny_models import EAGER_ONLY_MODEL_TYPES, TESTED_MODEL_TYPES, TINY_MODEL_TYPES

BATCH_INVARIANCE_TOLERANCE = 1e-5

# (batch, max length, padding, seed): length 1 alone, ragged right/left/holes, batch 32.
BATCHES = [
    (1, 1, "right", 0),
    (1, 23, "right", 1),
    (5, 37, "right", 2),
    (7, 29, "left", 3),
    (32, 61, "holes", 4),
]

VARIANTS = [("torchscript", "eager"), ("torchscript", "sdpa"), ("dynamo", "eager"), ("dynamo", "sdpa")]
CASES = [(model_type, exporter, attention) for model_type in TESTED_MODEL_TYPES for exporter, attention in VARIANTS
         if attention == "eager" or model_type not in EAGER_ONLY_MODEL_TYPES]


def test_every_supported_type_has_a_tiny_model():
    assert set(TINY_MODEL_TYPES) == set(EXPORT_CONFIGS)


def _feeds(loaded, mask, seed):
    config = loaded.config
    return make_feeds(loaded.input_names, mask, config.vocab_size, loaded.pad_token_id,
                      getattr(config, "type_vocab_size", 1), seed=seed)


@pytest.mark.parametrize("model_type,exporter,attention", CASES)
def test_matches_pytorch_on_ragged_batches(model_type, exporter, attention, tiny_model_dirs, ort_library):
    loaded = load_hf_model(tiny_model_dirs(model_type), attention)
    rewritten, reports = rewrite_padding_free(export_to_onnx(loaded, exporter))
    assert reports[0].changed == 2, "both attention blocks fused"
    assert_matches_pytorch(bytetx.InferenceSession(rewritten.SerializeToString()), loaded, BATCHES)


@pytest.mark.parametrize("model_type", TESTED_MODEL_TYPES)
def test_sequence_alone_equals_sequence_in_batch(model_type, tiny_model_dirs, ort_library):
    loaded = load_hf_model(tiny_model_dirs(model_type), "eager")
    rewritten, _ = rewrite_padding_free(export_to_onnx(loaded))
    session = bytetx.InferenceSession(rewritten.SerializeToString())
    max_length = 45
    lengths = np.array([45, 1, 17, 0, 30, 8])  # includes an all-padding row
    mask = ragged_mask(lengths, max_length, "right")
    feeds = _feeds(loaded, mask, seed=7)
    batched = run_onnx(session, feeds)["last_hidden_state"]
    assert np.all(batched[3] == 0), "an all-padding row gives zeros"
    assert not np.isnan(batched).any()
    for row, length in enumerate(lengths):
        if length == 0:
            continue
        alone = run_onnx(session, {k: v[row : row + 1, :length] for k, v in feeds.items()})["last_hidden_state"]
        np.testing.assert_allclose(alone[0], batched[row, :length], rtol=0, atol=BATCH_INVARIANCE_TOLERANCE)
