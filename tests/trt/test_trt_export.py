"""The trtexec command line that builds the engine of a model's TensorRT flavour
(bytetx.exporter.tensorrt), and bytetx-export --target tensorrt: no TensorRT needed."""

from __future__ import annotations

import onnx
import pytest
from bytetx.exporter import ExportError, export_to_onnx, load_hf_model
from bytetx.exporter import tensorrt as trt_export
from bytetx.graph_rewrite import is_tensorrt_flavour, rewrite_padding_free


@pytest.fixture(scope="module")
def rewritten(tiny_model_dirs) -> onnx.ModelProto:
    model, _ = rewrite_padding_free(
        export_to_onnx(load_hf_model(tiny_model_dirs("bert"), "eager"), "torchscript")
    )
    return model


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
    assert is_tensorrt_flavour(model)
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
