#!/usr/bin/env python3
"""CPU benchmark: bytetx's padding-free model against PyTorch and ONNX Runtime baselines.

For every workload (model x batch x max length x length distribution) it times, in one process:
PyTorch eager and SDPA, ONNX Runtime on the plain export and on the fused export of
``onnxruntime.transformers.optimizer`` (all on the padded batch), the two unpadded alternatives
(each sequence alone; length-sorted micro-batches of 4), and the bytetx model on the padded batch.
It measures the machine's fp32 GEMM peak in the same run, checks bytetx's outputs against plain
ONNX Runtime on valid tokens, and writes JSON, a markdown table and a speedup plot.

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
from typing import Any

import harness
import numpy as np
import onnx
import onnxruntime as ort
import torch
from rich.console import Console
from rich.progress import Progress

RESULT_STEM = "cpu_benchmark"


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
    )
}


# --------------------------------------------------------------------------------------------
# The GEMM peak
# --------------------------------------------------------------------------------------------

def matmul_model(m: int, k: int, n: int) -> bytes:
    """A one-node ONNX model Y[m, n] = A[m, k] x B[k, n], B a random float32 initializer."""
    weight = np.random.default_rng(0).standard_normal((k, n), dtype=np.float32)
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["A", "B"], ["Y"])],
        "gemm_peak",
        [onnx.helper.make_tensor_value_info("A", onnx.TensorProto.FLOAT, [m, k])],
        [onnx.helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, [m, n])],
        [onnx.numpy_helper.from_array(weight, "B")],
    )
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]).SerializeToString()


def peak_shapes(quick: bool) -> list[tuple[int, int, int]]:
    """(M, K, N) = [T, H] x [H, 4H] for H in 384, 768 and T in 2048..8192 (2048, 4096 in quick mode)."""
    token_counts = (2048, 4096) if quick else (2048, 4096, 8192)
    return [(t, h, 4 * h) for h in (384, 768) for t in token_counts]


QUICK_TIMING = harness.TimingPolicy(warmup_s=0.2, budget_s=0.6, min_repeats=3, max_repeats=15, rounds=3)
FULL_TIMING = harness.TimingPolicy(warmup_s=0.5, budget_s=3.0, min_repeats=3, max_repeats=100, rounds=3)


# --------------------------------------------------------------------------------------------
# Baselines and the models under test
# --------------------------------------------------------------------------------------------

BASELINES: dict[str, harness.Runner] = {
    baseline.name: baseline
    for baseline in (
        harness.Runner("torch-eager", "padded", "PyTorch, eager attention, padded batch"),
        harness.Runner("torch-sdpa", "padded", "PyTorch, SDPA attention, padded batch"),
        harness.Runner("ort", "padded", "ONNX Runtime, plain torch.onnx export, padded batch"),
        harness.Runner("ort-fused", "padded",
               "ONNX Runtime after onnxruntime.transformers optimize_model (Attention, "
               "SkipLayerNormalization, BiasGelu fused), padded batch"),
        harness.Runner("ort-fused-per-sequence", "unpadded",
               "ort-fused model, each sequence alone (batch 1, no padding)"),
        harness.Runner("ort-fused-sorted4", "unpadded",
               "ort-fused model, length-sorted micro-batches of 4, padded within each"),
    )
}
OURS = harness.Runner("bytetx", "ours", "bytetx padding-free rewrite of the plain export, padded batch")
QUICK_SKIPPED_BASELINES = ("torch-eager",)


@dataclass
class ModelUnderTest:
    """One model ready to run: its PyTorch modules and ONNX Runtime sessions, by baseline family."""

    name: str
    dims: harness.ModelDims
    inputs: harness.ModelInputs
    torch_models: dict[str, torch.nn.Module]  # by attention implementation: "eager", "sdpa"
    sessions: dict[str, ort.InferenceSession]  # "ort", "ort-fused", "bytetx"
    fused_ops: dict[str, int] = field(default_factory=dict)


def prepare_model(source: ModelSource, baselines: Sequence[str], threads: int, workdir: Path,
                  report: Callable[[str], None]) -> ModelUnderTest:
    """Load, export (TorchScript, eager attention), fuse and rewrite ``source``; open the sessions."""
    from bytetx.exporter import export_to_onnx, load_hf_model
    from bytetx.graph_rewrite import rewrite_padding_free

    import bytetx

    report(f"{source.name}: loading")
    model_dir = source.make_dir(workdir)
    eager = load_hf_model(model_dir, "eager")
    dims = harness.ModelDims.of(eager.config)
    torch_models = {"eager": eager.model} if "torch-eager" in baselines else {}
    if "torch-sdpa" in baselines:
        torch_models["sdpa"] = load_hf_model(model_dir, "sdpa").model
    report(f"{source.name}: exporting to ONNX")
    plain = export_to_onnx(eager)
    report(f"{source.name}: bytetx rewrite")
    rewritten, _ = rewrite_padding_free(plain)
    sessions = {
        "ort": ort.InferenceSession(plain.SerializeToString(), harness.ort_session_options(threads),
                                    providers=["CPUExecutionProvider"]),
        "bytetx": bytetx.InferenceSession(rewritten.SerializeToString(), harness.ort_session_options(threads)),
    }
    fused_ops: dict[str, int] = {}
    if any(name.startswith("ort-fused") for name in baselines):
        report(f"{source.name}: onnxruntime.transformers optimize_model")
        fused, fused_ops = harness.fuse_with_ort_optimizer(plain, dims, workdir)
        sessions["ort-fused"] = ort.InferenceSession(fused, harness.ort_session_options(threads),
                                                     providers=["CPUExecutionProvider"])
    return ModelUnderTest(source.name, dims, harness.ModelInputs.of(eager), torch_models, sessions, fused_ops)


# --------------------------------------------------------------------------------------------
# What each baseline runs
# --------------------------------------------------------------------------------------------

def onnx_run(session: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> harness.Run:
    return lambda: session.run(None, feeds)


def torch_run(model: torch.nn.Module, feeds: dict[str, np.ndarray]) -> harness.Run:
    tensors = {name: torch.from_numpy(value) for name, value in feeds.items()}

    def run() -> object:
        with torch.inference_mode():
            return model(**tensors)

    return run


def micro_batches(batch: harness.Batch, groups: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Feeds of each group of sequences, [len(group), longest length in the group] per input."""
    return [
        {name: np.ascontiguousarray(value[group, : int(batch.lengths[group].max())])
         for name, value in batch.feeds.items()}
        for group in groups
    ]


