from __future__ import annotations

import onnx
import pytest

from bytetx.exporter import export_to_onnx, load_hf_model


@pytest.fixture(scope="module")
def tiny_bert_onnx(tiny_model_dirs):
    """``get(attention, exporter)``: the tiny BERT (2 layers, 4 heads, pooler) exported to ONNX."""
    cache: dict[tuple[str, str], onnx.ModelProto] = {}

    def get(attention: str = "eager", exporter: str = "torchscript") -> onnx.ModelProto:
        if (attention, exporter) not in cache:
            cache[attention, exporter] = export_to_onnx(load_hf_model(tiny_model_dirs("bert"), attention), exporter)
        copy = onnx.ModelProto()
        copy.CopyFrom(cache[attention, exporter])
        return copy

    return get
