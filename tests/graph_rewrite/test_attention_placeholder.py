"""AttentionPlaceholder: the TensorRT flavour with a placeholder where each FusedMHA was, for the GPU
benchmark's TensorRT-attention peer. The edit itself needs TensorRT; the graph it starts from does not."""

from __future__ import annotations

import onnx
import pytest

from bytetx.exporter import to_float16
from bytetx.graph_rewrite import rewrite_padding_free, to_tensorrt, without_fused_mha


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_every_fused_mha_becomes_a_site(tiny_bert_onnx, tiny_model_dirs, precision):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_model_dirs("bert"))
    rewritten, _ = rewrite_padding_free(tiny_bert_onnx())
    flavour, _ = to_tensorrt(to_float16(rewritten) if precision == "fp16" else rewritten)
    fused_nodes = [n for n in flavour.graph.node if n.op_type == "FusedMHA"]
    model, sites = without_fused_mha(flavour)
    assert "FusedMHA" not in op_counts(model)
    assert len(sites) == len(fused_nodes) == config.num_hidden_layers
    produced = {output for node in model.graph.node for output in node.output}
    for site, node in zip(sites, fused_nodes, strict=True):
        assert {site.qkv, site.cu_seqlens, site.context} <= produced
        assert site.context == node.output[0] and site.cu_seqlens == node.input[2]
        assert site.heads == config.num_attention_heads
        head_size = config.hidden_size // config.num_attention_heads
        assert site.scale == pytest.approx(head_size ** -0.5, rel=1e-6)
    onnx.checker.check_model(model)
    assert list(model.metadata_props) == list(flavour.metadata_props)

    again, no_sites = without_fused_mha(model)
    assert no_sites == [] and again.SerializeToString() == model.SerializeToString()