def one_per_sequence(lengths: np.ndarray) -> list[np.ndarray]:
    return [np.array([row]) for row in range(len(lengths))]


def length_sorted_groups(lengths: np.ndarray, size: int) -> list[np.ndarray]:
    order = np.argsort(lengths, kind="stable")
    return [order[start : start + size] for start in range(0, len(order), size)]


def micro_batch_run(session: ort.InferenceSession, feeds_list: list[dict[str, np.ndarray]]) -> harness.Run:
    def run() -> object:
        return [session.run(None, feeds) for feeds in feeds_list]

    return run


def build_run(name: str, model: ModelUnderTest, batch: harness.Batch) -> harness.Run:
    """The call that the baseline ``name`` (or ``bytetx``) times; inputs are prepared beforehand."""
    if name == "torch-eager":
        return torch_run(model.torch_models["eager"], batch.feeds)
    if name == "torch-sdpa":
        return torch_run(model.torch_models["sdpa"], batch.feeds)
    if name in ("ort", "ort-fused", "bytetx"):
        return onnx_run(model.sessions[name], batch.feeds)
    if name == "ort-fused-per-sequence":
        groups = one_per_sequence(batch.lengths)
        return micro_batch_run(model.sessions["ort-fused"], micro_batches(batch, groups))
    if name == "ort-fused-sorted4":
        groups = length_sorted_groups(batch.lengths, 4)
        return micro_batch_run(model.sessions["ort-fused"], micro_batches(batch, groups))
    raise ValueError(f"unknown baseline {name}")


