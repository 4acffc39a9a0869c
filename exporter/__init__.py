"""Hugging Face BERT-family models to ONNX (installed as ``bytetx.exporter``)."""

from .configs import EXPORT_CONFIGS, EncoderExportConfig, UnsupportedModelError, config_by_structure
from .hf_export import DEFAULT_OPSET, ExportError, LoadedModel, export_to_onnx, load_hf_model
from .model_io import load_onnx, save_onnx_atomic
from .precision import to_float16

__all__ = [
    "DEFAULT_OPSET",
    "EXPORT_CONFIGS",
    "EncoderExportConfig",
    "ExportError",
    "LoadedModel",
    "UnsupportedModelError",
    "config_by_structure",
    "export_to_onnx",
    "load_hf_model",
    "load_onnx",
    "save_onnx_atomic",
    "to_float16",
]
