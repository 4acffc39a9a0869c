"""The TensorRT flavour of a rewritten model (bytetx.graph_rewrite.to_tensorrt): no TensorRT needed. The
node attributes are checked against the ONNX parser's plugin fallback: op type = plugin name, string
attributes plugin_version / plugin_namespace, the creator's fields as INT / FLOAT attributes."""

from __future__ import annotations

import onnx
import pytest

from bytetx import ops
from bytetx.exporter import export_to_onnx, load_hf_model, to_float16
from bytetx.graph_rewrite import RewriteError, is_tensorrt_flavour, rewrite_padding_free, to_tensorrt

# The fields each plugin's creator lists (plugins/trt), with the ONNX attribute type the parser turns
# into that field's type.
CREATOR_FIELDS = {
    "RemovePadding": {},
    "FusedMHA": {
        "num_heads": onnx.AttributeProto.INT,
        "scale": onnx.AttributeProto.FLOAT,
        "relative_position_max_distance": onnx.AttributeProto.INT,
        "rotary_frequencies": onnx.AttributeProto.FLOATS,
        "sliding_window": onnx.AttributeProto.INT,
        "pos_att_type": onnx.AttributeProto.STRING,
        "position_buckets": onnx.AttributeProto.INT,
        "max_relative_positions": onnx.AttributeProto.INT,
    },
    "RebuildPadding": {},
}
PARSER_ATTRIBUTES = {"plugin_version", "plugin_namespace"}


@pytest.fixture(scope="module")
def rewritten(tiny_bert_onnx) -> onnx.ModelProto:
    model, _ = rewrite_padding_free(tiny_bert_onnx())
    return model


@pytest.fixture(scope="module")
def rewritten_mpnet(tiny_model_dirs) -> onnx.ModelProto:
    model, _ = rewrite_padding_free(export_to_onnx(load_hf_model(tiny_model_dirs("mpnet"), "eager"), "torchscript"))
    return model


@pytest.fixture(scope="module")
def rewritten_deberta(tiny_model_dirs) -> onnx.ModelProto:
    model, _ = rewrite_padding_free(export_to_onnx(load_hf_model(tiny_model_dirs("deberta-v2"))))
    return model


def copy_of(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def bytetx_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.domain == ops.DOMAIN]


def attributes(node: onnx.NodeProto) -> dict[str, onnx.AttributeProto]:
    return {a.name: a for a in node.attribute}


@pytest.mark.parametrize("model_type", ["bert", "mpnet", "deberta"])
def test_nodes_map_onto_the_plugins_as_the_parser_looks_them_up(request, model_type):
    rewritten = request.getfixturevalue({"bert": "rewritten", "mpnet": "rewritten_mpnet",
                                         "deberta": "rewritten_deberta"}[model_type])
    converted, report = to_tensorrt(rewritten)
    nodes = bytetx_nodes(converted)
    assert sorted({n.op_type for n in nodes}) == ["FusedMHA", "RebuildPadding", "RemovePadding"]
    for node in nodes:
        attrs = attributes(node)
        assert attrs["plugin_version"].type == onnx.AttributeProto.STRING
        assert attrs["plugin_version"].s == b"1"
        assert attrs["plugin_namespace"].s == b"com.bytetx"
        fields = CREATOR_FIELDS[node.op_type]
        for name, attribute in attrs.items():
            if name in PARSER_ATTRIBUTES:
                continue
            assert name in fields, f"{node.op_type} attribute {name} is no field of the plugin's creator"
            assert attribute.type == fields[name], (
                f"{node.op_type}.{name} would reach the plugin as another type"
            )
    assert all("num_heads" in attributes(n) for n in nodes if n.op_type == "FusedMHA")
    assert is_tensorrt_flavour(converted) and not is_tensorrt_flavour(rewritten)
    assert report.changed == len(nodes)  # one line per node: its attributes (and the size tensor)
    assert all("plugin_version 1, plugin_namespace com.bytetx" in line for line in report.details)