def executed_lengths(name: str, lengths: np.ndarray) -> list[int]:
    """[B] positions a runner computes per sequence: its length plus the padding it runs with."""
    kind = BASELINES.get(name, OURS).kind
    if kind == "padded":
        return [int(lengths.max())] * len(lengths)
    if name == "ort-fused-sorted4":
        return [int(lengths[group].max()) for group in length_sorted_groups(lengths, 4) for _ in group]
    return [int(n) for n in lengths]


def bytetx_max_diff(model: ModelUnderTest, batch: harness.Batch) -> dict[str, float]:
    """Per output, max |bytetx - plain ONNX Runtime| on valid tokens (valid rows for the pooler)."""
    from bytetx.exporter.verify import run_onnx, valid_token_diff

    ours = run_onnx(model.sessions["bytetx"], batch.feeds)
    reference = run_onnx(model.sessions["ort"], batch.feeds)
    return {name: valid_token_diff(ours[name], expected, batch.mask) for name, expected in reference.items()}


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------

@dataclass
class WorkloadResult(harness.WorkloadResult):
    max_abs_diff_vs_ort: dict[str, float]

    def record(self, peak_gflops: float) -> dict[str, Any]:
        """JSON-ready: latencies, tokens/s, useful GFLOP/s and fraction of peak, bytetx's speedups."""
        ours_ms = self.timings[OURS.name].median_ms
        baselines = [name for name in self.timings if name != OURS.name]
        speedups = {name: self.timings[name].median_ms / ours_ms for name in baselines}
        return {
            **super().record(peak_gflops),
            "bytetx_speedup": speedups,
            "best_padded": harness.best_of(speedups, BASELINES, "padded"),
            "best_unpadded": harness.best_of(speedups, BASELINES, "unpadded"),
            "max_abs_diff_vs_ort": self.max_abs_diff_vs_ort,
        }


def run_workload(workload: harness.Workload, model: ModelUnderTest, runners: Sequence[str],
                 policy: harness.TimingPolicy, on_measured: Callable[[str], None]) -> WorkloadResult:
    """Time every runner on the workload's batch and check bytetx against plain ONNX Runtime."""
    batch = model.inputs.batch(workload.lengths())
    runs = {name: build_run(name, model, batch) for name in runners}
    timings = harness.measure_interleaved(runs, policy, on_measured)
    return WorkloadResult(
        workload,
        [int(n) for n in batch.lengths],
        batch.padded_length,
        harness.encoder_flops(batch.lengths, model.dims) / 1e9,
        timings,
        bytetx_max_diff(model, batch),
    )


def measure_gemm_peak(shapes: Sequence[tuple[int, int, int]], threads: int, policy: harness.TimingPolicy,
                      on_measured: Callable[[], None]) -> list[dict[str, Any]]:
    """Per (M, K, N): ONNX Runtime MatMul median ms and GFLOP/s (2*M*N*K / median time)."""
    def matmul_run(m: int, k: int, n: int) -> harness.Run:
        session = ort.InferenceSession(matmul_model(m, k, n), harness.ort_session_options(threads),
                                       providers=["CPUExecutionProvider"])
        activations = np.random.default_rng(1).standard_normal((m, k), dtype=np.float32)
        return onnx_run(session, {"A": activations})

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
        "runners": {name: asdict(BASELINES.get(name, OURS)) for name in runners},
        "distributions": harness.DISTRIBUTION_DESCRIPTIONS,
        "padding": "right padding to the longest sequence of the (micro-)batch",
    }


def markdown_report(report: dict[str, Any]) -> str:
    """The machine and peak, then two tables: every runner's median latency; bytetx's throughput,
    speedups and max |diff|."""
    runners = list(report["settings"]["runners"])
    lines = ["# bytetx CPU benchmark", "", *markdown_header(report), "", "## Median latency (ms)", ""]
    lines += latency_table(report["results"], runners)
    lines += ["", "## bytetx: throughput, speedup (baseline latency / bytetx latency), accuracy", ""]
    lines += bytetx_table(report["results"], [name for name in runners if name != OURS.name])
    return "\n".join(lines) + "\n"


