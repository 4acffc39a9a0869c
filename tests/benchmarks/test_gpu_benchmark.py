"""The GPU benchmark's model preparation that needs no GPU: ONNX Runtime's packing-mode baseline
really is packed, the native-attention variant of the TensorRT flavour is a valid graph with one
site per FusedMHA, and the script refuses to run without a CUDA device. Nothing here times."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def gpu_benchmark():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import gpu_benchmark
    finally:
        sys.path.remove(str(BENCHMARKS))
    return gpu_benchmark


@pytest.fixture(scope="module")
def exported(tiny_model_dirs):
    from bytetx.exporter import export_to_onnx, load_hf_model

    loaded = load_hf_model(tiny_model_dirs("bert"), "eager")
    return loaded, export_to_onnx(loaded)


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_ort_packing_mode_baseline_is_packed(gpu_benchmark, exported, tmp_path, precision):
    loaded, plain = exported
    dims = gpu_benchmark.ModelDims.of(loaded.config)
    fused, packed, counts = gpu_benchmark.ort_fused_models(plain, dims, precision, tmp_path)
    fused_ops, packed_ops = op_counts(onnx.load_from_string(fused)), op_counts(onnx.load_from_string(packed))
    layers = loaded.config.num_hidden_layers
    assert fused_ops.get("Attention") == layers, fused_ops
    assert packed_ops.get("PackedAttention") == layers and "Attention" not in packed_ops, packed_ops
    assert packed_ops.get("RemovePadding") == 1 and packed_ops.get("RestorePadding") == 1, packed_ops
    assert counts["PackedAttention"] == layers
    if precision == "fp16":
        initializers = onnx.load_from_string(packed).graph.initializer
        assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in initializers)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_native_attention_variant_replaces_every_fused_mha(gpu_benchmark, exported, precision):
    from bytetx.exporter import to_float16
    from bytetx.exporter.tensorrt import to_tensorrt
    from bytetx.graph_rewrite import rewrite_padding_free

    loaded, plain = exported
    rewritten, _ = rewrite_padding_free(plain)
    flavour = to_tensorrt(to_float16(rewritten) if precision == "fp16" else rewritten)
    fused_nodes = [n for n in flavour.graph.node if n.op_type == "FusedMHA"]
    model, sites = gpu_benchmark.without_fused_mha(flavour)
    assert "FusedMHA" not in op_counts(model)
    assert len(sites) == len(fused_nodes) == loaded.config.num_hidden_layers
    produced = {output for node in model.graph.node for output in node.output}
    config = loaded.config
    for site, node in zip(sites, fused_nodes, strict=True):
        assert {site.qkv, site.cu_seqlens, site.context} <= produced
        assert site.context == node.output[0] and site.cu_seqlens == node.input[2]
        assert site.heads == config.num_attention_heads
        head_size = config.hidden_size // config.num_attention_heads
        assert site.scale == pytest.approx(head_size ** -0.5, rel=1e-6)
    onnx.checker.check_model(model)


def test_refuses_to_run_without_a_cuda_device():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    result = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_benchmark.py"), "--quick"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "no CUDA device" in result.stderr
