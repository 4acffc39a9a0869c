"""int8 on the CPU: the bundled MiniLM held to the quality bound on the sentence set, every supported
architecture through int8 on random token ids, the int8 graph's structure, and the CLI's int8 errors.

Bound for the random-weight models: a dynamic uint8 range spreads 256 steps over [min, max] of a GEMM
input, so its rounding noise relative to the input's rms is about r / (255 sqrt(12)) with r = max|x| / rms
(``range_to_rms``). Independent errors of the GEMMs add in quadrature, and a relative error e costs
about e^2 / 2 of cosine. Measured on these models, 1 - cosine is about four times that sum (an early
layer's error passes through every later one, and pooling a few tokens averages little of it out); the
test allows sixteen times the sum, which still fails a wrong scale or zero point by orders of magnitude.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from bytetx.exporter import export_to_onnx, load_hf_model
from bytetx.exporter.int8 import (
    SMOOTHING_SUFFIX,
    WEIGHT_TYPE_KEY,
    int8_weight_type,
    onnx_runner,
    quality_check,
    quantize_int8,
    range_to_rms,
    smooth,
    to_int8,
    weight_matmuls,
)
from bytetx.exporter.verify import make_feeds, ragged_lengths, ragged_mask, run_onnx
from bytetx.graph_rewrite import rewrite_padding_free
from fixtures.tiny_models import TESTED_MODEL_TYPES

import bytetx
from bytetx.cli import main

UINT8_NOISE = 255 * math.sqrt(12)
SAFETY = 16


@pytest.fixture(scope="module")
def minilm_int8(minilm_dir, ort_library):
    loaded = load_hf_model(minilm_dir)
    original = export_to_onnx(loaded)
    rewritten, _ = rewrite_padding_free(original)
    check = quality_check(original, rewritten, loaded, minilm_dir)
    return loaded, rewritten, check, to_int8(rewritten, check, 0.99)


def test_minilm_meets_the_quality_bound_on_the_sentence_set(minilm_int8):
    _, _, check, result = minilm_int8
    report = result.report
    assert report.passed, str(report)
    assert report.inputs.startswith("325 sentences")
    assert report.min_cosine >= 0.99 and report.mean_cosine >= 0.995 and report.neighbour_agreement >= 0.9
    # Smoothing is what lets most GEMMs be int8: without it the same bound kept all 12 FFN GEMMs float32.
    assert len(result.float32_matmuls) <= 4, result.float32_matmuls
    again = check.measure(onnx_runner(result.model), 0.99)
    assert again.min_cosine == pytest.approx(report.min_cosine, abs=1e-9), "the model written is the one measured"


def test_quantizing_everything_is_below_the_bound_on_short_sentences(minilm_int8):
    """Why some GEMMs stay float32: with one range per call for all packed tokens, short inputs fall below 0.99."""
    _, rewritten, check, _ = minilm_int8
    report = check.measure(onnx_runner(quantize_int8(rewritten)), 0.99)
    assert not report.passed and report.min_cosine < 0.99 < report.mean_cosine


def _index(model: onnx.ModelProto, op_type: str) -> int:
    return next(i for i, n in enumerate(model.graph.node) if n.op_type == op_type)


def _index_of(model: onnx.ModelProto, node: onnx.NodeProto) -> int:
    return next(i for i, n in enumerate(model.graph.node) if n.name == node.name)


def test_smoothing_alone_computes_the_same_float32_model_and_twice_changes_nothing(minilm_int8, ort_library):
    loaded, rewritten, _, result = minilm_int8
    smoothed = smooth(rewritten, result.smoothing)
    assert [n.op_type for n in smoothed.graph.node].count("Mul") == (
        [n.op_type for n in rewritten.graph.node].count("Mul") + len(result.smoothing))
    assert smooth(smoothed, result.smoothing).SerializeToString() == smoothed.SerializeToString()
    mask = ragged_mask(ragged_lengths(6, 40, np.random.default_rng(2)), 40)
    feeds = make_feeds(loaded.input_names, mask, loaded.config.vocab_size, 0, 2, seed=4)
    expected = run_onnx(bytetx.InferenceSession(rewritten.SerializeToString()), feeds)["last_hidden_state"]
    got = run_onnx(bytetx.InferenceSession(smoothed.SerializeToString()), feeds)["last_hidden_state"]
    # float32 rounding of x / s and s W only: far below the int8 error, within the float32 tolerance.
    assert np.abs(got - expected).max() <= 1e-4


def test_int8_graph_structure(minilm_int8):
    _, rewritten, _, result = minilm_int8
    model = result.model
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("FusedMHA") == 6 and ops.count("RemovePadding") == 1 and ops.count("RebuildPadding") == 1
    assert ops.count("MatMulInteger") == ops.count("DynamicQuantizeLinear") == result.quantized_matmuls >= 1
    assert result.quantized_matmuls + len(result.float32_matmuls) == len(weight_matmuls(rewritten)) == 24
    remove, rebuild = _index(model, "RemovePadding"), _index(model, "RebuildPadding")
    for i, node in enumerate(model.graph.node):
        if node.op_type in ("MatMulInteger", "DynamicQuantizeLinear"):
            assert remove < i < rebuild, f"{node.name} runs on packed tokens"
    initializers = {t.name: t for t in model.graph.initializer}
    by_name = {n.name: n for n in model.graph.node}
    for name in result.float32_matmuls:
        node = by_name[name]
        assert node.op_type == "MatMul" and initializers[node.input[1]].data_type == onnx.TensorProto.FLOAT
    producers = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        if node.op_type == "DynamicQuantizeLinear":
            smoothing = producers[node.input[0]]
            assert smoothing.op_type == "Mul" and smoothing.name.endswith(SMOOTHING_SUFFIX), node.name
            assert remove < _index_of(model, smoothing) < rebuild, "smoothing runs on packed tokens"
    assert sorted(result.smoothing) == sorted(n.name for n in weight_matmuls(rewritten)
                                               if n.name not in result.float32_matmuls)
    for name in result.float32_matmuls:
        assert not producers[by_name[name].input[0]].name.endswith(SMOOTHING_SUFFIX), "float32 GEMMs stay unsmoothed"
    float_matmuls = [n for n in model.graph.node if n.op_type == "MatMul"]
    assert len(float_matmuls) == len(result.float32_matmuls) + 1, "and the pooler"
    assert all(initializers[n.input[1]].data_type == onnx.TensorProto.FLOAT for n in float_matmuls)
    weights = [initializers[n.input[1]] for n in model.graph.node if n.op_type == "MatMulInteger"]
    weight_type = int8_weight_type()
    expected = {"int8": onnx.TensorProto.INT8, "uint8": onnx.TensorProto.UINT8}[weight_type]
    assert weights and all(w.data_type == expected for w in weights)
    assert {p.key: p.value for p in model.metadata_props}[WEIGHT_TYPE_KEY] == weight_type
    assert [i.name for i in model.graph.input] == [i.name for i in rewritten.graph.input]
    assert [o.name for o in model.graph.output] == [o.name for o in rewritten.graph.output]


@pytest.mark.parametrize("padding", ["right", "left"])
def test_minilm_int8_pads_are_zero_and_rows_independent_of_padding_side(minilm_int8, padding):
    loaded, _, _, result = minilm_int8
    session = bytetx.InferenceSession(result.model.SerializeToString())
    lengths = ragged_lengths(6, 40, np.random.default_rng(3))
    mask = ragged_mask(lengths, 40, padding)
    feeds = make_feeds(loaded.input_names, mask, loaded.config.vocab_size, 0, 2, seed=3)
    outputs = run_onnx(session, feeds)
    hidden = outputs["last_hidden_state"]
    assert np.all(hidden[mask == 0] == 0) and np.isfinite(hidden).all()
    assert np.isfinite(outputs["pooler_output"]).all()


@pytest.mark.parametrize("model_type", TESTED_MODEL_TYPES)
def test_every_architecture_through_int8_within_the_noise_bound(model_type, tiny_model_dirs, ort_library):
    directory = tiny_model_dirs(model_type)
    loaded = load_hf_model(directory)
    original = export_to_onnx(loaded)
    rewritten, _ = rewrite_padding_free(original)
    check = quality_check(original, rewritten, loaded, directory)
    assert "random token ids" in check.inputs_name
    quantized = quantize_int8(rewritten)
    assert [n.op_type for n in quantized.graph.node].count("MatMulInteger") == len(weight_matmuls(rewritten)) >= 6

    def run_with_outputs(probed):
        session = bytetx.InferenceSession(probed.SerializeToString())
        names = [o.name for o in session.get_outputs()]
        return [dict(zip(names, session.run(names, b.feeds))) for b in check.batches if b.padding == "right"]

    ratios = range_to_rms(rewritten, run_with_outputs)
    bound = 1 - SAFETY * sum((r / UINT8_NOISE) ** 2 for r in ratios.values()) / 2
    report = check.measure(onnx_runner(quantized), bound)
    assert report.passed, f"{report} (bound {bound:.5f} from range/rms ratios up to {max(ratios.values()):.1f})"


def test_cli_writes_int8_from_an_onnx_export(tmp_path, capsys, ort_library):
    from pathlib import Path

    source = Path(__file__).resolve().parents[1] / "fixtures" / "optimum" / "bert" / "model.onnx"
    output = tmp_path / "bert.int8.onnx"
    assert main([str(source), "--precision", "int8", "-o", str(output)]) == 0
    err = capsys.readouterr().err
    assert "int8 vs the float32 rewritten model" in err and "ok" in err
    assert any(n.op_type == "MatMulInteger" for n in onnx.load(str(output)).graph.node)


@pytest.mark.parametrize("args,message", [
    (["--target", "ort-cuda"], "--precision int8 needs --target ort-cpu"),
    (["--target", "tensorrt"], "--precision int8 needs --target ort-cpu"),
    (["--min-cosine", "1.5"], "--min-cosine must lie in (0, 1]"),
    (["--min-cosine", "0"], "--min-cosine must lie in (0, 1]"),
    (["--min-cosine", "nan"], "--min-cosine must lie in (0, 1]"),
    (["--no-verify"], "cannot skip verification"),
])
def test_cli_int8_option_errors_write_nothing(tmp_path, capsys, args, message):
    output = tmp_path / "m.onnx"
    assert main(["--precision", "int8", "-o", str(output), *args]) == 1
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_min_cosine_needs_int8(tmp_path, capsys):
    assert main(["--min-cosine", "0.9", "-o", str(tmp_path / "m.onnx")]) == 1
    assert "--min-cosine applies to --precision int8" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_below_min_cosine_and_leaves_the_output_untouched(tiny_model_dirs, tmp_path, capsys,
                                                                     ort_library):
    output = tmp_path / "out.onnx"
    output.write_bytes(b"previous model")
    code = main([str(tiny_model_dirs("bert")), "--precision", "int8", "--min-cosine", "1", "-o", str(output)])
    err = capsys.readouterr().err
    assert code == 1 and "FAILED" in err and "the model was not written" in err
    assert output.read_bytes() == b"previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.onnx"]


@pytest.mark.parametrize("machine,flags,expected", [
    ("x86_64", "fpu avx2 avx512f avx512_vnni", "int8"),
    ("x86_64", "fpu avx2 avx_vnni", "int8"),
    ("x86_64", "fpu sse4_2 avx2 fma", "uint8"),
    ("aarch64", "fp asimd", "int8"),
])
def test_weight_type_follows_the_cpu(machine, flags, expected, monkeypatch):
    import platform
    from pathlib import Path

    monkeypatch.setattr(platform, "machine", lambda: machine)
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: f"processor\t: 0\nflags\t\t: {flags}\n")
    assert int8_weight_type() == expected
