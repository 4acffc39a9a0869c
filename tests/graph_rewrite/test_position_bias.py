"""MPNet's relative position bias, recognized on the scores and moved into FusedMHA.

The table read off the evaluated term must equal the model's own embedding rows exactly; anything added
to the scores that is not MPNet's bucketed bias is refused, naming the node, rather than dropped.
End-to-end accuracy against Hugging Face is in tests/exporter/test_architectures.py.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import pytest
import torch
from bytetx.exporter import export_to_onnx, load_hf_model
from bytetx.exporter.verify import make_feeds, ragged_lengths, ragged_mask
from bytetx.graph_rewrite import RewriteError, rewrite_padding_free, to_tensorrt
from bytetx.graph_rewrite.position_bias import (
    _PROBE_LENGTHS,
    MPNET_MAX_DISTANCE,
    MPNET_NUM_BUCKETS,
    relative_position_bucket,
)

import bytetx
from bytetx import ops

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def mpnet(tiny_model_dirs):
    return load_hf_model(tiny_model_dirs("mpnet"))


def _fused_blocks(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type == ops.FUSED_MHA and n.domain == ops.DOMAIN]


def _feeds(loaded, mask, seed):
    return make_feeds(loaded.input_names, mask, loaded.config.vocab_size, loaded.pad_token_id, 1, seed=seed)


def test_the_longest_probe_reaches_every_bucket():
    reachable = set(relative_position_bucket(np.arange(-4 * MPNET_MAX_DISTANCE, 4 * MPNET_MAX_DISTANCE),
                                             MPNET_NUM_BUCKETS, MPNET_MAX_DISTANCE).tolist())
    longest = max(_PROBE_LENGTHS)
    slots = np.arange(longest)
    probed = set(relative_position_bucket(slots[:, None] - slots[None, :], MPNET_NUM_BUCKETS,
                                          MPNET_MAX_DISTANCE).ravel().tolist())
    assert probed == reachable


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_every_block_reads_the_model_table_and_shared_positions(mpnet, exporter):
    rewritten, reports = rewrite_padding_free(export_to_onnx(mpnet, exporter))
    blocks = _fused_blocks(rewritten)
    assert len(blocks) == 2 and all(len(b.input) == 6 for b in blocks)
    assert {b.input[4] for b in blocks} == {ops.POSITIONS}
    assert len({b.input[5] for b in blocks}) == 1, "one table for the layers that share it"
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in blocks[0].attribute}
    assert attributes["relative_position_max_distance"] == MPNET_MAX_DISTANCE
    tables = {t.name: onnx.numpy_helper.to_array(t) for t in rewritten.graph.initializer}
    expected = mpnet.model.encoder.relative_attention_bias.weight.detach().numpy()[:MPNET_NUM_BUCKETS]
    reached = sorted(set(range(MPNET_NUM_BUCKETS)) - {MPNET_NUM_BUCKETS // 2})  # no distance is "-0"
    np.testing.assert_array_equal(tables[blocks[0].input[5]][reached], expected[reached])
    assert "relative position bias (32 buckets, max distance 128)" in reports[0].details[0]
    assert not any(n.op_type == "Softmax" for n in rewritten.graph.node)


def test_running_twice_changes_nothing(mpnet):
    once, _ = rewrite_padding_free(export_to_onnx(mpnet))
    twice, reports = rewrite_padding_free(once)
    assert [r.changed for r in reports] == [0, 0]
    assert twice.SerializeToString() == once.SerializeToString()


def test_a_scale_after_the_bias_scales_the_table(mpnet, ort_library):
    """Scores (q.k / sqrt(d) + bias) * 0.5: the factor applies to the bias too. The reference is the
    edited export itself, run by ONNX Runtime."""
    import onnxruntime

    graph = gs.import_onnx(export_to_onnx(mpnet))
    for softmax in [n for n in graph.nodes if n.op == "Softmax"]:
        mask_add = softmax.inputs[0].inputs[0]
        bias_add = next(t.inputs[0] for t in mask_add.inputs if t.inputs and t.inputs[0].op == "Add")
        halved = gs.Variable(f"{bias_add.name}/halved", dtype=np.float32)
        scaled = gs.Node("Mul", f"{bias_add.name}/Half", inputs=[bias_add.outputs[0], gs.Constant(
            f"{bias_add.name}/half", np.array(0.5, np.float32))], outputs=[halved])
        mask_add.inputs[mask_add.inputs.index(bias_add.outputs[0])] = halved
        graph.nodes.append(scaled)
    edited = gs.export_onnx(graph.toposort())
    rewritten, reports = rewrite_padding_free(edited)
    assert "scale 0.176777" in reports[0].details[0]
    reference = onnxruntime.InferenceSession(edited.SerializeToString(), providers=["CPUExecutionProvider"])
    ours = bytetx.InferenceSession(rewritten.SerializeToString())
    for padding, seed in (("right", 0), ("left", 1), ("holes", 2)):
        mask = ragged_mask(ragged_lengths(9, 70, np.random.default_rng(seed)), 70, padding, seed)
        feeds = _feeds(mpnet, mask, seed)
        expected = reference.run(["last_hidden_state"], feeds)[0]
        got = ours.run(["last_hidden_state"], feeds)[0]
        assert np.abs(got - expected)[mask == 1].max() <= TOLERANCE, padding
        assert np.all(got[mask == 0] == 0)


def test_another_bucketing_is_refused_not_dropped(tiny_model_dirs, monkeypatch):
    """The same term with T5's bucketing at another max distance would be lost or misread."""
    from transformers.models.mpnet.modeling_mpnet import MPNetEncoder

    bucket = MPNetEncoder.relative_position_bucket
    monkeypatch.setattr(MPNetEncoder, "relative_position_bucket",
                        staticmethod(lambda n, num_buckets=32, max_distance=128: bucket(n, num_buckets, 64)))
    exported = export_to_onnx(load_hf_model(tiny_model_dirs("mpnet")))
    with pytest.raises(RewriteError, match="attention block 0: matching stopped at Add node .*not the attention "
                                           "mask, and not a position bias: at sequence length 100 it is not a table "
                                           "indexed by MPNet's relative position buckets"):
        rewrite_padding_free(exported)


