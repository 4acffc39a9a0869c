"""DeBERTa-v2/v3 layouts beyond the tiny model, against Hugging Face PyTorch: DeBERTa-v3's own bucketing
(256 buckets up to 512) on sequences up to 300, DeBERTa-v2's plain clamped distances, each term alone,
unshared position projections, absolute positions as well, head sizes 32, 64 and 40; DeBERTa v1 and
DeBERTa-v2's ConvLayer are refused by name.

Tolerance (float32): 1e-4 absolute on valid tokens, padding exactly zero (fixtures/checks.py).
"""

from __future__ import annotations

import pytest
import torch
from bytetx.exporter import UnsupportedModelError, export_to_onnx, load_hf_model
from bytetx.graph_rewrite import rewrite_padding_free
from fixtures.checks import assert_matches_pytorch
from fixtures.tiny_models import SEED, VOCAB, spread_weights

import bytetx

# name: (hidden, heads, config), head sizes 64, 32, 40.
LAYOUTS = {
    "v3": (128, 2, dict(position_buckets=256, max_relative_positions=512, pos_att_type=["p2c", "c2p"],
                        norm_rel_ebd="layer_norm", share_att_key=True, position_biased_input=False)),
    "v2-distances-c2p": (64, 2, dict(position_buckets=-1, max_relative_positions=-1, pos_att_type=["c2p"],
                                     share_att_key=False, position_biased_input=True)),
    "v2-p2c-unshared": (80, 2, dict(position_buckets=32, max_relative_positions=64, pos_att_type=["p2c"],
                                    norm_rel_ebd="layer_norm", share_att_key=False, position_biased_input=False)),
}
# (batch, max length, padding, seed): lengths 1 to 300, right, left and hole padding, up to 32 sequences.
BATCHES = [(1, 1, "right", 0), (4, 300, "left", 1), (32, 47, "holes", 2), (9, 140, "right", 3)]


def _save(folder, hidden, heads, options):
    from transformers import AutoModel, DebertaV2Config

    config = DebertaV2Config(vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=heads,
                             intermediate_size=2 * hidden, max_position_embeddings=320, relative_attention=True,
                             type_vocab_size=0, pad_token_id=0, **options)
    torch.manual_seed(SEED)
    model = AutoModel.from_config(config, attn_implementation="eager")
    spread_weights(model)
    model.eval().save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.mark.parametrize("name", LAYOUTS)
def test_matches_pytorch_on_ragged_batches(name, tmp_path, ort_library):
    hidden, heads, options = LAYOUTS[name]
    loaded = load_hf_model(_save(tmp_path, hidden, heads, options))
    rewritten, reports = rewrite_padding_free(export_to_onnx(loaded))
    assert all("disentangled" in detail for detail in reports[0].details) and reports[0].changed == 2
    session = bytetx.InferenceSession(rewritten.SerializeToString())
    assert_matches_pytorch(session, loaded, BATCHES, f"{name}: ")


def test_the_v3_bucketing_is_read_off_the_export(tmp_path):
    hidden, heads, options = LAYOUTS["v3"]
    loaded = load_hf_model(_save(tmp_path, hidden, heads, options))
    _, reports = rewrite_padding_free(export_to_onnx(loaded, "dynamo"))
    assert "disentangled c2p+p2c (span 256, buckets 256, max 512)" in reports[0].details[0]


def test_deberta_v1_is_refused_by_name(tmp_path):
    from transformers import AutoModel, DebertaConfig

    config = DebertaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                           intermediate_size=64, relative_attention=True, pos_att_type=["p2c", "c2p"])
    AutoModel.from_config(config).save_pretrained(tmp_path)
    with pytest.raises(UnsupportedModelError, match="model type 'deberta': DeBERTa \\(v1\\) .* not supported yet"):
        load_hf_model(tmp_path)


def test_deberta_v2_conv_layer_is_refused_by_name(tmp_path):
    hidden, heads, options = LAYOUTS["v3"]
    _save(tmp_path, hidden, heads, {**options, "conv_kernel_size": 3})
    with pytest.raises(UnsupportedModelError, match="model type 'deberta-v2': DeBERTa-v2's ConvLayer "
                                                    "\\(conv_kernel_size=3.*not run it padding-free"):
        load_hf_model(tmp_path)
