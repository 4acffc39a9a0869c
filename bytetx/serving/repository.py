"""Triton model repositories for a bytetx model.

Every repository serves the same client interface: ``bytetx`` (``input_ids`` INT64 [1, L], optionally
``token_type_ids``; outputs ``last_hidden_state`` [1, L, H] and ``sentence_embedding`` [1, H]) and the
ensemble ``bytetx_text`` (``text`` BYTES [1, 1] -> ``sentence_embedding``) over the tokenizer model
``bytetx_tokenizer``. The encoder is the packed-input flavour of the model (docs/ops.md, "Packed
inputs"), batched by Triton's dynamic batcher with ragged inputs, so no request is padded:

- ``python`` (what bytetx-serve runs): a Python-backend model.py concatenates the requests itself;
- ``onnxruntime`` and ``tensorrt`` (NVIDIA's containers): the backend concatenates the ragged inputs,
  the batch inputs ``cu_seqlens`` (BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO) and ``max_seqlen``
  (BATCH_MAX_ELEMENT_COUNT_AS_SHAPE) describe the batch, and the batch output
  BATCH_SCATTER_WITH_INPUT_SHAPE hands each request its rows of the packed ``last_hidden_state``.

Configs are built as Triton's ModelConfig protobuf (``tritonclient``) and written in its text format.
A repository is written beside its destination and renamed into place, so a failure leaves none.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import onnx

from bytetx.exporter import ExportError

ENCODER = "bytetx"
TOKENIZER = "bytetx_tokenizer"
TEXT = "bytetx_text"
MODEL_FILE = "model.onnx"
TRT_ONNX_FILE = "model.trt.onnx"
ENGINE_FILE = "model.plan"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_SETTINGS_FILE = "tokenizer_settings.json"
BACKEND_FOLDER = Path(__file__).resolve().parent / "backend"

Backend = Literal["python", "onnxruntime", "tensorrt"]
Device = Literal["cpu", "gpu"]
BACKENDS = ("python", "onnxruntime", "tensorrt")


@dataclass(frozen=True)
class Batching:
    """Dynamic batching of the encoder: requests per batch, how long the first waits for company, and
    how many model instances run batches side by side."""

    max_batch_size: int = 64
    max_queue_delay_us: int = 2000
    instances: int = 1


@dataclass
class ServedModel:
    """A packed-input model and what its repository needs to know about it."""

    packed: onnx.ModelProto
    hidden_size: int
    with_types: bool
    tokenizer_file: Path | None  # the model directory's tokenizer.json; None: no bytetx_text ensemble
    tokenizer_max_length: int


def model_config_pb2():
    """Triton's model-config protobuf module (from ``tritonclient``, in the ``serve`` extra)."""
    try:
        from tritonclient.grpc import model_config_pb2
    except ImportError:
        raise ExportError("Triton repositories need tritonclient: pip install 'bytetx[serve]'") from None
    return model_config_pb2


def encoder_config(model: ServedModel, backend: Backend, batching: Batching, device: Device = "cpu",
                   op_library: str | None = None):
    """The ModelConfig of ``bytetx`` for ``backend``; ``op_library`` is the path, as the server sees it,
    of the bytetx ONNX Runtime library (onnxruntime only)."""
    pb = model_config_pb2()
    ragged = ["input_ids"] + (["token_type_ids"] if model.with_types else [])
    config = pb.ModelConfig(name=ENCODER, max_batch_size=batching.max_batch_size)
    if backend == "tensorrt":
        config.platform = "tensorrt_plan"
    else:
        config.backend = backend
    for name in ragged:
        # The Python backend fills absent token types with zeros; stock backends allow no optional
        # ragged input.
        config.input.add(name=name, data_type=pb.TYPE_INT64, dims=[-1], allow_ragged_batch=True,
                         optional=backend == "python" and name == "token_type_ids")
    config.output.add(name="last_hidden_state", data_type=pb.TYPE_FP32, dims=[-1, model.hidden_size])
    config.output.add(name="sentence_embedding", data_type=pb.TYPE_FP32, dims=[model.hidden_size])
    if backend != "python":
        config.batch_input.add(kind=pb.BatchInput.BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO,
                               target_name=["cu_seqlens"], data_type=pb.TYPE_INT32, source_input=["input_ids"])
        config.batch_input.add(kind=pb.BatchInput.BATCH_MAX_ELEMENT_COUNT_AS_SHAPE,
                               target_name=["max_seqlen"], data_type=pb.TYPE_INT32, source_input=["input_ids"])
        config.batch_output.add(kind=pb.BatchOutput.BATCH_SCATTER_WITH_INPUT_SHAPE,
                                target_name=["last_hidden_state"], source_input=["input_ids"])
    if op_library is not None:
        config.model_operations.op_library_filename.append(op_library)
    config.dynamic_batching.max_queue_delay_microseconds = batching.max_queue_delay_us
    kind = pb.ModelInstanceGroup.KIND_GPU if device == "gpu" else pb.ModelInstanceGroup.KIND_CPU
    config.instance_group.add(kind=kind, count=batching.instances)
    return config


