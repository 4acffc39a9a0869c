"""Hugging Face model directory (offline) -> ONNX with dynamic batch and sequence axes."""

from __future__ import annotations

import inspect
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import onnx
import torch

from .configs import EXPORT_CONFIGS, EncoderExportConfig, UnsupportedModelError, config_by_structure

Exporter = Literal["torchscript", "dynamo"]
AttnImplementation = Literal["eager", "sdpa"]

DEFAULT_OPSET = 17


class ExportError(RuntimeError):
    """Export failed; the message says which step and why."""


@dataclass
class LoadedModel:
    model: torch.nn.Module
    config: object  # transformers.PretrainedConfig
    export_config: type[EncoderExportConfig]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    @property
    def pad_token_id(self) -> int:
        pad = getattr(self.config, "pad_token_id", None)
        return self.export_config.default_pad_token_id if pad is None else int(pad)


class _EncoderOutputs(torch.nn.Module):
    """Keyword inputs in, a tuple of named outputs out (transformers 5 takes keyword arguments)."""

    def __init__(self, model: torch.nn.Module, input_names: tuple[str, ...], output_names: tuple[str, ...]):
        super().__init__()
        self.model = model
        self.input_names = input_names
        self.output_names = output_names

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.model(**dict(zip(self.input_names, inputs)))
        return tuple(outputs[name] for name in self.output_names)


def read_model_type(model_dir: Path) -> str:
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise ExportError(f"{model_dir} is not a Hugging Face model directory: config.json is missing")
    try:
        config = json.loads(config_path.read_text())
    except OSError as error:
        raise ExportError(f"cannot read {config_path}: {error.strerror or error}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ExportError(f"{config_path} is not a valid model config: {error}") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise ExportError(f"{config_path} is not a valid model config: no \"model_type\" key")
    return config["model_type"]


def load_hf_model(model_dir: str | Path, attn_implementation: AttnImplementation = "eager") -> LoadedModel:
    """Load a base encoder (no head) from a local directory, never from a hub."""
    from transformers import AutoModel

    model_dir = Path(model_dir)
    model_type = read_model_type(model_dir)
    try:
        model = AutoModel.from_pretrained(
            str(model_dir), attn_implementation=attn_implementation, local_files_only=True
        )
    except Exception as error:  # noqa: BLE001 - corrupt weights raise safetensors', torch's or pickle's errors
        raise ExportError(f"could not load the model in {model_dir}: {error}") from None
    model.eval()
    export_config = EXPORT_CONFIGS.get(model_type) or config_by_structure(
        model_type, inspect.signature(model.forward).parameters, int(getattr(model.config, "type_vocab_size", 0) or 0))
    refusal = export_config.refusal(model.config)
    if refusal is not None:
        raise UnsupportedModelError(f"model type '{model_type}': {refusal}")
    outputs = ("last_hidden_state",) + (("pooler_output",) if getattr(model, "pooler", None) is not None else ())
    return LoadedModel(model, model.config, export_config, export_config.inputs, outputs)


def example_inputs(loaded: LoadedModel, batch: int = 2, length: int = 8) -> tuple[torch.Tensor, ...]:
    """Trace inputs: a ragged mask, so that no branch specializes on an all-ones mask."""
    generator = torch.Generator().manual_seed(0)
    vocab = int(getattr(loaded.config, "vocab_size", 100))
    ids = torch.randint(2, max(vocab, 3), (batch, length), generator=generator)
    mask = torch.ones(batch, length, dtype=torch.int64)
    mask[1:, length // 2 :] = 0
    ids[mask == 0] = loaded.pad_token_id
    by_name = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    return tuple(by_name[name] for name in loaded.input_names)


def export_to_onnx(
    loaded: LoadedModel, exporter: Exporter = "torchscript", opset: int = DEFAULT_OPSET
) -> onnx.ModelProto:
    """Export with dynamic ``batch`` and ``sequence`` axes; returns the model in memory."""
    wrapper = _EncoderOutputs(loaded.model, loaded.input_names, loaded.output_names).eval()
    inputs = example_inputs(loaded)
    buffer = io.BytesIO()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if exporter == "dynamo":
                batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
                program = torch.onnx.export(
                    wrapper,
                    inputs,
                    input_names=list(loaded.input_names),
                    output_names=list(loaded.output_names),
                    # One entry for forward's *inputs, holding one spec per tensor.
                    dynamic_shapes=(tuple({0: batch, 1: sequence} for _ in inputs),),
                    dynamo=True,
                    opset_version=max(opset, 18),
                    verbose=False,
                )
                program.save(buffer, external_data=False)
            else:
                axes = {name: {0: "batch", 1: "sequence"} for name in loaded.input_names}
                axes["last_hidden_state"] = {0: "batch", 1: "sequence"}
                if "pooler_output" in loaded.output_names:
                    axes["pooler_output"] = {0: "batch"}
                torch.onnx.export(
                    wrapper,
                    inputs,
                    buffer,
                    input_names=list(loaded.input_names),
                    output_names=list(loaded.output_names),
                    dynamic_axes=axes,
                    opset_version=opset,
                    do_constant_folding=True,
                    dynamo=False,
                )
    except Exception as error:  # noqa: BLE001 - torch raises many types; report the step
        raise ExportError(f"torch.onnx ({exporter}) failed to export the model: {error}") from error
    return onnx.load_from_string(buffer.getvalue())
