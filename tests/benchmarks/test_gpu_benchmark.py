"""The GPU benchmark's behaviour that needs no GPU, run as a script (tests never import benchmarks):
the models it writes with --models-only (ONNX Runtime's packing-mode baseline really is packed) and its
refusal to measure without a CUDA device. Nothing here times."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_benchmark.py"
MINILM_LAYERS = 6


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_ort_packing_mode_baseline_is_packed(tmp_path, precision):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--models-only", "--models", "minilm-l6", "--runners", "ort-fused,ort-packed",
         "--precision", precision, "--output-dir", str(tmp_path)],
        check=False, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    fused = onnx.load(str(tmp_path / f"minilm-l6.ort-fused.{precision}.onnx"))
    packed = onnx.load(str(tmp_path / f"minilm-l6.ort-packed.{precision}.onnx"))
    fused_ops, packed_ops = op_counts(fused), op_counts(packed)
    assert fused_ops.get("Attention") == MINILM_LAYERS, fused_ops
    assert packed_ops.get("PackedAttention") == MINILM_LAYERS and "Attention" not in packed_ops, packed_ops
    assert packed_ops.get("RemovePadding") == 1 and packed_ops.get("RestorePadding") == 1, packed_ops
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        f"minilm-l6.ort-fused.{precision}.onnx", f"minilm-l6.ort-packed.{precision}.onnx"
    ]
    has_float16 = any(i.data_type == onnx.TensorProto.FLOAT16 for i in packed.graph.initializer)
    assert has_float16 == (precision == "fp16")


def test_refuses_to_run_without_a_cuda_device():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick"],
                            check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "no CUDA device" in result.stderr
