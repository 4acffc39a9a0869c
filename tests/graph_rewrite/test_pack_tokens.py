"""PackTokens: which ops run packed, where padding is rebuilt, and what it refuses."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

import bytetx
from bytetx.exporter.verify import make_feeds, ragged_mask, run_onnx, valid_token_diff
from bytetx import ops
from bytetx.graph_rewrite import RewriteError, rewrite_padding_free

LAYER0_OUTPUT_SUFFIX = "layer.0/output/LayerNorm/LayerNormalization_output_0"


def _layer0_output(model: onnx.ModelProto) -> str:
    return next(o for n in model.graph.node for o in n.output if o.endswith(LAYER0_OUTPUT_SUFFIX))


def _insert_after(model: onnx.ModelProto, tensor: str, node: onnx.NodeProto, new_tensor: str) -> None:
    """Make every reader of ``tensor`` read ``new_tensor`` (written by ``node``) instead."""
    for other in model.graph.node:
        for index, name in enumerate(other.input):
            if name == tensor:
                other.input[index] = new_tensor
    position = next(i for i, n in enumerate(model.graph.node) if tensor in n.output)
    model.graph.node.insert(position + 1, node)


def _compare(original: onnx.ModelProto, rewritten: onnx.ModelProto, lengths=(9, 1, 5, 0)) -> dict[str, float]:
    mask = ragged_mask(np.array(lengths), max(lengths), "right")
    feeds = make_feeds([i.name for i in original.graph.input], mask, vocab_size=128, pad_token_id=0)
    expected = run_onnx(ort.InferenceSession(original.SerializeToString(), providers=["CPUExecutionProvider"]), feeds)
    ours = run_onnx(bytetx.InferenceSession(rewritten.SerializeToString()), feeds)
    return {name: valid_token_diff(ours[name], value, mask) for name, value in expected.items()}


def _count(model: onnx.ModelProto, op: str) -> int:
    return collections.Counter(n.op_type for n in model.graph.node if n.domain == ops.DOMAIN)[op]


def test_a_padded_reader_mid_encoder_gets_its_own_rebuild(tiny_bert_onnx, ort_library):
    model = tiny_bert_onnx()
    hidden = _layer0_output(model)
    model.graph.node.append(helper.make_node("Identity", [hidden], ["layer0_hidden"]))
    model.graph.output.append(helper.make_tensor_value_info("layer0_hidden", onnx.TensorProto.FLOAT, None))
    rewritten, _ = rewrite_padding_free(model)
    assert _count(rewritten, "RebuildPadding") == 2
    assert max(_compare(model, rewritten).values()) <= 1e-4


def test_per_feature_constant_of_rank_three_stays_packed(tiny_bert_onnx, ort_library):
    model = tiny_bert_onnx()
    hidden = _layer0_output(model)
    shift = numpy_helper.from_array(np.linspace(-1, 1, 32, dtype=np.float32).reshape(1, 1, 32), "shift")
    model.graph.initializer.append(shift)
    _insert_after(model, hidden, helper.make_node("Add", [hidden, "shift"], ["shifted"], name="ShiftAdd"), "shifted")
    rewritten, _ = rewrite_padding_free(model)
    assert _count(rewritten, "RebuildPadding") == 1
    assert max(_compare(model, rewritten).values()) <= 1e-4


def test_position_dependent_op_before_a_block_is_reported(tiny_bert_onnx):
    model = tiny_bert_onnx()
    hidden = _layer0_output(model)
    per_row = numpy_helper.from_array(np.ones((2, 1, 32), np.float32), "per_row")
    model.graph.initializer.append(per_row)
    _insert_after(model, hidden, helper.make_node("Mul", [hidden, "per_row"], ["scaled"], name="PerRowMul"), "scaled")
    with pytest.raises(RewriteError, match="packing stopped at Mul node 'PerRowMul'"):
        rewrite_padding_free(model)


def test_model_without_attention_mask_is_refused(tiny_bert_onnx):
    model = tiny_bert_onnx()
    for node in model.graph.node:
        node.input[:] = ["lengths_hint" if name == "attention_mask" else name for name in node.input]
    next(i for i in model.graph.input if i.name == "attention_mask").name = "lengths_hint"
    with pytest.raises(RewriteError, match="no attention mask input"):
        rewrite_padding_free(model)