def markdown_header(report: dict[str, Any]) -> list[str]:
    env, peak = report["environment"], report["gemm_peak"]
    before, after = harness.best_shape(peak["before"])["gflops"], harness.best_shape(peak["after"])["gflops"]
    m, k, n = (peak["best"][key] for key in ("m", "k", "n"))
    load = env["load_average_1min"]
    machine = (f"{env['cpu']}, {env['cpu_count']} cores, {env['threads']} threads; torch {env['torch']}, "
               f"onnxruntime {env['onnxruntime']}, transformers {env['transformers']}; {env['date']}; "
               f"1-minute load average {load['start']:.2f} at the start, {load['end']:.2f} at the end.")
    peak_line = (f"fp32 GEMM peak (ONNX Runtime MatMul, best of {len(peak['before'])} shapes, measured "
                 f"before and after the workloads: {before:.1f} and {after:.1f} GFLOP/s): "
                 f"**{peak['peak_gflops']:.1f} GFLOP/s** at [{m}, {k}] x [{k}, {n}].")
    return [machine, peak_line]


def workload_cells(record: dict[str, Any]) -> str:
    return f"| {record['model']} | {record['batch']} | {record['max_length']} | {record['distribution']} | "


def latency_table(records: list[dict[str, Any]], runners: list[str]) -> list[str]:
    header = "| model | batch | max len | lengths | mean len | real / padded tokens | "
    lines = [header + " | ".join(runners) + " |", "|" + " --- |" * 6 + " ---: |" * len(runners)]
    for r in records:
        tokens = f"{r['mean_length']:.0f} | {r['real_tokens']} / {r['padded_tokens']} | "
        cells = [f"{r['latency_ms'][name]['median_ms']:.1f}" for name in runners]
        lines.append(workload_cells(r) + tokens + " | ".join(cells) + " |")
    return lines


def bytetx_table(records: list[dict[str, Any]], baselines: list[str]) -> list[str]:
    ours = OURS.name
    lines = [
        "| model | batch | max len | lengths | tokens/s | useful GFLOP/s | % of peak | "
        + " | ".join(f"vs {name}" for name in baselines)
        + " | vs best padded | vs best unpadded | max abs diff vs ort |",
        "|" + " --- |" * 4 + " ---: |" * (len(baselines) + 6),
    ]
    for r in records:
        speedups = [f"{r['bytetx_speedup'][name]:.2f}x" for name in baselines]
        diff = max(r["max_abs_diff_vs_ort"].values())
        lines.append(
            workload_cells(r)
            + f"{r['tokens_per_s'][ours]:,.0f} | {r['useful_gflops'][ours]:.1f} | "
            + f"{100 * r['fraction_of_peak'][ours]:.0f}% | "
            + " | ".join(speedups)
            + f" | {harness.format_speedup(r['best_padded'])} | {harness.format_speedup(r['best_unpadded'])} | {diff:.2e} |"
        )
    return lines


def plot_speedups(report: dict[str, Any], path: Path) -> None:
    """Speedup of bytetx against the best padded and the best unpadded baseline vs max length:
    one panel per (model, batch), one line per comparison and length distribution."""
    harness.plot_panels(report["results"], path, "bytetx speedup (x)", plot_panel)


