"""The TensorRT flavour of a rewritten model (bytetx.exporter.tensorrt) and the trtexec command line:
no TensorRT needed. The node attributes are checked against the ONNX parser's plugin fallback: op type
= plugin name, string attributes plugin_version / plugin_namespace, the creator's fields as INT / FLOAT
attributes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from bytetx.exporter import ExportError, export_to_onnx, load_hf_model, to_float16
from bytetx.exporter import tensorrt as trt_export
from bytetx.graph_rewrite import rewrite_padding_free

# The fields each plugin's creator lists (plugins/trt), with the ONNX attribute type the parser turns
# into that field's type.
CREATOR_FIELDS = {
    "RemovePadding": {},
    "FusedMHA": {"num_heads": onnx.AttributeProto.INT, "scale": onnx.AttributeProto.FLOAT},
    "RebuildPadding": {},
}
PARSER_ATTRIBUTES = {"plugin_version", "plugin_namespace"}


@pytest.fixture(scope="module")
def rewritten(tiny_model_dirs) -> onnx.ModelProto:
    model, _ = rewrite_padding_free(
        export_to_onnx(load_hf_model(tiny_model_dirs("bert"), "eager"), "torchscript")
    )
    return model


def bytetx_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.domain == trt_export.OP_DOMAIN]


def attributes(node: onnx.NodeProto) -> dict[str, onnx.AttributeProto]:
    return {a.name: a for a in node.attribute}


def test_nodes_map_onto_the_plugins_as_the_parser_looks_them_up(rewritten):
    converted = trt_export.to_tensorrt(rewritten)
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
    assert trt_export.is_tensorrt_flavour(converted) and not trt_export.is_tensorrt_flavour(rewritten)


def test_remove_padding_gets_the_size_tensor_output(rewritten):
    converted = trt_export.to_tensorrt(rewritten)
    (node,) = [n for n in bytetx_nodes(converted) if n.op_type == "RemovePadding"]
    assert len(node.output) == 4 and node.output[3] == trt_export.NUM_TOKENS_OUTPUT
    info = {v.name: v for v in converted.graph.value_info}[trt_export.NUM_TOKENS_OUTPUT]
    assert info.type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert len(info.type.tensor_type.shape.dim) == 0
    original = next(n for n in bytetx_nodes(rewritten) if n.op_type == "RemovePadding")
    assert list(node.output[:3]) == list(original.output)
    assert len(original.output) == 3, "the input model must not change"


def test_everything_else_is_unchanged_and_conversion_is_idempotent(rewritten):
    converted = trt_export.to_tensorrt(rewritten)
    assert [(n.op_type, list(n.input)) for n in converted.graph.node] == [
        (n.op_type, list(n.input)) for n in rewritten.graph.node
    ]
    assert [i.name for i in converted.graph.input] == [i.name for i in rewritten.graph.input]
    assert [o.name for o in converted.graph.output] == [o.name for o in rewritten.graph.output]
    again = trt_export.to_tensorrt(converted)
    assert again.SerializeToString() == converted.SerializeToString()
    onnx.checker.check_model(converted)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_missing_qkv_bias_becomes_a_zero_bias(rewritten, precision):
    model = to_float16(rewritten) if precision == "fp16" else rewritten
    stripped = onnx.ModelProto()
    stripped.CopyFrom(model)
    mha = [n for n in stripped.graph.node if n.op_type == "FusedMHA"]
    for node in mha:
        node.input[1] = ""
    converted = trt_export.to_tensorrt(stripped)
    initializers = {i.name: onnx.numpy_helper.to_array(i) for i in converted.graph.initializer}
    expected = np.float16 if precision == "fp16" else np.float32
    for node in (n for n in converted.graph.node if n.op_type == "FusedMHA"):
        bias = initializers[node.input[1]]
        assert bias.dtype == expected and not bias.any()
        assert bias.shape == (3 * 32,)  # the tiny BERT: hidden 32
    assert len({n.input[1] for n in converted.graph.node if n.op_type == "FusedMHA"}) == len(mha)


def test_a_model_that_was_not_rewritten_is_refused(tiny_model_dirs):
    original = export_to_onnx(load_hf_model(tiny_model_dirs("bert"), "eager"), "torchscript")
    with pytest.raises(
        ExportError, match="has no com.bytetx ops: rewrite it for padding-free inference first"
    ):
        trt_export.to_tensorrt(original)


def test_an_op_without_plugin_is_refused(rewritten):
    model = onnx.ModelProto()
    model.CopyFrom(rewritten)
    model.graph.node.append(onnx.helper.make_node("BiasGelu", ["x"], ["y"], domain="com.bytetx"))
    with pytest.raises(ExportError, match="com.bytetx op\\(s\\) BiasGelu have no TensorRT plugin"):
        trt_export.to_tensorrt(model)


def test_profile_inputs(rewritten):
    assert trt_export.profile_inputs(rewritten) == ["input_ids", "attention_mask", "token_type_ids"]
    model = onnx.ModelProto()
    model.CopyFrom(rewritten)
    model.graph.input.append(
        onnx.helper.make_tensor_value_info("pixels", onnx.TensorProto.FLOAT, [1, 3, 8, 8])
    )
    with pytest.raises(ExportError, match="input 'pixels' has rank 4"):
        trt_export.profile_inputs(model)


INPUTS = ["input_ids", "attention_mask"]


def test_trtexec_command_dynamic():
    command = trt_export.trtexec_command(
        "m.trt.onnx",
        "/lib/libbytetx_trt.so",
        INPUTS,
        trt_export.ShapeProfile((1, 1), (4, 64), (16, 256)),
        engine_path="m.engine",
    )
    assert command == [
        "trtexec",
        "--onnx=m.trt.onnx",
        "--dynamicPlugins=/lib/libbytetx_trt.so",
        "--minShapes=input_ids:1x1,attention_mask:1x1",
        "--optShapes=input_ids:4x64,attention_mask:4x64",
        "--maxShapes=input_ids:16x256,attention_mask:16x256",
        "--stronglyTyped",
        "--saveEngine=m.engine",
    ]


def test_trtexec_command_serialized_plugin_and_static_loading():
    serialized = trt_export.trtexec_command("m.onnx", "lib.so", INPUTS, serialize_plugin=True)
    assert serialized[2:5] == [
        "--dynamicPlugins=lib.so",
        "--setPluginsToSerialize=lib.so",
        "--versionCompatible",
    ]
    static = trt_export.trtexec_command(
        "m.onnx", "lib.so", INPUTS, plugin_loading="static", strongly_typed=False
    )
    assert "--staticPlugins=lib.so" in static
    assert not any(
        a.startswith(("--dynamicPlugins", "--setPluginsToSerialize", "--stronglyTyped")) for a in static
    )
    assert static[-1].startswith("--maxShapes=input_ids:32x512")  # the default profile, no engine file
    with pytest.raises(ExportError, match="needs dynamic loading"):
        trt_export.trtexec_command("m.onnx", "lib.so", INPUTS, plugin_loading="static", serialize_plugin=True)
    with pytest.raises(ExportError, match="plugin_loading must be 'dynamic' or 'static'"):
        trt_export.trtexec_command("m.onnx", "lib.so", INPUTS, plugin_loading="lazy")


def test_format_command_quotes():
    command = trt_export.trtexec_command("my model.onnx", "lib.so", INPUTS, trtexec="/opt/trt/bin/trtexec")
    line = trt_export.format_command(command)
    assert line.startswith("/opt/trt/bin/trtexec '--onnx=my model.onnx' --dynamicPlugins=lib.so")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"min": (2, 1), "opt": (1, 128)}, "profile batch: min 2 <= opt 1 <= max 32 does not hold"),
        ({"opt": (8, 1024)}, "profile sequence: min 1 <= opt 1024 <= max 512 does not hold"),
        ({"min": (0, 1)}, "profile min must be \\(batch, sequence\\) of positive integers"),
        ({"max": (32,)}, "profile max must be \\(batch, sequence\\)"),
    ],
)
def test_shape_profile_validation(kwargs, message):
    with pytest.raises(ExportError, match=message):
        trt_export.ShapeProfile(**kwargs)


def test_plugin_library_path(monkeypatch, tmp_path):
    monkeypatch.delenv(trt_export.LIBRARY_ENV, raising=False)
    default = trt_export.plugin_library_path()
    assert default.name == "libbytetx_trt.so" and default.parent.name == "lib"
    monkeypatch.setenv(trt_export.LIBRARY_ENV, str(tmp_path / "custom.so"))
    assert trt_export.plugin_library_path() == tmp_path / "custom.so"


# bytetx-export --target tensorrt


def test_cli_writes_the_tensorrt_flavour_and_prints_its_trtexec_command(
    tiny_model_dirs, tmp_path, capsys, monkeypatch, ort_library
):
    from bytetx.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(trt_export.LIBRARY_ENV, "/opt/plugins/libbytetx_trt.so")
    code = main([str(tiny_model_dirs("bert")), "--target", "tensorrt", "--precision", "fp16",
                 "--trt-profile", "1x2,4x16,8x32", "--trt-plugins", "static"])
    out, err = capsys.readouterr()
    assert code == 0, err
    source = tiny_model_dirs("bert")
    written = tmp_path / f"{source.name}.bytetx.trt.onnx"
    model = onnx.load(str(written))
    assert trt_export.is_tensorrt_flavour(model)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert any(
        init.data_type == onnx.TensorProto.FLOAT16 for init in model.graph.initializer
    ), "--precision fp16 was not applied"
    assert "vs Hugging Face PyTorch" in err and "FAILED" not in err
    expected = trt_export.trtexec_command(
        written.name, "/opt/plugins/libbytetx_trt.so", trt_export.profile_inputs(model),
        trt_export.ShapeProfile((1, 2), (4, 16), (8, 32)),
        engine_path=f"{source.name}.bytetx.trt.plan", plugin_loading="static",
    )
    assert out.strip() == trt_export.format_command(expected)
    assert "--staticPlugins=/opt/plugins/libbytetx_trt.so" in out
    assert "is not built here" in err


@pytest.mark.parametrize(
    "profile",
    ["1x1,8x128", "1x1,8x128,32", "1x1,8xa,32x512", "0x1,8x128,32x512", "1x1,64x128,32x512"],
)
def test_cli_refuses_a_malformed_profile(profile, capsys):
    from bytetx.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--target", "tensorrt", "--trt-profile", profile])
    assert exit_info.value.code == 2
    assert "--trt-profile" in capsys.readouterr().err


def test_cli_serialize_plugin_adds_the_library_to_the_engine(tiny_model_dirs, tmp_path, capsys, ort_library):
    from bytetx.cli import main

    output = tmp_path / "model.onnx"
    code = main([str(tiny_model_dirs("bert")), "-o", str(output), "--no-verify", "--target", "tensorrt",
                 "--trt-serialize-plugin"])
    out, err = capsys.readouterr()
    assert code == 0, err
    library = str(trt_export.plugin_library_path())
    assert f"--setPluginsToSerialize={library}" in out and "--versionCompatible" in out
    assert f"--dynamicPlugins={library}" in out


def test_cli_serialize_plugin_refuses_static_loading(tmp_path, capsys):
    from bytetx.cli import main

    output = tmp_path / "model.onnx"
    code = main(["--target", "tensorrt", "--trt-plugins", "static", "--trt-serialize-plugin", "-o", str(output)])
    assert code == 1
    assert "needs --trt-plugins dynamic" in capsys.readouterr().err
    assert not output.exists()


def test_cli_refuses_tensorrt_options_for_another_target(tmp_path, capsys):
    from bytetx.cli import main

    code = main(["--target", "ort-cpu", "--trt-plugins", "static", "-o", str(tmp_path / "m.onnx")])
    assert code == 1
    assert "need --target tensorrt" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