def test_remove_padding_gets_the_size_tensor_output(rewritten):
    converted, report = to_tensorrt(rewritten)
    (node,) = [n for n in bytetx_nodes(converted) if n.op_type == "RemovePadding"]
    assert len(node.output) == 4 and node.output[3] == ops.NUM_TOKENS
    info = {v.name: v for v in converted.graph.value_info}[ops.NUM_TOKENS]
    assert info.type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert len(info.type.tensor_type.shape.dim) == 0
    original = next(n for n in bytetx_nodes(rewritten) if n.op_type == "RemovePadding")
    assert list(node.output[:3]) == list(original.output)
    assert len(original.output) == 3, "the input model must not change"
    assert any(f"size tensor output '{ops.NUM_TOKENS}'" in line for line in report.details)


def test_everything_else_is_unchanged_and_conversion_is_idempotent(rewritten):
    converted, _ = to_tensorrt(rewritten)
    assert [(n.op_type, list(n.input)) for n in converted.graph.node] == [
        (n.op_type, list(n.input)) for n in rewritten.graph.node
    ]
    assert [i.name for i in converted.graph.input] == [i.name for i in rewritten.graph.input]
    assert [o.name for o in converted.graph.output] == [o.name for o in rewritten.graph.output]
    assert {i.name for i in converted.graph.initializer} == {i.name for i in rewritten.graph.initializer}
    assert list(converted.opset_import) == list(rewritten.opset_import)
    again, report = to_tensorrt(converted)
    assert report.changed == 0
    assert again.SerializeToString() == converted.SerializeToString()
    onnx.checker.check_model(converted)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_every_fused_mha_keeps_its_bias(rewritten, precision):
    model = to_float16(rewritten) if precision == "fp16" else rewritten
    converted, _ = to_tensorrt(model)
    before = [list(n.input) for n in model.graph.node if n.op_type == "FusedMHA"]
    after = [list(n.input) for n in converted.graph.node if n.op_type == "FusedMHA"]
    assert after == before and len(after) == 2
    initializers = {i.name for i in converted.graph.initializer}
    assert all(inputs[1] in initializers for inputs in after)


def test_a_fused_mha_without_bias_is_refused(rewritten):
    stripped = onnx.ModelProto()
    stripped.CopyFrom(rewritten)
    node = next(n for n in stripped.graph.node if n.op_type == "FusedMHA")
    node.input[1] = ""
    message = f"FusedMHA node '{node.name}' has no qkv_bias; the op requires it"
    with pytest.raises(RewriteError, match=message):
        to_tensorrt(stripped)


def test_a_model_that_was_not_rewritten_is_refused(tiny_bert_onnx):
    with pytest.raises(
        RewriteError, match="has no com.bytetx ops: rewrite it for padding-free inference first"
    ):
        to_tensorrt(tiny_bert_onnx())


def test_an_op_without_plugin_is_refused(rewritten):
    model = onnx.ModelProto()
    model.CopyFrom(rewritten)
    model.graph.node.append(onnx.helper.make_node("BiasGelu", ["x"], ["y"], domain="com.bytetx"))
    with pytest.raises(RewriteError, match="com.bytetx op\\(s\\) BiasGelu have no TensorRT plugin"):
        to_tensorrt(model)


def test_a_relative_position_bias_reaches_the_plugin_as_its_two_inputs_and_field(rewritten_mpnet):
    converted, _ = to_tensorrt(rewritten_mpnet)
    nodes = [n for n in bytetx_nodes(converted) if n.op_type == "FusedMHA"]
    before = [list(n.input) for n in bytetx_nodes(rewritten_mpnet) if n.op_type == "FusedMHA"]
    assert [list(n.input) for n in nodes] == before and len(nodes) == 2
    initializers = {i.name: i for i in converted.graph.initializer}
    for node in nodes:
        assert len(node.input) == 6 and node.input[4] == ops.POSITIONS
        assert attributes(node)["relative_position_max_distance"].i == 128
        assert list(initializers[node.input[5]].dims) == [32, 4]  # [num_buckets, num_heads]