def tokenizer_config(batching: Batching):
    pb = model_config_pb2()
    config = pb.ModelConfig(name=TOKENIZER, backend="python", max_batch_size=batching.max_batch_size)
    config.input.add(name="text", data_type=pb.TYPE_STRING, dims=[1])
    config.output.add(name="input_ids", data_type=pb.TYPE_INT64, dims=[-1])
    config.dynamic_batching.max_queue_delay_microseconds = batching.max_queue_delay_us
    config.instance_group.add(kind=pb.ModelInstanceGroup.KIND_CPU, count=1)
    return config


def text_config(model: ServedModel, batching: Batching):
    pb = model_config_pb2()
    config = pb.ModelConfig(name=TEXT, platform="ensemble", max_batch_size=batching.max_batch_size)
    config.input.add(name="text", data_type=pb.TYPE_STRING, dims=[1])
    config.output.add(name="sentence_embedding", data_type=pb.TYPE_FP32, dims=[model.hidden_size])
    steps = config.ensemble_scheduling.step
    steps.add(model_name=TOKENIZER, model_version=-1, input_map={"text": "text"}, output_map={"input_ids": "token_ids"})
    steps.add(model_name=ENCODER, model_version=-1, input_map={"input_ids": "token_ids"},
              output_map={"sentence_embedding": "sentence_embedding"})
    return config


def write_repository(model: ServedModel, destination: str | Path, backend: Backend = "python",
                     batching: Batching = Batching(), device: Device = "cpu",
                     served_path: str | None = None) -> Path:
    """Write the repository of ``model`` for ``backend`` at ``destination`` (absent or an empty folder).

    ``served_path`` is where the server will see the repository (default: ``destination``, absolute);
    the ONNX Runtime config names the op library under it. Returns ``destination``.
    """
    if backend not in BACKENDS:
        raise ExportError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    destination = Path(destination)
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise ExportError(f"{destination} exists and is not an empty folder: choose a new path for the repository")
    parent = destination.absolute().parent
    if not parent.is_dir():
        raise ExportError(f"cannot write {destination}: folder {parent} does not exist")
    served = Path(served_path) if served_path else destination.absolute()
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=parent))
    except OSError as error:
        raise ExportError(f"cannot write {destination}: {error.strerror}") from None
    try:
        _write_encoder(model, staging / ENCODER, backend, batching, device, served / ENCODER)
        if model.tokenizer_file is not None:
            _write_tokenizer(model, staging / TOKENIZER, batching)
            _write_config(staging / TEXT, text_config(model, batching))
            (staging / TEXT / "1").mkdir()
        if backend != "python":
            (staging / "README.md").write_text(_deployment_readme(model, backend, device, served))
        os.chmod(staging, 0o755)
        if destination.exists():
            destination.rmdir()
        os.rename(staging, destination)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError):
            raise ExportError(f"cannot write {destination}: {error.strerror or error}") from None
        raise
    return destination


def _write_config(folder: Path, config) -> None:
    from google.protobuf import text_format

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.pbtxt").write_text(text_format.MessageToString(config))


def _write_encoder(model: ServedModel, folder: Path, backend: Backend, batching: Batching, device: Device,
                   served: Path) -> None:
    import bytetx

    version = folder / "1"
    version.mkdir(parents=True)
    op_library = None
    if backend == "python":
        onnx.save(model.packed, str(version / MODEL_FILE))
        shutil.copyfile(BACKEND_FOLDER / "encoder_model.py", version / "model.py")
    elif backend == "onnxruntime":
        onnx.save(model.packed, str(version / MODEL_FILE))
        library = Path(bytetx.ort_cuda_library_path() if device == "gpu" else bytetx.ort_library_path())
        shutil.copyfile(library, folder / library.name)
        op_library = str(served / library.name)
    else:
        from bytetx.exporter.tensorrt import plugin_library_path
        from bytetx.graph_rewrite import to_tensorrt

        onnx.save(to_tensorrt(model.packed)[0], str(folder / TRT_ONNX_FILE))
        library = plugin_library_path()
        if library.is_file():
            shutil.copyfile(library, folder / library.name)
        script = folder / "build_engine.sh"
        script.write_text(_engine_script(model, batching))
        script.chmod(0o755)
    _write_config(folder, encoder_config(model, backend, batching, device, op_library))


