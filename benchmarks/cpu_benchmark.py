#!/usr/bin/env python3
"""CPU benchmark: bytetx float32 and int8 against the CPU engines a user would pick instead.

For every workload (model x batch x max length x length distribution) it times, in one process:
PyTorch eager and SDPA, ONNX Runtime on the plain export and on the fused export of
``onnxruntime.transformers.optimizer``, ONNX Runtime int8 of that fused export with Optimum's
avx512_vnni dynamic settings, OpenVINO at float32, at its default precision (bf16 on CPUs with AVX512_BF16) and int8 (NNCF), on
the padded batch and, where it is a user's way out of padding, on each sequence alone or on
length-sorted micro-batches of 4; then the bytetx model in float32 and in int8 (``--precision int8``'s
recipe) on the padded batch. It measures the machine's float32 and int8 GEMM peaks in the same run,
the quality of every low-precision runner on the packaged sentences (mean-pooled cosine to Hugging
Face float32), checks bytetx float32 against plain ONNX Runtime on valid tokens, and writes JSON, a
markdown report and a speedup plot.

    python benchmarks/cpu_benchmark.py --quick

See benchmarks/README.md for what is measured and how.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import harness
import numpy as np
import onnx
import onnxruntime as ort
import torch
from rich.console import Console
from rich.progress import Progress

RESULT_STEM = "cpu_benchmark"
Feeds = dict[str, np.ndarray]
Hidden = Callable[[Feeds], np.ndarray]  # an engine's call: feeds in, the hidden states [B, S, H] out
Grouping = Literal["batch", "per-sequence", "sorted4"]


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelSource:
    """A benchmarked model: where its Hugging Face directory comes from, and its config."""

    name: str
    make_dir: Callable[[Path], Path]
    config: Callable[[], Any]


MODELS: dict[str, ModelSource] = {
    source.name: source
    for source in (
        ModelSource("minilm-l6", harness.minilm_dir, harness.minilm_config),
        ModelSource("bert-base", harness.bert_base_dir, harness.bert_base_config),
        ModelSource("mpnet-base", harness.mpnet_base_dir, harness.mpnet_base_config),
        ModelSource("modernbert-base", harness.modernbert_base_dir, harness.modernbert_base_config),
        ModelSource("deberta-v3-base", harness.deberta_v3_base_dir, harness.deberta_v3_base_config),
    )
}


# --------------------------------------------------------------------------------------------
# The GEMM peaks
# --------------------------------------------------------------------------------------------

def matmul_model(m: int, k: int, n: int, precision: str) -> bytes:
    """A one-node ONNX model Y[m, n] = A[m, k] x B[k, n] with B a random initializer: float32
    ``MatMul``, or for "int8" ``MatMulInteger`` u8 x s8 (what ``DynamicQuantizeMatMul`` runs)."""
    rng = np.random.default_rng(0)
    helper, TensorProto = onnx.helper, onnx.TensorProto
    if precision == "int8":
        node = helper.make_node("MatMulInteger", ["A", "B", "a_zero", "b_zero"], ["Y"])
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
        weights = [rng.integers(-127, 128, (k, n), dtype=np.int8), np.array(128, np.uint8), np.zeros(n, np.int8)]
        names = ["B", "a_zero", "b_zero"]
    else:
        node = helper.make_node("MatMul", ["A", "B"], ["Y"])
        a_type, y_type = TensorProto.FLOAT, TensorProto.FLOAT
        weights, names = [rng.standard_normal((k, n), dtype=np.float32)], ["B"]
    graph = helper.make_graph(
        [node], "gemm_peak", [helper.make_tensor_value_info("A", a_type, [m, k])],
        [helper.make_tensor_value_info("Y", y_type, [m, n])],
        [onnx.numpy_helper.from_array(w, name) for w, name in zip(weights, names, strict=True)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def peak_shapes(quick: bool) -> list[tuple[int, int, int]]:
    """(M, K, N) = [T, H] x [H, 4H] for H in 384, 768 and T in 2048..8192 (2048, 4096 in quick mode)."""
    token_counts = (2048, 4096) if quick else (2048, 4096, 8192)
    return [(t, h, 4 * h) for h in (384, 768) for t in token_counts]


PEAK_PRECISIONS = ("fp32", "int8")
QUICK_TIMING = harness.TimingPolicy(warmup_s=0.2, budget_s=0.6, min_repeats=3, max_repeats=15, rounds=3)
FULL_TIMING = harness.TimingPolicy(warmup_s=0.5, budget_s=3.0, min_repeats=3, max_repeats=100, rounds=3)


# --------------------------------------------------------------------------------------------
# Runners: an engine (a model on a runtime) and how the batch is fed to it
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CpuRunner(harness.Runner):
    precision: str = "fp32"  # what its GEMMs run in
    engine: str = ""  # the engine it calls
    grouping: Grouping = "batch"  # the padded batch in one call, each sequence alone, or sorted groups of 4


def engine_runners(engine: str, precision: str, description: str, groupings: Sequence[Grouping]) -> list[CpuRunner]:
    """The runners of one engine: ``engine`` itself on the padded batch, then ``engine-<grouping>``."""
    what = {"batch": "padded batch", "per-sequence": "each sequence alone (batch 1, no padding)",
            "sorted4": "length-sorted micro-batches of 4, padded within each"}
    return [CpuRunner(engine if grouping == "batch" else f"{engine}-{grouping}",
                      "padded" if grouping == "batch" else "unpadded", f"{description}, {what[grouping]}",
                      precision, engine, grouping) for grouping in groupings]


OPENVINO_DEFAULT = "its default precision (bf16 where the CPU has AVX512_BF16, as here)"
BASELINES: dict[str, CpuRunner] = {
    runner.name: runner
    for runner in (
        *engine_runners("torch-eager", "fp32", "PyTorch, eager attention", ["batch"]),
        *engine_runners("torch-sdpa", "fp32", "PyTorch, SDPA attention", ["batch"]),
        *engine_runners("ort", "fp32", "ONNX Runtime, plain torch.onnx export", ["batch"]),
        *engine_runners("ort-fused", "fp32", "ONNX Runtime after onnxruntime.transformers optimize_model "
                        "(Attention, SkipLayerNormalization, BiasGelu fused)", ["batch", "per-sequence", "sorted4"]),
        *engine_runners("ort-int8", "int8", "ONNX Runtime int8 with Optimum's avx512_vnni dynamic settings: "
                        "ort-fused through quantize_dynamic (QInt8 weights, per tensor)", ["batch", "per-sequence", "sorted4"]),
        *engine_runners("openvino-f32", "fp32", "OpenVINO CPU, INFERENCE_PRECISION_HINT f32",
                        ["batch", "per-sequence"]),
        *engine_runners("openvino", "bf16", f"OpenVINO CPU at {OPENVINO_DEFAULT}", ["batch", "per-sequence"]),
        *engine_runners("openvino-int8", "int8", "OpenVINO CPU after NNCF post-training int8 quantization "
                        "(model_type TRANSFORMER, calibrated on 160 of the packaged sentences)",
                        ["batch", "per-sequence"]),
    )
}
OURS: dict[str, CpuRunner] = {
    runner.name: runner
    for runner in (
        CpuRunner("bytetx", "ours", "bytetx padding-free rewrite of the plain export, padded batch", "fp32", "bytetx"),
        CpuRunner("bytetx-int8", "ours", "bytetx --precision int8 (smoothing, ONNX Runtime dynamic int8, "
                  "per-channel weights, the quality check's float32 GEMMs), padded batch", "int8", "bytetx-int8"),
    )
}
RUNNERS: dict[str, CpuRunner] = {**BASELINES, **OURS}
QUICK_SKIPPED_BASELINES = ("torch-eager", "openvino-f32", "openvino-f32-per-sequence", "openvino-int8",
                           "openvino-int8-per-sequence")
OPENVINO_ENGINES = ("openvino-f32", "openvino", "openvino-int8")
CALIBRATION_SENTENCES = 160


@dataclass
class ModelUnderTest:
    """One model ready to run: its engines, the sessions its accuracy check compares, and what its
    preparation measured."""

    name: str
    dims: harness.ModelDims
    inputs: harness.ModelInputs
    engines: dict[str, Hidden]
    sessions: dict[str, ort.InferenceSession]  # "ort", "bytetx": the float32 accuracy check
    notes: dict[str, Any] = field(default_factory=dict)  # fused ops, int8 recipe, quality, preparation time


def hidden_output(names: Sequence[str]) -> str:
    return "last_hidden_state" if "last_hidden_state" in names else names[0]


def onnx_engine(session: ort.InferenceSession) -> Hidden:
    output = hidden_output([o.name for o in session.get_outputs()])
    inputs = [i.name for i in session.get_inputs()]
    return lambda feeds: session.run([output], {name: feeds[name] for name in inputs})[0]


def torch_engine(model: torch.nn.Module) -> Hidden:
    def run(feeds: Feeds) -> np.ndarray:
        with torch.inference_mode():
            return model(**{name: torch.from_numpy(value) for name, value in feeds.items()})[0].numpy()

    return run


def openvino_engine(compiled: Any) -> Hidden:
    output = compiled.output(hidden_output([o.get_any_name() for o in compiled.outputs]))
    inputs = [p.get_any_name() for p in compiled.inputs]
    request = compiled.create_infer_request()
    return lambda feeds: np.array(request.infer({name: feeds[name] for name in inputs})[output])


def ort_int8_optimum_style(fused: bytes, workdir: Path) -> bytes:
    """The settings of Optimum's ``AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=False)``
    (QInt8 weights per tensor, no range reduction) on the fused export. sentence-transformers'
    ``export_dynamic_quantized_onnx_model`` applies them to the plain export instead, with Optimum's
    default operators (Gather and the attention MatMuls too); docs/int8.md has that variant's numbers."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    (workdir / "fused.onnx").write_bytes(fused)
    quantize_dynamic(workdir / "fused.onnx", workdir / "fused.int8.onnx", per_channel=False, reduce_range=False,
                     weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Attention", "Gemm"],
                     # shape inference stops at the contrib ops of the fused model
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return (workdir / "fused.int8.onnx").read_bytes()


def openvino_compiled(path: Path, threads: int, engine: str, calibration: list[Feeds]) -> Any:
    """OpenVINO's CPU plugin on the plain export: "openvino-f32" at f32, "openvino" at its default,
    "openvino-int8" quantized with NNCF on ``calibration`` first."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    if engine == "openvino-int8":
        import nncf

        model = nncf.quantize(model, nncf.Dataset(calibration), model_type=nncf.ModelType.TRANSFORMER,
                              subset_size=len(calibration))
    config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads}
    if engine == "openvino-f32":
        config["INFERENCE_PRECISION_HINT"] = "f32"
    return core.compile_model(model, "CPU", config)


def prepare_model(source: ModelSource, runners: Sequence[str], threads: int, workdir: Path,
                  report: Callable[[str], None]) -> ModelUnderTest:
    """Load, export (TorchScript, eager attention), rewrite and quantize ``source``; open the engines the
    runners call and measure the quality of the low-precision ones."""
    from bytetx.exporter import export_to_onnx, load_hf_model
    from bytetx.exporter.int8 import quality_check, to_int8
    from bytetx.exporter.quality import DEFAULT_MIN_COSINE
    from bytetx.graph_rewrite import rewrite_padding_free

    import bytetx
    from bytetx.cli import bundled_model_dir

    engines_needed = {RUNNERS[name].engine for name in runners}
    # one options object per session: bytetx.InferenceSession registers its library into the one it gets
    def options() -> ort.SessionOptions:
        return harness.ort_session_options(threads)

    report(f"{source.name}: loading")
    model_dir = source.make_dir(workdir)
    eager = load_hf_model(model_dir, "eager")
    dims = harness.ModelDims.of(eager.config)
    engines: dict[str, Hidden] = {}
    if "torch-eager" in engines_needed:
        engines["torch-eager"] = torch_engine(eager.model)
    notes: dict[str, Any] = {}
    if "torch-sdpa" in engines_needed:
        if type(eager.model)._supports_sdpa:
            engines["torch-sdpa"] = torch_engine(load_hf_model(model_dir, "sdpa").model)
        else:
            notes["not_run"] = {"torch-sdpa": f"transformers offers no SDPA attention for {type(eager.model).__name__}"}
    report(f"{source.name}: exporting to ONNX")
    plain = export_to_onnx(eager)
    report(f"{source.name}: bytetx rewrite")
    rewritten, _ = rewrite_padding_free(plain)
    sessions = {
        "ort": ort.InferenceSession(plain.SerializeToString(), options(), providers=["CPUExecutionProvider"]),
        "bytetx": bytetx.InferenceSession(rewritten.SerializeToString(), options()),
    }
    engines.update({name: onnx_engine(session) for name, session in sessions.items()})
    if engines_needed & {"ort-fused", "ort-int8"}:
        report(f"{source.name}: onnxruntime.transformers optimize_model")
        fused, notes["ort_fused_ops"] = harness.fuse_with_ort_optimizer(plain, dims, workdir)
        engines["ort-fused"] = onnx_engine(ort.InferenceSession(fused, options(), providers=["CPUExecutionProvider"]))
        if "ort-int8" in engines_needed:
            engines["ort-int8"] = onnx_engine(ort.InferenceSession(ort_int8_optimum_style(fused, workdir), options(),
                                                                   providers=["CPUExecutionProvider"]))
    # Random-weight BERT-base shares the bundled model's vocabulary, so the bundled tokenizer fits both.
    report(f"{source.name}: bytetx int8 (quality check and the choice of float32 GEMMs)")
    check = quality_check(plain, rewritten, eager, bundled_model_dir())
    int8 = to_int8(rewritten, check, DEFAULT_MIN_COSINE)
    engines["bytetx-int8"] = onnx_engine(bytetx.InferenceSession(int8.model.SerializeToString(), options()))
    notes["bytetx_int8"] = {"quantized_matmuls": int8.quantized_matmuls, "float32_matmuls": int8.float32_matmuls,
                            "passed": int8.report.passed}
    openvino_wanted = engines_needed & set(OPENVINO_ENGINES)
    if openvino_wanted:
        report(f"{source.name}: OpenVINO ({', '.join(sorted(openvino_wanted))})")
        onnx.save(plain, workdir / "plain.onnx")
        calibration = [b.feeds for b in check.batches if b.padding == "right"]
        calibration = calibration[: max(1, CALIBRATION_SENTENCES // len(calibration[0]["input_ids"]))]
        for engine in sorted(openvino_wanted):
            compiled = openvino_compiled(workdir / "plain.onnx", threads, engine, calibration)
            engines[engine] = openvino_engine(compiled)
            notes.setdefault("openvino_inference_precision", {})[engine] = str(
                compiled.get_property("INFERENCE_PRECISION_HINT"))
    report(f"{source.name}: quality of the low-precision engines")
    low_precision = {RUNNERS[name].engine for name in runners if RUNNERS[name].precision != "fp32"}
    notes["quality"] = {engine: asdict(check.measure(engines[engine], DEFAULT_MIN_COSINE))
                        for engine in sorted(low_precision)}
    return ModelUnderTest(source.name, dims, harness.ModelInputs.of(eager), engines, sessions, notes)


# --------------------------------------------------------------------------------------------
# What each runner times
# --------------------------------------------------------------------------------------------

def groups_of(grouping: Grouping, lengths: np.ndarray) -> list[np.ndarray]:
    """The rows of each call: all of them, one each, or length-sorted groups of 4."""
    if grouping == "batch":
        return [np.arange(len(lengths))]
    if grouping == "per-sequence":
        return [np.array([row]) for row in range(len(lengths))]
    order = np.argsort(lengths, kind="stable")
    return [order[start : start + 4] for start in range(0, len(order), 4)]


def micro_batches(batch: harness.Batch, groups: Sequence[np.ndarray]) -> list[Feeds]:
    """Feeds of each group of sequences, [len(group), longest length in the group] per input."""
    return [
        {name: np.ascontiguousarray(value[group, : int(batch.lengths[group].max())])
         for name, value in batch.feeds.items()}
        for group in groups
    ]


def build_run(name: str, model: ModelUnderTest, batch: harness.Batch) -> harness.Run:
    """The call that runner ``name`` times; its inputs are prepared beforehand."""
    runner = RUNNERS[name]
    engine = model.engines[runner.engine]
    if runner.grouping == "batch":
        return lambda: engine(batch.feeds)
    feeds_list = micro_batches(batch, groups_of(runner.grouping, batch.lengths))
    return lambda: [engine(feeds) for feeds in feeds_list]


def executed_lengths(name: str, lengths: np.ndarray) -> list[int]:
    """[B] positions a runner computes per sequence: its length plus the padding it runs with."""
    return [int(lengths[group].max()) for group in groups_of(RUNNERS[name].grouping, lengths) for _ in group]


def bytetx_max_diff(model: ModelUnderTest, batch: harness.Batch) -> dict[str, float]:
    """Per output, max |bytetx - plain ONNX Runtime| on valid tokens (valid rows for the pooler)."""
    from bytetx.exporter.verify import run_onnx, valid_token_diff

    ours = run_onnx(model.sessions["bytetx"], batch.feeds)
    reference = run_onnx(model.sessions["ort"], batch.feeds)
    return {name: valid_token_diff(ours[name], expected, batch.mask) for name, expected in reference.items()}


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------

def fastest(speedups: dict[str, float]) -> dict[str, Any] | None:
    """The fastest peer (the one ours gains least against) and that speedup."""
    if not speedups:
        return None
    name = min(speedups, key=speedups.__getitem__)
    return {"baseline": name, "speedup": speedups[name]}


@dataclass
class WorkloadResult(harness.WorkloadResult):
    max_abs_diff_vs_ort: dict[str, float]  # bytetx float32 against plain ONNX Runtime

    def record(self, peak_gflops: float, int8_peak_gops: float) -> dict[str, Any]:
        """JSON-ready: latencies, tokens/s, useful G(FL)OP/s and fraction of the float32 (and for int8
        runners the int8) GEMM peak; per bytetx runner its speedups against every peer, the fastest
        padded and unpadded peer of its precision and the fastest peer of any precision."""
        base = super().record(peak_gflops)
        ours = [name for name in self.timings if RUNNERS[name].kind == "ours"]
        peers = [name for name in self.timings if RUNNERS[name].kind != "ours"]
        speedups = {mine: {name: self.timings[name].median_ms / self.timings[mine].median_ms for name in peers}
                    for mine in ours}
        same = {mine: {name: x for name, x in s.items() if RUNNERS[name].precision == RUNNERS[mine].precision}
                for mine, s in speedups.items()}
        return {
            **base,
            "fraction_of_int8_peak": {name: base["useful_gflops"][name] / int8_peak_gops
                                      for name in self.timings if RUNNERS[name].precision == "int8"},
            "speedup": speedups,
            "best_padded": {mine: harness.best_of(s, BASELINES, "padded") for mine, s in same.items()},
            "best_unpadded": {mine: harness.best_of(s, BASELINES, "unpadded") for mine, s in same.items()},
            "fastest_peer": {mine: fastest(s) for mine, s in speedups.items()},
            "max_abs_diff_vs_ort": self.max_abs_diff_vs_ort,
        }


def run_workload(workload: harness.Workload, model: ModelUnderTest, runners: Sequence[str],
                 policy: harness.TimingPolicy, on_measured: Callable[[str], None]) -> WorkloadResult:
    """Time every runner on the workload's batch and check bytetx against plain ONNX Runtime."""
    batch = model.inputs.batch(workload.lengths())
    runs = {name: build_run(name, model, batch) for name in runners if RUNNERS[name].engine in model.engines}
    for name in runners:
        if name not in runs:
            on_measured(name)
    timings = harness.measure_interleaved(runs, policy, on_measured)
    return WorkloadResult(
        workload,
        [int(n) for n in batch.lengths],
        batch.padded_length,
        harness.encoder_flops(batch.lengths, model.dims) / 1e9,
        timings,
        bytetx_max_diff(model, batch),
    )


def measure_gemm_peak(shapes: Sequence[tuple[int, int, int]], precision: str, threads: int,
                      policy: harness.TimingPolicy, on_measured: Callable[[], None]) -> list[dict[str, Any]]:
    """Per (M, K, N): ONNX Runtime's MatMul (float32) or MatMulInteger (int8) median ms and G(FL)OP/s."""
    def matmul_run(m: int, k: int, n: int) -> harness.Run:
        session = ort.InferenceSession(matmul_model(m, k, n, precision), harness.ort_session_options(threads),
                                       providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(1)
        activations = (rng.integers(0, 256, (m, k), dtype=np.uint8) if precision == "int8"
                       else rng.standard_normal((m, k), dtype=np.float32))
        return lambda: session.run(None, {"A": activations})

    return harness.gemm_peak(shapes, matmul_run, policy, on_measured)


def estimate_seconds(workloads: Sequence[harness.Workload], runners: Sequence[str], peak_gflops: float,
                     policy: harness.TimingPolicy, efficiency: float = 0.35) -> float:
    """Rough measuring time: each call taken to run at ``efficiency`` x peak on the FLOPs it executes."""
    total = 0.0
    dims = {name: harness.ModelDims.of(MODELS[name].config()) for name in {w.model for w in workloads}}
    for workload in workloads:
        lengths = workload.lengths()
        for name in runners:
            flops = harness.encoder_flops(executed_lengths(name, lengths), dims[workload.model])
            call_s = flops / (efficiency * peak_gflops * 1e9)
            repeats = min(max(policy.budget_s / call_s, policy.min_repeats), policy.max_repeats)
            total += policy.rounds * max(policy.warmup_s, call_s) + repeats * call_s
    return total


# --------------------------------------------------------------------------------------------
# Reports: JSON, markdown, plot
# --------------------------------------------------------------------------------------------

def describe_settings(
    args: argparse.Namespace, policy: harness.TimingPolicy, runners: Sequence[str]
) -> dict[str, Any]:
    return {
        "quick": args.quick,
        "timing": asdict(policy),
        "ort_session_options": {"intra_op_num_threads": args.threads,
                                "graph_optimization_level": "ORT_ENABLE_ALL"},
        "torch": {"num_threads": args.threads, "mode": "torch.inference_mode"},
        "openvino": {"INFERENCE_NUM_THREADS": args.threads},
        "runners": {name: asdict(RUNNERS[name]) for name in runners},
        "distributions": harness.DISTRIBUTION_DESCRIPTIONS,
        "padding": "right padding to the longest sequence of the (micro-)batch",
        "quality": "mean-pooled cosine to Hugging Face PyTorch float32 on the packaged sentences "
                   "(bytetx.exporter.quality), right- and left-padded",
    }


def markdown_report(report: dict[str, Any]) -> str:
    """The machine and peaks; the quality of the low-precision engines; every runner's median latency;
    bytetx by precision against the fastest peers; bytetx's throughput and accuracy."""
    runners = list(report["settings"]["runners"])
    ours = [name for name in runners if RUNNERS[name].kind == "ours"]
    lines = ["# bytetx CPU benchmark", "", *markdown_header(report), "",
             "## Quality of the low-precision engines", "", *quality_table(report["models"]), "",
             "## Median latency (ms)", "", *latency_table(report["results"], runners), "",
             "## bytetx by precision against the fastest peers", "", *precision_table(report["results"], ours), "",
             "## bytetx: throughput, speedups (peer latency / bytetx latency), accuracy", "",
             *bytetx_table(report["results"], ours)]
    return "\n".join(lines) + "\n"


def markdown_header(report: dict[str, Any]) -> list[str]:
    env = report["environment"]
    load = env["load_average_1min"]
    lines = [f"{env['cpu']}, {env['cpu_count']} cores, {env['threads']} threads; torch {env['torch']}, "
             f"onnxruntime {env['onnxruntime']}, openvino {env.get('openvino', 'not installed')}, transformers "
             f"{env['transformers']}; {env['date']}; 1-minute load average {load['start']:.2f} at the start, "
             f"{load['end']:.2f} at the end."]
    for precision, what in (("fp32", "float32 GEMM peak (ONNX Runtime MatMul"),
                            ("int8", "int8 GEMM peak (ONNX Runtime MatMulInteger u8 x s8")):
        peak = report["gemm_peak"][precision]
        before, after = harness.best_shape(peak["before"])["gflops"], harness.best_shape(peak["after"])["gflops"]
        m, k, n = (peak["best"][key] for key in ("m", "k", "n"))
        unit = "GFLOP/s" if precision == "fp32" else "GOP/s"
        lines.append(f"{what}, best of {len(peak['before'])} shapes, measured before and after the workloads: "
                     f"{before:.1f} and {after:.1f} {unit}): **{peak['peak']:.1f} {unit}** at [{m}, {k}] x [{k}, {n}].")
    return lines


def quality_table(models: dict[str, Any]) -> list[str]:
    lines = ["| model | engine | precision | min cosine | mean cosine | nearest neighbour unchanged |",
             "| --- | --- | --- | ---: | ---: | ---: |"]
    for model, notes in models.items():
        for engine, q in notes["quality"].items():
            lines.append(f"| {model} | {engine} | {RUNNERS[engine].precision} | {q['min_cosine']:.4f} | "
                         f"{q['mean_cosine']:.4f} | {q['neighbour_agreement']:.1%} |")
    lines.append("")
    for model, notes in models.items():
        recipe = notes["bytetx_int8"]
        kept = ", ".join(recipe["float32_matmuls"]) or "none"
        lines.append(f"- {model}, bytetx int8: {recipe['quantized_matmuls']} MatMuls int8; float32: {kept}.")
        lines += [f"- {model}: {runner} not run ({why})." for runner, why in notes.get("not_run", {}).items()]
    return lines


def workload_cells(record: dict[str, Any]) -> str:
    return f"| {record['model']} | {record['batch']} | {record['max_length']} | {record['distribution']} | "


def latency_table(records: list[dict[str, Any]], runners: list[str]) -> list[str]:
    header = "| model | batch | max len | lengths | mean len | real / padded tokens | "
    lines = [header + " | ".join(runners) + " |", "|" + " --- |" * 6 + " ---: |" * len(runners)]
    for r in records:
        tokens = f"{r['mean_length']:.0f} | {r['real_tokens']} / {r['padded_tokens']} | "
        cells = [f"{r['latency_ms'][name]['median_ms']:.1f}" if name in r["latency_ms"] else "-" for name in runners]
        lines.append(workload_cells(r) + tokens + " | ".join(cells) + " |")
    return lines


def peer_cell(record: dict[str, Any], best: dict[str, Any] | None) -> str:
    if best is None:
        return "-"
    return f"{record['latency_ms'][best['baseline']]['median_ms']:.1f} ({best['baseline']})"


def percent_of_peak(record: dict[str, Any], name: str) -> str:
    key = "fraction_of_int8_peak" if RUNNERS[name].precision == "int8" else "fraction_of_peak"
    return f"{100 * record[key][name]:.0f}%"


def precision_table(records: list[dict[str, Any]], ours: list[str]) -> list[str]:
    """One row per workload and bytetx precision: the fastest padded and unpadded peers of that
    precision, bytetx, its speedups, and its speedup against the fastest peer of any precision."""
    lines = ["| model | batch | max len | lengths | precision | fastest padded peer | fastest unpadded peer | "
             "bytetx | vs fastest padded | vs fastest unpadded | vs fastest peer, any precision | % of its GEMM peak |",
             "|" + " --- |" * 5 + " ---: |" * 7]
    for r in records:
        for mine in ours:
            padded, unpadded = r["best_padded"][mine], r["best_unpadded"][mine]
            lines.append(workload_cells(r) + f"{RUNNERS[mine].precision} | {peer_cell(r, padded)} | "
                         f"{peer_cell(r, unpadded)} | {r['latency_ms'][mine]['median_ms']:.1f} | "
                         f"{harness.format_speedup(padded)} | {harness.format_speedup(unpadded)} | "
                         f"{harness.format_speedup(r['fastest_peer'][mine])} | {percent_of_peak(r, mine)} |")
    return lines


def bytetx_table(records: list[dict[str, Any]], ours: list[str]) -> list[str]:
    lines = ["| model | batch | max len | lengths | runner | tokens/s | useful G(FL)OP/s | % of its GEMM peak | "
             "vs best padded, same precision | vs best unpadded, same precision | vs fastest peer | "
             "max abs diff vs ort |",
             "|" + " --- |" * 5 + " ---: |" * 7]
    for r in records:
        for mine in ours:
            diff = f"{max(r['max_abs_diff_vs_ort'].values()):.2e}" if mine == "bytetx" else "-"
            lines.append(workload_cells(r) + f"{mine} | {r['tokens_per_s'][mine]:,.0f} | "
                         f"{r['useful_gflops'][mine]:.1f} | {percent_of_peak(r, mine)} | "
                         f"{harness.format_speedup(r['best_padded'][mine])} | "
                         f"{harness.format_speedup(r['best_unpadded'][mine])} | "
                         f"{harness.format_speedup(r['fastest_peer'][mine])} | {diff} |")
    return lines


PLOTTED = (("bytetx", "best_padded", "tab:blue", "bytetx fp32 vs best padded"),
           ("bytetx", "best_unpadded", "tab:orange", "bytetx fp32 vs best unpadded"),
           ("bytetx-int8", "fastest_peer", "tab:green", "bytetx int8 vs fastest peer"))


def plot_speedups(report: dict[str, Any], path: Path) -> None:
    """bytetx float32 against the best padded and unpadded peers, and bytetx int8 against the fastest
    peer of any precision, vs max length: one panel per (model, batch)."""
    harness.plot_panels(report["results"], path, "bytetx speedup (x)", plot_panel)


def plot_panel(axis: Any, records: list[dict[str, Any]]) -> None:
    """One (model, batch) panel: solid lines for uniform lengths, dashed for skewed."""
    for distribution in dict.fromkeys(r["distribution"] for r in records):
        chosen = [r for r in records if r["distribution"] == distribution]
        for mine, key, color, label in PLOTTED:
            points = [(r["max_length"], r[key][mine]["speedup"]) for r in chosen if r[key].get(mine)]
            if points:
                lengths, speedups = zip(*points, strict=True)
                axis.plot(lengths, speedups, "--" if distribution == "skewed" else "-", color=color,
                          marker="o", label=f"{label} ({distribution})")


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = harness.benchmark_parser(__doc__, "minilm-l6, batch 16, max length 128 and 256, both distributions, "
                                      "no torch-eager and OpenVINO only at its default, fewer repeats and "
                                      "GEMM shapes (a few minutes on 2 cores)")
    harness.add_workload_options(parser, list(MODELS), default_models=",".join(MODELS),
                                 default_batches="1,8,16,32", default_max_lengths="64,128,256,512",
                                 default_distributions=",".join(harness.DISTRIBUTIONS))
    parser.add_argument("--baselines", type=harness.names(list(BASELINES)),
                        help=f"comma-separated peers to time besides bytetx float32 and int8 (default: all of "
                             f"{', '.join(BASELINES)})")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch, ONNX Runtime intra-op and OpenVINO threads (default: all cores)")
    harness.add_timing_options(parser, FULL_TIMING, QUICK_TIMING)
    return parser


def resolve(args: argparse.Namespace) -> tuple[list[harness.Workload], list[str], harness.TimingPolicy]:
    """Workloads, runners (peers then bytetx) and timing policy from the options and --quick."""
    if args.quick:
        defaults = (["minilm-l6"], [16], [128, 256],
                    [name for name in BASELINES if name not in QUICK_SKIPPED_BASELINES])
    else:
        defaults = (list(MODELS), [1, 8, 16, 32], [64, 128, 256, 512], list(BASELINES))
    workloads = harness.workload_grid(args.models or defaults[0], args.batches or defaults[1],
                                      args.max_lengths or defaults[2],
                                      args.distributions or list(harness.DISTRIBUTIONS))
    runners = (args.baselines or defaults[3]) + list(OURS)
    return workloads, runners, harness.timing_policy(args, FULL_TIMING, QUICK_TIMING)


def installed(runners: list[str], console: Console) -> list[str]:
    """``runners`` without those whose runtime is not installed, each such one named."""
    import importlib.util

    needs = {"openvino-f32": ("openvino",), "openvino": ("openvino",), "openvino-int8": ("openvino", "nncf")}
    kept = []
    for name in runners:
        missing = [m for m in needs.get(RUNNERS[name].engine, ()) if importlib.util.find_spec(m) is None]
        if missing:
            console.print(f"{name} left out: {', '.join(missing)} not installed (pip install '.[bench]')",
                          highlight=False)
        else:
            kept.append(name)
    return kept


def run_benchmark(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """GEMM peaks, every workload of every model, GEMM peaks again: the report as a JSON-ready dict."""
    workloads, runners, policy = resolve(args)
    runners = installed(runners, console)
    shapes = peak_shapes(args.quick)
    load_at_start = os.getloadavg()
    peaks: dict[str, dict[str, Any]] = {}
    with harness.progress_bar(console) as progress, tempfile.TemporaryDirectory() as tmp:
        task = progress.add_task("GEMM peaks", total=4 * len(shapes) + len(workloads) * len(runners))
        for precision in PEAK_PRECISIONS:
            peaks[precision] = {"before": measure_gemm_peak(shapes, precision, args.threads, policy,
                                                            lambda: progress.advance(task))}
        peak_gflops = harness.best_shape(peaks["fp32"]["before"])["gflops"]
        estimate = estimate_seconds(workloads, runners, peak_gflops, policy)
        console.print(f"fp32 GEMM peak {peak_gflops:.1f} GFLOP/s, int8 "
                      f"{harness.best_shape(peaks['int8']['before'])['gflops']:.1f} GOP/s; {len(workloads)} "
                      f"workloads x {len(runners)} runners: rough estimate {harness.format_duration(estimate)} "
                      "of timing, plus model preparation", highlight=False)
        results, model_notes = [], {}
        for model_name in dict.fromkeys(w.model for w in workloads):
            started = time.perf_counter()
            model = prepare_model(MODELS[model_name], runners, args.threads, Path(tmp),
                                  lambda text: progress.update(task, description=text))
            model_notes[model_name] = {**asdict(model.dims), **model.notes,
                                       "preparation_s": time.perf_counter() - started}
            for workload in (w for w in workloads if w.model == model_name):
                results.append(run_and_log(workload, model, runners, policy, progress, task))
            del model  # frees its sessions before the next model is loaded
        progress.update(task, description="GEMM peaks")
        for precision in PEAK_PRECISIONS:
            peaks[precision]["after"] = measure_gemm_peak(shapes, precision, args.threads, policy,
                                                          lambda: progress.advance(task))
    for peak in peaks.values():
        peak["best"] = harness.best_shape(peak["before"] + peak["after"])
        peak["peak"] = peak["best"]["gflops"]
    return {
        "environment": harness.environment(threads=args.threads, openvino=openvino_version(),
                                           load_average_1min={"start": load_at_start[0], "end": os.getloadavg()[0]}),
        "settings": describe_settings(args, policy, runners),
        "gemm_peak": peaks,
        "models": model_notes,
        "flops_formula": harness.FLOPS_FORMULA,
        "results": [result.record(peaks["fp32"]["peak"], peaks["int8"]["peak"]) for result in results],
    }


def openvino_version() -> str:
    try:
        import openvino
    except ImportError:
        return "not installed"
    return openvino.__version__


def run_and_log(workload: harness.Workload, model: ModelUnderTest, runners: Sequence[str],
                policy: harness.TimingPolicy, progress: Progress, task: Any) -> WorkloadResult:
    """One workload with progress updates, then one line of its latencies on the console."""
    label = f"{workload.model} b{workload.batch} L{workload.max_length} {workload.distribution}"

    def on_measured(runner: str) -> None:
        progress.update(task, advance=1, description=f"{label}: {runner} done")

    result = run_workload(workload, model, runners, policy, on_measured)
    latencies = ", ".join(f"{name} {t.median_ms:.1f}" for name, t in result.timings.items())
    diff = max(result.max_abs_diff_vs_ort.values())
    progress.console.print(f"{label}: median ms {latencies}; bytetx max |diff| {diff:.1e}", highlight=False)
    return result


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=True)
    import bytetx

    harness.quiet_transformers()
    try:
        bytetx.ort_library_path()
    except bytetx.LibraryNotFoundError as error:
        console.print(f"[bold red]error:[/] {error}", highlight=False)
        return 1
    if not harness.have_matplotlib(console):
        return 1
    torch.set_num_threads(args.threads)
    report = run_benchmark(args, console)
    harness.write_reports(report, args.output_dir, RESULT_STEM, markdown_report(report), plot_speedups, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
