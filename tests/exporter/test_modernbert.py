"""ModernBERT layouts beyond the tiny model: head sizes 32, 64 and 40, windows shorter and longer than
the sequences, global layers every 2nd or 3rd, against Hugging Face PyTorch.

Tolerance (float32): 1e-4 absolute on valid tokens, padding exactly zero (fixtures/checks.py).
"""

from __future__ import annotations

import pytest
import torch
from bytetx.exporter import export_to_onnx, load_hf_model
from bytetx.graph_rewrite import rewrite_padding_free
from fixtures.checks import assert_matches_pytorch
from fixtures.tiny_models import SEED, VOCAB, spread_weights

import bytetx

# (hidden size, heads, layers, local_attention, global every, biases): head sizes 32, 64, 40; windows
# of 8 (shorter than most sequences), 128 (longer than all) and 5; the biases ModernBERT's config can
# switch on (attention, MLP, LayerNorm) in one of them.
LAYOUTS = [(64, 2, 3, 16, 3, False), (128, 2, 2, 256, 2, False), (80, 2, 3, 10, 2, True)]
# (batch, max length, padding, seed): lengths 1 to 100, right, left and hole padding, up to 32 sequences.
BATCHES = [(1, 1, "right", 0), (6, 100, "left", 1), (32, 47, "holes", 2), (9, 77, "right", 3)]


def _save(folder, hidden, heads, layers, local_attention, global_every, biases):
    from transformers import AutoModel, ModernBertConfig

    config = ModernBertConfig(
        vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=2 * hidden, max_position_embeddings=512, local_attention=local_attention,
        global_attn_every_n_layers=global_every, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        cls_token_id=1, sep_token_id=2, attention_bias=biases, mlp_bias=biases, norm_bias=biases)
    torch.manual_seed(SEED)
    model = AutoModel.from_config(config, attn_implementation="eager")
    spread_weights(model)
    model.eval().save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: f"d{layout[0] // layout[1]}-window{layout[3] // 2}"
                                                             + ("-biases" if layout[5] else ""))
def test_matches_pytorch_on_ragged_batches(layout, tmp_path, ort_library):
    loaded = load_hf_model(_save(tmp_path, *layout))
    rewritten, reports = rewrite_padding_free(export_to_onnx(loaded))
    layers, global_every = layout[2], layout[4]
    windows = [f"sliding window {layout[3] // 2}" in d for d in reports[0].details]
    assert windows == [layer % global_every != 0 for layer in range(layers)]
    session = bytetx.InferenceSession(rewritten.SerializeToString())
    assert_matches_pytorch(session, loaded, BATCHES)
