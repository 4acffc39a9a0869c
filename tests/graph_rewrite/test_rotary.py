"""ModernBERT's rotary embeddings and sliding window, recognized in its exports and moved into FusedMHA.

The frequencies read off the graph must be the model's own inv_freq of each layer type, bitwise, and
the window its config's; rotations FusedMHA cannot compute are refused, naming the node, rather than
dropped. End-to-end accuracy against Hugging Face is in tests/exporter/test_architectures.py and
tests/exporter/test_modernbert.py.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from bytetx.exporter import export_to_onnx, load_hf_model
from bytetx.graph_rewrite import RewriteError, rewrite_padding_free, to_tensorrt
from transformers.models.modernbert import modeling_modernbert

from bytetx import ops


@pytest.fixture(scope="module")
def modernbert(tiny_model_dirs):
    return load_hf_model(tiny_model_dirs("modernbert"))


def _fused_blocks(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type == ops.FUSED_MHA and n.domain == ops.DOMAIN]


def _attributes(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


@pytest.mark.parametrize("exporter,attention", [("torchscript", "eager"), ("dynamo", "sdpa")])
def test_each_block_gets_its_layer_types_frequencies_and_window(tiny_model_dirs, exporter, attention):
    loaded = load_hf_model(tiny_model_dirs("modernbert"), attention)
    rewritten, reports = rewrite_padding_free(export_to_onnx(loaded, exporter))
    blocks = _fused_blocks(rewritten)
    config = loaded.config
    assert len(blocks) == len(config.layer_types) and set(config.layer_types) == {"full_attention", "sliding_attention"}
    for block, layer_type in zip(blocks, config.layer_types):
        attributes = _attributes(block)
        expected = getattr(loaded.model.rotary_emb, f"{layer_type}_inv_freq").numpy()
        np.testing.assert_array_equal(np.array(attributes["rotary_frequencies"], np.float32), expected)
        assert list(block.input[4:]) == [ops.POSITIONS]
        if layer_type == "sliding_attention":
            assert attributes["sliding_window"] == config.sliding_window == config.local_attention // 2
        else:
            assert "sliding_window" not in attributes
    assert "sliding window 8" in reports[0].details[1]
    assert not any(n.op_type == "Softmax" for n in rewritten.graph.node)


def test_running_twice_changes_nothing(modernbert):
    once, _ = rewrite_padding_free(export_to_onnx(modernbert))
    twice, reports = rewrite_padding_free(once)
    assert [r.changed for r in reports] == [0, 0]
    assert twice.SerializeToString() == once.SerializeToString()


def test_scaled_cos_and_sin_are_refused(tiny_model_dirs):
    """Rope types that scale cos and sin (YaRN's attention factor) are not FusedMHA's rotation."""
    loaded = load_hf_model(tiny_model_dirs("modernbert"))
    loaded.model.rotary_emb.sliding_attention_attention_scaling = 0.5
    with pytest.raises(RewriteError, match="attention block 1: matching stopped at Softmax node .*: the rotary "
                                           "embeddings are not FusedMHA's: .* are not cos and sin of the position"):
        rewrite_padding_free(export_to_onnx(loaded))


def test_another_rotation_is_refused_not_dropped(tiny_model_dirs, monkeypatch):
    """The inverse rotation, concat(x2, -x1), would rotate the wrong way if taken for FusedMHA's."""
    def inverse_rotate_half(x):
        half = x.shape[-1] // 2
        return torch.cat((x[..., half:], -x[..., :half]), dim=-1)

    monkeypatch.setattr(modeling_modernbert, "rotate_half", inverse_rotate_half)
    exported = export_to_onnx(load_hf_model(tiny_model_dirs("modernbert")))
    with pytest.raises(RewriteError, match="attention block 0: matching stopped at Add node .*: the query path has "
                                           "an Add that is neither a projection bias nor rotary embeddings"):
        rewrite_padding_free(exported)


def test_rotating_the_query_alone_is_refused(tiny_model_dirs, monkeypatch):
    rotate = modeling_modernbert.apply_rotary_pos_emb
    monkeypatch.setattr(modeling_modernbert, "apply_rotary_pos_emb",
                        lambda q, k, cos, sin, unsqueeze_dim=1: (rotate(q, k, cos, sin, unsqueeze_dim)[0], k))
    exported = export_to_onnx(load_hf_model(tiny_model_dirs("modernbert")))
    with pytest.raises(RewriteError, match="attention block 0: .*rotary embeddings on only one of query and key"):
        rewrite_padding_free(exported)


def test_the_tensorrt_flavour_keeps_rotary_and_window(modernbert):
    rewritten, _ = rewrite_padding_free(export_to_onnx(modernbert))
    converted, _ = to_tensorrt(rewritten)
    fused = [n for n in converted.graph.node if n.op_type == "FusedMHA"]
    assert fused and all(len(n.input) == 5 and n.input[4] == ops.POSITIONS for n in fused)
    assert all("rotary_frequencies" in _attributes(n) for n in fused)
    assert [("sliding_window" in _attributes(n)) for n in fused] == [False, True]