@pytest.mark.parametrize(
    "change, message",
    [
        ("no_table", "has inputs .*; with its attributes the plugin takes qkv, qkv_bias, cu_seqlens, token_offset, "
                     "positions, relative_position_bias"),
        ("no_max_distance", "has a relative position bias without the attribute relative_position_max_distance"),
    ],
)
def test_a_broken_relative_position_bias_is_refused(rewritten_mpnet, change, message):
    model = copy_of(rewritten_mpnet)
    node = next(n for n in model.graph.node if n.op_type == "FusedMHA")
    if change == "no_table":
        node.input[5] = ""
    else:
        kept = [a for a in node.attribute if a.name != "relative_position_max_distance"]
        del node.attribute[:]
        node.attribute.extend(kept)
    with pytest.raises(RewriteError, match=f"FusedMHA node '{node.name}' {message}"):
        to_tensorrt(model)


@pytest.mark.parametrize("attribute, value", [("rotary_frequencies", [1.0, 0.5]), ("sliding_window", 64)])
def test_rotary_embeddings_and_the_window_reach_the_plugin_with_positions(rewritten_mpnet, attribute, value):
    """A position feature on a node with positions only (ModernBERT's layout, made here from MPNet's by
    dropping the bias): the plugin's five inputs and the field as the parser reads them."""
    model = copy_of(rewritten_mpnet)
    node = next(n for n in model.graph.node if n.op_type == "FusedMHA")
    del node.input[5]
    kept = [a for a in node.attribute if a.name != "relative_position_max_distance"]
    del node.attribute[:]
    node.attribute.extend([*kept, onnx.helper.make_attribute(attribute, value)])
    converted, _ = to_tensorrt(model)
    fused = next(n for n in converted.graph.node if n.name == node.name)
    assert len(fused.input) == 5 and fused.input[4] == ops.POSITIONS
    assert attributes(fused)[attribute].type == CREATOR_FIELDS["FusedMHA"][attribute]
    del node.input[4]
    with pytest.raises(RewriteError, match=f"FusedMHA node '{node.name}' has inputs .*; with its attributes the "
                                           "plugin takes qkv, qkv_bias, cu_seqlens, token_offset, positions"):
        to_tensorrt(model)


@pytest.mark.parametrize("dropped, terms", [(None, "c2p|p2c"), (7, "c2p"), (6, "p2c")])
def test_disentangled_terms_reach_the_plugin_as_gap_free_tables_and_their_field(rewritten_deberta, dropped, terms):
    """The op's empty relative_position_bias slot (and an absent table) go; pos_att_type says which
    tables stay, in the op's order. Converting again changes nothing."""
    model = copy_of(rewritten_deberta)
    for node in model.graph.node:
        if node.op_type == "FusedMHA" and dropped is not None:
            node.input[dropped] = ""
    before = {n.name: list(n.input) for n in model.graph.node if n.op_type == "FusedMHA"}
    converted, _ = to_tensorrt(model)
    nodes = [n for n in converted.graph.node if n.op_type == "FusedMHA"]
    assert len(nodes) == 2
    for node in nodes:
        given = before[node.name]
        assert list(node.input) == [*given[:5], *(name for name in given[6:] if name)]
        assert attributes(node)["pos_att_type"].s.decode() == terms
        assert attributes(node)["position_buckets"].type == onnx.AttributeProto.INT
    again, report = to_tensorrt(converted)
    assert again.SerializeToString() == converted.SerializeToString() and report.changed == 0


@pytest.mark.parametrize(
    "change, message",
    [
        ("no_tables", "has the attribute position_buckets and inputs .*; the op takes positions, no "
                      "relative_position_bias, and position_key, position_query or both with it"),
        ("no_positions", "has the attribute position_buckets and inputs"),
        ("terms_unlike_tables", "has pos_att_type 'p2c' and inputs .*; the plugin takes qkv, qkv_bias, cu_seqlens, "
                                "token_offset, positions, position_query"),
    ],
)
def test_broken_disentangled_terms_are_refused(rewritten_deberta, change, message):
    model = copy_of(rewritten_deberta)
    if change == "terms_unlike_tables":
        model, _ = to_tensorrt(model)
    node = next(n for n in model.graph.node if n.op_type == "FusedMHA")
    if change == "no_tables":
        node.input[6] = node.input[7] = ""
    elif change == "no_positions":
        node.input[4] = ""
    else:
        next(a for a in node.attribute if a.name == "pos_att_type").s = b"p2c"
    with pytest.raises(RewriteError, match=f"FusedMHA node '{node.name}' {message}"):
        to_tensorrt(model)
