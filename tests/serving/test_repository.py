"""Triton model repositories: every generated config.pbtxt parses with Triton's own model-config
protobuf (tritonclient) and says what the backend needs; failed writes leave nothing behind.

The ONNX Runtime and TensorRT backends exist only in NVIDIA's containers: these configs are checked by
parsing, not served here (the Python-backend repository is served in test_server.py).
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from bytetx.exporter import ExportError, export_to_onnx, load_hf_model
from bytetx.graph_rewrite import to_packed_inputs
from fixtures.tiny_models import HIDDEN
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

from bytetx.cli import main as export_main
from bytetx.serving.repository import Batching, served_model, write_repository


@pytest.fixture(scope="module")
def tiny_served(tiny_model_dirs, minilm_dir):
    packed, _ = to_packed_inputs(export_to_onnx(load_hf_model(tiny_model_dirs("bert"))), "mean", True)
    return served_model(packed, minilm_dir / "tokenizer.json", 100)


def parse(path: Path):
    return text_format.Parse(path.read_text(), pb.ModelConfig())


def configs(repository: Path) -> dict[str, object]:
    return {p.parent.name: parse(p) for p in sorted(repository.glob("*/config.pbtxt"))}


def _check_encoder_interface(config, ragged_types_optional: bool):
    inputs = {i.name: i for i in config.input}
    assert list(inputs) == ["input_ids", "token_type_ids"]
    assert all(i.allow_ragged_batch and i.data_type == pb.TYPE_INT64 and list(i.dims) == [-1] for i in inputs.values())
    assert inputs["token_type_ids"].optional is ragged_types_optional
    outputs = {o.name: list(o.dims) for o in config.output}
    assert outputs == {"last_hidden_state": [-1, HIDDEN], "sentence_embedding": [HIDDEN]}
    assert config.max_batch_size == 64 and config.HasField("dynamic_batching")


def test_python_backend_repository(tiny_served, tmp_path):
    repository = write_repository(tiny_served, tmp_path / "repo", "python")
    found = configs(repository)
    assert set(found) == {"bytetx", "bytetx_tokenizer", "bytetx_text"}
    encoder = found["bytetx"]
    assert encoder.backend == "python" and not encoder.batch_input
    _check_encoder_interface(encoder, ragged_types_optional=True)
    assert onnx.load(str(repository / "bytetx" / "1" / "model.onnx")).graph.input[0].name == "input_ids"
    assert (repository / "bytetx" / "1" / "model.py").is_file()
    assert (repository / "bytetx_tokenizer" / "tokenizer.json").is_file()
    steps = found["bytetx_text"].ensemble_scheduling.step
    assert [s.model_name for s in steps] == ["bytetx_tokenizer", "bytetx"]
    assert dict(steps[0].output_map) == {"input_ids": "token_ids"} and dict(steps[1].input_map) == {"input_ids": "token_ids"}
    assert found["bytetx_text"].input[0].data_type == pb.TYPE_STRING


@pytest.mark.parametrize("backend,device", [("onnxruntime", "gpu"), ("onnxruntime", "cpu"), ("tensorrt", "gpu")])
def test_stock_backend_repository(tiny_served, tmp_path, backend, device):
    repository = write_repository(tiny_served, tmp_path / "repo", backend, Batching(), device, "/models")
    encoder = configs(repository)["bytetx"]
    _check_encoder_interface(encoder, ragged_types_optional=False)
    batch_inputs = {b.target_name[0]: (b.kind, b.data_type, list(b.source_input)) for b in encoder.batch_input}
    assert batch_inputs == {
        "cu_seqlens": (pb.BatchInput.BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO, pb.TYPE_INT32, ["input_ids"]),
        "max_seqlen": (pb.BatchInput.BATCH_MAX_ELEMENT_COUNT_AS_SHAPE, pb.TYPE_INT32, ["input_ids"]),
    }
    (scatter,) = encoder.batch_output
    assert scatter.kind == pb.BatchOutput.BATCH_SCATTER_WITH_INPUT_SHAPE
    assert list(scatter.target_name) == ["last_hidden_state"] and list(scatter.source_input) == ["input_ids"]
    kind = pb.ModelInstanceGroup.KIND_GPU if device == "gpu" else pb.ModelInstanceGroup.KIND_CPU
    assert encoder.instance_group[0].kind == kind
    readme = (repository / "README.md").read_text()
    if backend == "onnxruntime":
        assert encoder.backend == "onnxruntime"
        (library,) = encoder.model_operations.op_library_filename
        name = "libbytetx_ort_cuda.so" if device == "gpu" else "libbytetx_ort.so"
        assert library == f"/models/bytetx/{name}" and (repository / "bytetx" / name).is_file()
        model = onnx.load(str(repository / "bytetx" / "1" / "model.onnx"))
        # The backend's checks: ragged inputs are [-1] model inputs, batch inputs are int32 model inputs.
        dims = {i.name: len(i.type.tensor_type.shape.dim) for i in model.graph.input}
        assert dims == {"input_ids": 1, "token_type_ids": 1, "cu_seqlens": 1, "max_seqlen": 1}
    else:
        assert encoder.platform == "tensorrt_plan" and not encoder.model_operations.op_library_filename
        script = (repository / "bytetx" / "build_engine.sh").read_text()
        assert "--dynamicPlugins=libbytetx_trt.so" in script and "--saveEngine=1/model.plan" in script
        assert "--maxShapes=input_ids:8192,token_type_ids:8192,cu_seqlens:65,max_seqlen:128" in script
        trt_model = onnx.load(str(repository / "bytetx" / "model.trt.onnx"))
        assert all(any(a.name == "plugin_namespace" for a in n.attribute) for n in trt_model.graph.node
                   if n.domain == "com.bytetx")
        assert "--backend-config=tensorrt,plugins=/models/bytetx/libbytetx_trt.so" in readme
    assert "/models" in readme


def test_a_non_empty_destination_is_refused_and_kept(tiny_served, tmp_path):
    destination = tmp_path / "repo"
    destination.mkdir()
    (destination / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an empty folder"):
        write_repository(tiny_served, destination, "python")
    assert [p.name for p in destination.iterdir()] == ["keep.txt"]


def test_a_failed_write_leaves_nothing(tiny_served, tmp_path):
    broken = served_model(tiny_served.packed, tmp_path / "missing-tokenizer.json", 100)
    with pytest.raises(ExportError, match="cannot write .*repo: No such file"):
        write_repository(broken, tmp_path / "repo", "python")
    assert list(tmp_path.iterdir()) == []


def test_export_cli_writes_a_repository(tiny_model_dirs, tmp_path):
    output = tmp_path / "model_repository"
    assert export_main([str(tiny_model_dirs("bert")), "--target", "triton", "-o", str(output),
                        "--triton-device", "cpu"]) == 0
    encoder = configs(output)["bytetx"]
    assert encoder.backend == "onnxruntime" and set(configs(output)) == {"bytetx"}  # no tokenizer.json
    assert list(encoder.model_operations.op_library_filename) == [str(output.absolute() / "bytetx" / "libbytetx_ort.so")]


def test_export_cli_refuses_onnx_sources_and_leaves_the_output_alone(tiny_model_dirs, tmp_path, capsys):
    model = tmp_path / "model.onnx"
    onnx.save(export_to_onnx(load_hf_model(tiny_model_dirs("bert"))), str(model))
    assert export_main([str(model), "--target", "triton", "-o", str(tmp_path / "out")]) == 1
    assert "needs a Hugging Face model directory" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