def test_a_term_that_depends_on_the_length_is_refused(mpnet):
    """A bias scaled by the sequence length is not a function of the distance alone."""
    graph = gs.import_onnx(export_to_onnx(mpnet))
    softmax = next(n for n in graph.nodes if n.op == "Softmax")
    mask_add = softmax.inputs[0].inputs[0]
    bias_add = next(t.inputs[0] for t in mask_add.inputs if t.inputs and t.inputs[0].op == "Add")
    term = next(t for t in bias_add.inputs if not (t.inputs and t.inputs[0].op == "Div"))
    length = gs.Variable("length", dtype=np.int64)
    width = gs.Variable("width", dtype=np.float32)
    scaled_term = gs.Variable("scaled_term", dtype=np.float32)
    graph.nodes += [
        gs.Node("Shape", inputs=[graph.inputs[0]], outputs=[length], attrs={"start": 1, "end": 2}),
        gs.Node("Cast", inputs=[length], outputs=[width], attrs={"to": onnx.TensorProto.FLOAT}),
        gs.Node("Mul", inputs=[term, width], outputs=[scaled_term]),
    ]
    bias_add.inputs[bias_add.inputs.index(term)] = scaled_term
    with pytest.raises(RewriteError, match="not a position bias: at sequence length 37 it is not a table"):
        rewrite_padding_free(gs.export_onnx(graph.toposort()))


def test_the_tensorrt_flavour_keeps_the_bias_for_the_plugin(mpnet):
    rewritten, _ = rewrite_padding_free(export_to_onnx(mpnet))
    converted, _ = to_tensorrt(rewritten)
    fused = [n for n in converted.graph.node if n.op_type == "FusedMHA"]
    assert fused and all(len(n.input) == 6 and n.input[4] == ops.POSITIONS for n in fused)
    assert all(any(a.name == "relative_position_max_distance" for a in n.attribute) for n in fused)


def test_a_hole_keeps_its_gap_in_the_bias(mpnet, ort_library):
    """Hugging Face buckets the distance between slots of the padded row: a hole inside a row widens
    the distances across it, so the same tokens give other outputs than without the hole; bytetx
    matches each."""
    rewritten, _ = rewrite_padding_free(export_to_onnx(mpnet))
    session = bytetx.InferenceSession(rewritten.SerializeToString())
    mask = np.array([[1] * 20 + [0] * 10, [1] * 10 + [0] * 10 + [1] * 10])
    feeds = _feeds(mpnet, mask, 3)
    feeds["input_ids"][1, mask[1] == 1] = feeds["input_ids"][0, :20]
    got = session.run(["last_hidden_state"], feeds)[0]
    with torch.no_grad():
        expected = mpnet.model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).last_hidden_state.numpy()
    assert np.abs(got - expected)[mask == 1].max() <= TOLERANCE
    assert np.abs(got[0, :20] - got[1, mask[1] == 1]).max() > 1e-3, "distances across the hole are wider"
