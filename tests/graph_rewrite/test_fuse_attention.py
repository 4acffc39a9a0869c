"""FuseAttention on tiny models that should and should not match."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import pytest
import torch

from bytetx import ops
from bytetx.graph_rewrite import RewriteError, rewrite_padding_free


def _op_counts(model: onnx.ModelProto) -> collections.Counter:
    return collections.Counter((n.domain or "ai.onnx", n.op_type) for n in model.graph.node)


@pytest.mark.parametrize("attention,exporter", [("eager", "torchscript"), ("sdpa", "torchscript"),
                                                 ("eager", "dynamo"), ("sdpa", "dynamo")])
def test_fuses_every_block_and_drops_the_mask_subgraph(tiny_bert_onnx, attention, exporter):
    model, reports = rewrite_padding_free(tiny_bert_onnx(attention, exporter))
    counts = _op_counts(model)
    assert counts[ops.DOMAIN, "FusedMHA"] == 2
    assert counts[ops.DOMAIN, "RemovePadding"] == 1
    assert counts[ops.DOMAIN, "RebuildPadding"] == 1  # last_hidden_state; the pooler reads it
    assert counts["ai.onnx", "Softmax"] == 0
    assert counts["ai.onnx", "Transpose"] == 0, "per-head reshapes are gone"
    assert counts["ai.onnx", "MatMul"] == 2 * (1 + 1 + 2), "QKV, output projection, two FFN per layer"
    assert reports[0].changed == 2
    details = " ".join(reports[0].details)
    assert "4 heads, head size 8, scale 0.353553" in details
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [o.name for o in model.graph.output] == ["last_hidden_state", "pooler_output"]


def test_merged_qkv_weights_are_the_three_projections(tiny_bert_onnx, tiny_model_dirs):
    from transformers import AutoModel

    model, _ = rewrite_padding_free(tiny_bert_onnx())
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    block = next(n for n in model.graph.node if n.op_type == "FusedMHA")
    qkv_matmul = next(n for n in model.graph.node if block.input[0] in n.output)
    hf = AutoModel.from_pretrained(tiny_model_dirs("bert")).encoder.layer[0].attention.self
    expected = torch.cat([hf.query.weight.T, hf.key.weight.T, hf.value.weight.T], dim=1).detach().numpy()
    expected_bias = torch.cat([hf.query.bias, hf.key.bias, hf.value.bias]).detach().numpy()
    np.testing.assert_array_equal(weights[qkv_matmul.input[1]], expected)
    np.testing.assert_array_equal(weights[block.input[1]], expected_bias)


def test_running_twice_changes_nothing(tiny_bert_onnx):
    once, _ = rewrite_padding_free(tiny_bert_onnx())
    twice, reports = rewrite_padding_free(once)
    assert [r.changed for r in reports] == [0, 0]
    assert twice.SerializeToString() == once.SerializeToString()


def test_broken_block_names_the_layer_and_node(tiny_bert_onnx):
    model = tiny_bert_onnx()
    # Make layer 1's key projection read a computed tensor instead of a weight.
    key_matmul = next(n for n in model.graph.node if n.name.endswith("layer.1/attention/self/key/MatMul"))
    key_matmul.input[1] = key_matmul.input[0]
    with pytest.raises(RewriteError, match=r"attention block 1: .*key/MatMul.*key projection weight"):
        rewrite_padding_free(model)


def test_heads_hint_must_agree_with_the_graph(tiny_bert_onnx):
    with pytest.raises(RewriteError, match="the graph has 4 heads, but num_heads=2"):
        rewrite_padding_free(tiny_bert_onnx(), num_heads=2)


def test_gpt2_is_refused(tmp_path):
    from transformers import GPT2Config, GPT2Model

    class Decoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            config = GPT2Config(n_embd=32, n_layer=1, n_head=4, vocab_size=64, n_positions=32, bos_token_id=0,
                                eos_token_id=0)
            self.gpt2 = GPT2Model(config).eval()

        def forward(self, input_ids, attention_mask):
            return self.gpt2(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state

    ids = torch.randint(0, 64, (1, 8))
    path = tmp_path / "gpt2.onnx"
    torch.onnx.export(Decoder().eval(), (ids, torch.ones_like(ids)), str(path), dynamo=False,
                      input_names=["input_ids", "attention_mask"],
                      dynamic_axes={"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}})
    with pytest.raises(RewriteError, match="attention block 0"):
        rewrite_padding_free(onnx.load(str(path)))


def test_convolutional_network_is_refused():
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], np.zeros(108, np.float32))
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["features"]),
         helper.make_node("Relu", ["features"], ["activated"]),
         helper.make_node("GlobalAveragePool", ["activated"], ["pooled"])],
        "resnet_like",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [1, 4, 1, 1])],
        [weight],
    )
    with pytest.raises(RewriteError, match="not a BERT-family encoder"):
        rewrite_padding_free(helper.make_model(graph))