def plot_panel(axis: Any, records: list[dict[str, Any]]) -> None:
    """One (model, batch) panel: solid lines for uniform lengths, dashed for skewed."""
    for distribution in dict.fromkeys(r["distribution"] for r in records):
        chosen = [r for r in records if r["distribution"] == distribution]
        for key, color in (("best_padded", "tab:blue"), ("best_unpadded", "tab:orange")):
            points = [(r["max_length"], r[key]["speedup"]) for r in chosen if r[key]]
            if points:
                lengths, speedups = zip(*points, strict=True)
                axis.plot(lengths, speedups, "--" if distribution == "skewed" else "-", color=color,
                          marker="o", label=f"vs {key.replace('_', ' ')} ({distribution})")


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = harness.benchmark_parser(__doc__, "minilm-l6, batch 16, max length 128 and 256, both distributions, "
                                      "no torch-eager, fewer repeats and GEMM shapes (a few minutes on 2 cores)")
    harness.add_workload_options(parser, list(MODELS), default_models=",".join(MODELS),
                                 default_batches="1,8,16,32", default_max_lengths="64,128,256,512",
                                 default_distributions=",".join(harness.DISTRIBUTIONS))
    parser.add_argument("--baselines", type=harness.names(list(BASELINES)),
                        help=f"comma-separated baselines to time besides bytetx (default: all of "
                             f"{', '.join(BASELINES)})")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads and ONNX Runtime intra-op threads (default: all cores)")
    harness.add_timing_options(parser, FULL_TIMING, QUICK_TIMING)
    return parser


def resolve(args: argparse.Namespace) -> tuple[list[harness.Workload], list[str], harness.TimingPolicy]:
    """Workloads, runners (baselines then bytetx) and timing policy from the options and --quick."""
    if args.quick:
        defaults = (["minilm-l6"], [16], [128, 256],
                    [name for name in BASELINES if name not in QUICK_SKIPPED_BASELINES])
    else:
        defaults = (list(MODELS), [1, 8, 16, 32], [64, 128, 256, 512], list(BASELINES))
    workloads = harness.workload_grid(args.models or defaults[0], args.batches or defaults[1],
                                      args.max_lengths or defaults[2],
                                      args.distributions or list(harness.DISTRIBUTIONS))
    runners = (args.baselines or defaults[3]) + [OURS.name]
    return workloads, runners, harness.timing_policy(args, FULL_TIMING, QUICK_TIMING)


def run_benchmark(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """GEMM peak, every workload of every model, GEMM peak again: the report as a JSON-ready dict."""
    workloads, runners, policy = resolve(args)
    shapes = peak_shapes(args.quick)
    load_at_start = os.getloadavg()
    with harness.progress_bar(console) as progress, tempfile.TemporaryDirectory() as tmp:
        task = progress.add_task("GEMM peak", total=2 * len(shapes) + len(workloads) * len(runners))
        peak_before = measure_gemm_peak(shapes, args.threads, policy, lambda: progress.advance(task))
        peak_gflops = harness.best_shape(peak_before)["gflops"]
        estimate = estimate_seconds(workloads, runners, peak_gflops, policy)
        console.print(f"fp32 GEMM peak {peak_gflops:.1f} GFLOP/s; {len(workloads)} workloads x "
                      f"{len(runners)} runners: rough estimate {harness.format_duration(estimate)} of timing, "
                      "plus model preparation", highlight=False)
        results, model_notes = [], {}
        for model_name in dict.fromkeys(w.model for w in workloads):
            started = time.perf_counter()
            model = prepare_model(MODELS[model_name], runners, args.threads, Path(tmp),
                                  lambda text: progress.update(task, description=text))
            model_notes[model_name] = {**asdict(model.dims), "ort_fused_ops": model.fused_ops,
                                       "preparation_s": time.perf_counter() - started}
            for workload in (w for w in workloads if w.model == model_name):
                results.append(run_and_log(workload, model, runners, policy, progress, task))
            del model  # frees its sessions before the next model is loaded
        progress.update(task, description="GEMM peak")
        peak_after = measure_gemm_peak(shapes, args.threads, policy, lambda: progress.advance(task))
    best = harness.best_shape(peak_before + peak_after)
    return {
        "environment": harness.environment(threads=args.threads,
                                   load_average_1min={"start": load_at_start[0], "end": os.getloadavg()[0]}),
        "settings": describe_settings(args, policy, runners),
        "gemm_peak": {"peak_gflops": best["gflops"], "best": best,
                      "before": peak_before, "after": peak_after},
        "models": model_notes,
        "flops_formula": harness.FLOPS_FORMULA,
        "results": [result.record(best["gflops"]) for result in results],
    }


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
