"""The float16 export for the CUDA back ends: structure checked here (the CPU ops are float32)."""

from __future__ import annotations

import onnx
from onnx import TensorProto

from bytetx.cli import main
from bytetx.exporter import export_to_onnx, load_hf_model, to_float16
from bytetx.graph_rewrite import rewrite_padding_free


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    infos = list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)
    types = {i.name: i.type.tensor_type.elem_type for i in infos}
    types.update({t.name: t.data_type for t in model.graph.initializer})
    return types


def test_float16_model_keeps_io_types_and_float32_statistics(tiny_model_dirs):
    rewritten, _ = rewrite_padding_free(export_to_onnx(load_hf_model(tiny_model_dirs("bert"))))
    half = to_float16(rewritten)
    types = _elem_types(half)
    assert [types[i.name] for i in half.graph.input] == [TensorProto.INT64] * 3
    assert [types[o.name] for o in half.graph.output] == [TensorProto.FLOAT] * 2
    float_weights = [t for t in half.graph.initializer if t.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16)]
    assert float_weights and all(t.data_type == TensorProto.FLOAT16 for t in float_weights)
    for node in half.graph.node:
        if node.op_type == "FusedMHA":
            assert types[node.input[0]] == TensorProto.FLOAT16 and types[node.input[1]] == TensorProto.FLOAT16
        if node.op_type == "LayerNormalization":
            stash = {a.name: a.i for a in node.attribute}["stash_type"]
            assert stash == TensorProto.FLOAT


def test_cli_refuses_float16_for_the_cpu_target(tmp_path, capsys):
    assert main(["--precision", "fp16", "-o", str(tmp_path / "m.onnx")]) == 1
    assert "needs --target ort-cuda" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_cli_writes_float16_model_for_cuda(tiny_model_dirs, tmp_path, capsys, ort_library):
    output = tmp_path / "bert.fp16.onnx"
    code = main([str(tiny_model_dirs("bert")), "-o", str(output), "--target", "ort-cuda", "--precision", "fp16"])
    assert code == 0, capsys.readouterr().err
    model = onnx.load(str(output))
    assert any(t.data_type == TensorProto.FLOAT16 for t in model.graph.initializer)