def _write_tokenizer(model: ServedModel, folder: Path, batching: Batching) -> None:
    (folder / "1").mkdir(parents=True)
    shutil.copyfile(BACKEND_FOLDER / "tokenizer_model.py", folder / "1" / "model.py")
    shutil.copyfile(model.tokenizer_file, folder / TOKENIZER_FILE)
    (folder / TOKENIZER_SETTINGS_FILE).write_text(json.dumps({"max_length": model.tokenizer_max_length}) + "\n")
    _write_config(folder, tokenizer_config(batching))


def engine_shapes(model: ServedModel, batching: Batching, max_length: int) -> dict[str, tuple[int, int, int]]:
    """TensorRT profile (min, opt, max) of each packed input: tokens up to a full batch of the longest
    sequences, ``cu_seqlens`` up to the batch size plus one, ``max_seqlen`` up to the longest sequence."""
    batch = batching.max_batch_size
    tokens = (1, max(1, batch * max_length // 4), batch * max_length)
    shapes = {"input_ids": tokens}
    if model.with_types:
        shapes["token_type_ids"] = tokens
    shapes["cu_seqlens"] = (2, max(2, batch // 2 + 1), batch + 1)
    shapes["max_seqlen"] = (1, max(1, max_length // 2), max_length)
    return shapes


def _model_max_length(model: ServedModel) -> int:
    metadata = {p.key: p.value for p in model.packed.metadata_props}
    return int(metadata.get("bytetx_max_length", model.tokenizer_max_length))


def _engine_script(model: ServedModel, batching: Batching) -> str:
    from bytetx.exporter.tensorrt import LIBRARY_NAME, format_command

    shapes = engine_shapes(model, batching, _model_max_length(model))
    command = ["trtexec", f"--onnx={TRT_ONNX_FILE}", f"--dynamicPlugins={LIBRARY_NAME}"]
    for index, flag in enumerate(("min", "opt", "max")):
        command.append(f"--{flag}Shapes=" + ",".join(f"{name}:{dims[index]}" for name, dims in shapes.items()))
    command += ["--stronglyTyped", f"--saveEngine=1/{ENGINE_FILE}"]
    return ("#!/bin/sh\n# Build the TensorRT engine on the GPU that will serve it (engines are specific to a GPU "
            "and a TensorRT version).\nset -e\ncd \"$(dirname \"$0\")\"\n" + format_command(command) + "\n")


def _deployment_readme(model: ServedModel, backend: Backend, device: Device, served: Path) -> str:
    types = ", token_type_ids INT64 [1, L]" if model.with_types else ""
    text = f", `{TEXT}` (text BYTES [1, 1] -> sentence_embedding) over `{TOKENIZER}`" if model.tokenizer_file else ""
    lines = [
        "# bytetx model repository",
        "",
        (f"Backend: {backend}. Models: `{ENCODER}` (input_ids INT64 [1, L]{types}; outputs last_hidden_state "
         f"FP32 [1, L, {model.hidden_size}], sentence_embedding FP32 [1, {model.hidden_size}]){text}."),
        "",
        f"Mount this folder at `{served}` (the configs name files under that path), then:",
        "",
    ]
    if backend == "tensorrt":
        plugins = served / ENCODER / "libbytetx_trt.so"
        lines += [
            (f"1. Build the engine inside NVIDIA's TensorRT container on the serving GPU, with "
             f"`{ENCODER}/libbytetx_trt.so` (bytetx built with TensorRT) beside `{ENCODER}/build_engine.sh`: "
             f"`sh {ENCODER}/build_engine.sh` writes `{ENCODER}/1/model.plan`."),
            f"2. `tritonserver --model-repository={served} --backend-config=tensorrt,plugins={plugins}`",
        ]
    else:
        library = "libbytetx_ort_cuda.so" if device == "gpu" else "libbytetx_ort.so"
        lines += [(f"`tritonserver --model-repository={served}` (the config loads `{ENCODER}/{library}` through "
                   "`model_operations { op_library_filename }`).")]
    if model.tokenizer_file:
        lines += ["", (f"`{TOKENIZER}` runs on the Python backend and needs the `tokenizers` package in the "
                       "server's Python (`pip install tokenizers`).")]
    return "\n".join(lines) + "\n"


def served_model(packed: onnx.ModelProto, tokenizer_file: Path | None, tokenizer_max_length: int) -> ServedModel:
    """A ServedModel from a packed-input model (to_packed_inputs) and its tokenizer."""
    outputs = {o.name: o for o in packed.graph.output}
    dims = outputs["sentence_embedding"].type.tensor_type.shape.dim
    if len(dims) != 2 or not dims[1].dim_value:
        raise ExportError("the packed model's sentence_embedding has no static hidden size")
    with_types = any(i.name == "token_type_ids" for i in packed.graph.input)
    return ServedModel(packed, int(dims[1].dim_value), with_types, tokenizer_file, tokenizer_max_length)
