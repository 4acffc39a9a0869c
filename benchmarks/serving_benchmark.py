#!/usr/bin/env python3
"""Serving benchmark: bytetx on Triton Inference Server against the padded model on the same server,
under 1 to 64 concurrent clients.

Three servers run side by side, each the real ``tritonserver`` of nvidia-pytriton with its Python
backend and the same dynamic batcher, serving the same interface (``bytetx``: ``input_ids`` [1, L] in,
``sentence_embedding`` out) on the bundled all-MiniLM-L6-v2:

- ``padded``: the plain export after ONNX Runtime's own BERT fusions, each batch right-padded to its
  longest request (benchmarks/triton_padded_model.py);
- ``bytetx``: bytetx-serve's packed float32 model, the batch's requests concatenated without padding;
- ``bytetx-int8``: the same with int8 GEMMs (``bytetx-serve --precision int8``).

Closed-loop gRPC clients (one thread each, one request in flight) send requests whose lengths follow
the CPU benchmark's distributions. For every distribution and client count, the servers take turns in
interleaved rounds; each round warms up, then counts the requests finished in its window. Reported:
requests/s and tokens/s (median over rounds), latency p50/p90/p99 (over all rounds' requests), the
mean batch Triton formed (its inference and execution counts), errors, and the ratio to ``padded``.
Clients and servers share the machine's cores, as they do on one host.

    pip install ".[serve,bench]"
    python benchmarks/serving_benchmark.py --quick     # about 3 minutes on 2 cores
    python benchmarks/serving_benchmark.py             # about 15 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness
import numpy as np
from rich.console import Console

RESULT_STEM = "serving_benchmark"
SERVERS = ("padded", "bytetx", "bytetx-int8")
PADDED_BACKEND = Path(__file__).resolve().parent / "triton_padded_model.py"
MODEL = "bytetx"
LENGTH_POOL = 4096
CLIENT_TIMEOUT_S = 120


@dataclass(frozen=True)
class Settings:
    concurrency: list[int]
    distributions: list[str]
    max_length: int
    rounds: int
    warmup_s: float
    window_s: float
    max_batch_size: int
    max_queue_delay_us: int


FULL = {"concurrency": [1, 4, 16, 64], "distributions": ["uniform", "skewed"], "rounds": 3, "warmup_s": 1.5, "window_s": 8.0}
QUICK = {"concurrency": [1, 16], "distributions": ["uniform"], "rounds": 2, "warmup_s": 1.0, "window_s": 3.0}


# --------------------------------------------------------------------------------------------
# The servers
# --------------------------------------------------------------------------------------------

def padded_repository(model_dir: Path, served: Any, batching: Any, workdir: Path) -> Path:
    """A repository whose ``bytetx`` pads: the fused plain export behind triton_padded_model.py, with the
    packed model's interface and config (same batcher, same inputs and outputs)."""
    from bytetx.exporter import export_to_onnx, load_hf_model
    from bytetx.exporter.pooling import read_sentence_pooling
    from google.protobuf import text_format

    from bytetx.serving.repository import encoder_config
    from bytetx.serving.requests import ModelLimits

    loaded = load_hf_model(model_dir)
    fused, _ = harness.fuse_with_ort_optimizer(export_to_onnx(loaded), harness.ModelDims.of(loaded.config), workdir)
    limits = ModelLimits.from_metadata({p.key: p.value for p in served.packed.metadata_props})
    pooling = read_sentence_pooling(model_dir)
    folder = workdir / "repository" / MODEL
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.onnx").write_bytes(fused)
    shutil.copyfile(PADDED_BACKEND, folder / "1" / "model.py")
    (folder / "1" / "settings.json").write_text(json.dumps({
        "limits": vars(limits), "pad_token_id": loaded.pad_token_id,
        "pooling": pooling.mode, "normalize": pooling.normalize}))
    (folder / "config.pbtxt").write_text(text_format.MessageToString(encoder_config(served, "python", batching)))
    return folder.parent


def prepare_repositories(servers: list[str], settings: Settings, workdir: Path,
                         console: Console) -> tuple[dict[str, Path], dict[str, list[str]], int]:
    """The servers' repositories, the lines their preparation reported, and the model's vocabulary size."""
    from bytetx.serving.export import prepare_model
    from bytetx.serving.repository import Batching, write_repository

    model_dir = harness.minilm_dir(workdir)
    batching = Batching(settings.max_batch_size, settings.max_queue_delay_us, instances=1)
    repositories: dict[str, Path] = {}
    notes: dict[str, list[str]] = {}
    for name in servers:
        (workdir / name).mkdir()
    with console.status("bytetx float32: export, packed flavour, verification"):
        served, notes["bytetx"] = prepare_model(model_dir)
    if "bytetx" in servers:
        repositories["bytetx"] = write_repository(served, workdir / "bytetx" / "repository", "python", batching)
    if "bytetx-int8" in servers:
        with console.status("bytetx int8: quantization and its quality check on the sentence set"):
            int8, notes["bytetx-int8"] = prepare_model(model_dir, precision="int8")
        repositories["bytetx-int8"] = write_repository(int8, workdir / "bytetx-int8" / "repository", "python",
                                                       batching)
    if "padded" in servers:
        with console.status("padded: export and ONNX Runtime's optimize_model"):
            repositories["padded"] = padded_repository(model_dir, served, batching, workdir / "padded")
    # The rewrite reports stay on the console; the report keeps the verification and quality lines.
    notes = {name: [line for line in lines if "vs Hugging Face" in line] for name, lines in notes.items()}
    for name, lines in notes.items():
        for line in lines:
            console.print(f"{name}: {line}", highlight=False)
    vocab_size = int({p.key: p.value for p in served.packed.metadata_props}["bytetx_vocab_size"])
    return {name: repositories[name] for name in servers}, notes, vocab_size


# --------------------------------------------------------------------------------------------
# The clients
# --------------------------------------------------------------------------------------------

@dataclass
class Window:
    """What one server did in one round's measured window."""

    requests: int = 0
    tokens: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    first_error: str | None = None


def client_loop(url: str, lengths: np.ndarray, vocab_size: int, seed: int, start: float, stop: float,
                window: Window, lock: threading.Lock) -> None:
    """One closed-loop client: a request, its answer, the next; requests finished inside [start, stop)
    count (those begun before start warm up)."""
    import tritonclient.grpc as grpcclient

    rng = np.random.default_rng(seed)
    output = [grpcclient.InferRequestedOutput("sentence_embedding")]
    with grpcclient.InferenceServerClient(url) as client:
        index = 0
        while True:
            began = time.perf_counter()
            if began >= stop:
                return
            length = int(lengths[index % len(lengths)])
            index += 1
            ids = rng.integers(1000, vocab_size, size=(1, length), dtype=np.int64)
            tensor = grpcclient.InferInput("input_ids", [1, length], "INT64")
            tensor.set_data_from_numpy(ids)
            error = None
            try:
                result = client.infer(MODEL, [tensor], outputs=output, client_timeout=CLIENT_TIMEOUT_S)
                embedding = result.as_numpy("sentence_embedding")
                if embedding is None or embedding.shape[0] != 1:
                    error = f"unexpected sentence_embedding {None if embedding is None else embedding.shape}"
            except Exception as failure:  # noqa: BLE001 - counted and reported, the run goes on
                error = str(failure)
            finished = time.perf_counter()
            if began < start or finished >= stop:
                continue
            with lock:
                if error is None:
                    window.requests += 1
                    window.tokens += length
                    window.latencies_ms.append((finished - began) * 1e3)
                else:
                    window.errors += 1
                    window.first_error = window.first_error or error


def embeddings(url: str, sequences: list[np.ndarray]) -> np.ndarray:
    """The server's sentence embeddings of ``sequences``, one request each."""
    import tritonclient.grpc as grpcclient

    rows = []
    with grpcclient.InferenceServerClient(url) as client:
        for ids in sequences:
            tensor = grpcclient.InferInput("input_ids", [1, len(ids)], "INT64")
            tensor.set_data_from_numpy(ids[None])
            rows.append(client.infer(MODEL, [tensor]).as_numpy("sentence_embedding")[0])
    return np.stack(rows)


def agreement(urls: dict[str, str], max_length: int, vocab_size: int) -> dict[str, dict[str, float]]:
    """Each server's embeddings of the same 16 ragged sequences against the first server's: max |diff|
    and min cosine, so that the servers are seen to compute the same thing."""
    rng = np.random.default_rng(7)
    sequences = [rng.integers(1000, vocab_size, size=int(n), dtype=np.int64)
                 for n in rng.integers(1, max_length + 1, size=16)]
    results = {name: embeddings(url, sequences) for name, url in urls.items()}
    reference = next(iter(results.values()))
    return {name: {"max_abs_diff": float(np.abs(value - reference).max()),
                   "min_cosine": float(min(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
                                           for a, b in zip(value, reference)))}
            for name, value in results.items()}


def batch_counts(url: str) -> tuple[int, int]:
    """(inferences, executions) Triton has counted for the model: their ratio is the mean batch."""
    import tritonclient.grpc as grpcclient

    with grpcclient.InferenceServerClient(url) as client:
        stats = client.get_inference_statistics(MODEL).model_stats[0]
    return stats.inference_count, stats.execution_count


def run_window(url: str, clients: int, lengths: np.ndarray, vocab_size: int, settings: Settings,
               round_index: int) -> tuple[Window, int, int]:
    """``clients`` clients against one server for warm-up plus window; the window and its batch counts."""
    window, lock = Window(), threading.Lock()
    before = batch_counts(url)
    start = time.perf_counter() + settings.warmup_s
    stop = start + settings.window_s
    threads = [threading.Thread(target=client_loop, daemon=True,
                                args=(url, lengths[c::clients], vocab_size, 1000 * round_index + c, start, stop,
                                      window, lock)) for c in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = batch_counts(url)
    return window, after[0] - before[0], after[1] - before[1]


# --------------------------------------------------------------------------------------------
# Measuring and reporting
# --------------------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def summarize(windows: list[tuple[Window, int, int]], window_s: float) -> dict[str, Any]:
    latencies = [v for window, _, _ in windows for v in window.latencies_ms]
    inferences = sum(i for _, i, _ in windows)
    executions = sum(e for _, _, e in windows)
    errors = [w.first_error for w, _, _ in windows if w.first_error]
    return {
        "requests_per_s": statistics.median(w.requests / window_s for w, _, _ in windows),
        "tokens_per_s": statistics.median(w.tokens / window_s for w, _, _ in windows),
        "p50_ms": percentile(latencies, 50), "p90_ms": percentile(latencies, 90), "p99_ms": percentile(latencies, 99),
        "requests": sum(w.requests for w, _, _ in windows),
        "errors": sum(w.errors for w, _, _ in windows), "first_error": errors[0] if errors else None,
        # Counted over warm-up and window alike: the batches the load formed.
        "mean_batch": inferences / executions if executions else None,
        "rounds": [{"requests": w.requests, "tokens": w.tokens, "errors": w.errors} for w, _, _ in windows],
    }


def measure(urls: dict[str, str], settings: Settings, vocab_size: int, console: Console) -> list[dict[str, Any]]:
    records = []
    steps = len(settings.distributions) * len(settings.concurrency) * settings.rounds * len(urls)
    with harness.progress_bar(console) as progress:
        task = progress.add_task("serving", total=steps)
        for distribution in settings.distributions:
            lengths = harness.Workload("minilm-l6", LENGTH_POOL, settings.max_length, distribution).lengths()
            for clients in settings.concurrency:
                windows: dict[str, list] = {name: [] for name in urls}
                for round_index in range(settings.rounds):
                    # Each round starts with another server, so none always follows the same one.
                    names = list(urls)[round_index % len(urls):] + list(urls)[:round_index % len(urls)]
                    for name in names:
                        progress.update(task, description=f"{distribution}, {clients} clients: {name}")
                        windows[name].append(run_window(urls[name], clients, lengths, vocab_size, settings,
                                                        round_index))
                        progress.advance(task)
                for name in urls:
                    record = {"server": name, "distribution": distribution, "clients": clients,
                              **summarize(windows[name], settings.window_s)}
                    records.append(record)
                    progress.console.print(
                        f"{distribution}, {clients} clients, {name}: {record['requests_per_s']:.1f} req/s, "
                        f"p50 {format_ms(record['p50_ms'])}, p99 {format_ms(record['p99_ms'])} ms, "
                        f"mean batch {format_number(record['mean_batch'])}, errors {record['errors']}",
                        highlight=False)
    add_ratios(records)
    return records


def add_ratios(records: list[dict[str, Any]]) -> None:
    """Throughput and p99 of each server over the padded one's, same distribution and clients."""
    padded = {(r["distribution"], r["clients"]): r for r in records if r["server"] == "padded"}
    for record in records:
        base = padded.get((record["distribution"], record["clients"]))
        good = base and base["requests_per_s"] and base["p99_ms"] and record["p99_ms"]
        record["throughput_vs_padded"] = record["requests_per_s"] / base["requests_per_s"] if good else None
        record["p99_vs_padded"] = record["p99_ms"] / base["p99_ms"] if good else None


def format_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_number(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def markdown_report(report: dict[str, Any]) -> str:
    env, settings = report["environment"], report["settings"]
    lines = [
        "# bytetx serving benchmark", "",
        (f"{env['cpu']}, {env['cpu_count']} cores, clients and servers on the same cores; "
         f"onnxruntime {env['onnxruntime']}, nvidia-pytriton {env['pytriton']}; {env['date']}."),
        (f"all-MiniLM-L6-v2, max length {settings['max_length']}; dynamic batching up to "
         f"{settings['max_batch_size']} requests, queue delay {settings['max_queue_delay_us']} us, one instance; "
         f"{settings['rounds']} interleaved rounds of {settings['window_s']:g} s after {settings['warmup_s']:g} s "
         "of warm-up; closed-loop gRPC clients, one request in flight each."), "",
        ("| lengths | clients | server | req/s | tokens/s | p50 ms | p90 ms | p99 ms | mean batch | errors "
        "| throughput vs padded | p99 vs padded |"),
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report["records"]:
        lines.append(
            f"| {r['distribution']} | {r['clients']} | {r['server']} | {r['requests_per_s']:.1f} | "
            f"{r['tokens_per_s']:.0f} | {format_ms(r['p50_ms'])} | {format_ms(r['p90_ms'])} | {format_ms(r['p99_ms'])} | "
            f"{format_number(r['mean_batch'])} | {r['errors']} | {format_number(r['throughput_vs_padded'], 2, 'x')} | "
            f"{format_number(r['p99_vs_padded'], 2, 'x')} |")
    lines += ["", "Lengths: " + "; ".join(f"{name}: {harness.DISTRIBUTION_DESCRIPTIONS[name]}"
                                          for name in settings["distributions"]) + "."]
    for name, notes in report["model_notes"].items():
        lines += [f"- {name}: {note}" for note in notes]
    first = report["servers"][0]
    lines += [f"- {name} vs {first} on 16 ragged requests: sentence_embedding max |diff| {v['max_abs_diff']:.2e}, "
              f"min cosine {v['min_cosine']:.5f}" for name, v in report["agreement"].items() if name != first]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    """Requests/s and p99 against clients, one column per length distribution."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = report["records"]
    distributions = report["settings"]["distributions"]
    figure, axes = plt.subplots(2, len(distributions), squeeze=False, figsize=(5 * len(distributions), 6.4))
    for column, distribution in enumerate(distributions):
        for server in dict.fromkeys(r["server"] for r in records):
            points = sorted((r for r in records if (r["server"], r["distribution"]) == (server, distribution)),
                            key=lambda r: r["clients"])
            clients = [r["clients"] for r in points]
            axes[0][column].plot(clients, [r["requests_per_s"] for r in points], marker="o", label=server)
            axes[1][column].plot(clients, [r["p99_ms"] or float("nan") for r in points], marker="o", label=server)
        for row, label in enumerate(("requests/s", "p99 latency (ms)")):
            harness.style_axis(axes[row][column], report["settings"]["concurrency"], "concurrent clients", label,
                               f"{distribution} lengths")
    harness.save_figure(figure, axes, path)


def build_parser() -> argparse.ArgumentParser:
    parser = harness.benchmark_parser(__doc__, "1 and 16 clients, uniform lengths, 2 rounds of 3 s")
    parser.add_argument("--servers", type=harness.names(SERVERS), default=list(SERVERS),
                        help=f"comma-separated, of {', '.join(SERVERS)} (default all)")
    parser.add_argument("--concurrency", type=harness.integers,
                        help=f"comma-separated client counts (default {','.join(map(str, FULL['concurrency']))})")
    parser.add_argument("--distributions", type=harness.names(list(harness.DISTRIBUTIONS)),
                        help="comma-separated length distributions (default uniform,skewed)")
    parser.add_argument("--max-length", type=int, default=128, help="longest request in tokens (default 128)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3, quick 2)")
    parser.add_argument("--window", type=float, help="measured seconds per round (default 8, quick 3)")
    parser.add_argument("--max-batch-size", type=int, default=64, help="Triton's max batch size (default 64)")
    parser.add_argument("--max-queue-delay-us", type=int, default=2000,
                        help="Triton's dynamic batcher queue delay (default 2000, as bytetx-serve)")
    parser.add_argument("--output-dir", type=Path, default=harness.DEFAULT_OUTPUT_DIR,
                        help="where the JSON, markdown and PNG go (default benchmarks/results)")
    return parser


def resolve(args: argparse.Namespace) -> Settings:
    chosen = QUICK if args.quick else FULL
    return Settings(
        concurrency=args.concurrency or chosen["concurrency"],
        distributions=args.distributions or chosen["distributions"],
        max_length=args.max_length, rounds=args.rounds or chosen["rounds"], warmup_s=chosen["warmup_s"],
        window_s=args.window or chosen["window_s"], max_batch_size=args.max_batch_size,
        max_queue_delay_us=args.max_queue_delay_us)


def main(argv: list[str] | None = None) -> int:
    from importlib.metadata import version

    from bytetx.serving.server import Endpoints, ServeError, TritonServer, find_triton, free_local_ports

    args = build_parser().parse_args(argv)
    console = Console(stderr=True, highlight=False)
    settings = resolve(args)
    if not harness.have_matplotlib(console):
        return 1
    try:
        find_triton()
    except ServeError as error:
        console.print(f"[bold red]error:[/] {error}")
        return 1
    harness.quiet_transformers()
    with tempfile.TemporaryDirectory(prefix="bytetx-serving-bench-") as folder:
        workdir = Path(folder)
        repositories, notes, vocab_size = prepare_repositories(args.servers, settings, workdir, console)
        with contextlib.ExitStack() as servers:
            urls = {}
            for name, repository in repositories.items():
                http, grpc, metrics = free_local_ports(3)
                with console.status(f"starting tritonserver for {name}"):
                    servers.enter_context(TritonServer(repository, Endpoints("127.0.0.1", http, grpc, metrics),
                                                       repository.parent))
                urls[name] = f"127.0.0.1:{grpc}"
            agreed = agreement(urls, settings.max_length, vocab_size)
            for name, values in agreed.items():
                console.print(f"{name} vs {next(iter(urls))}: sentence_embedding max |diff| "
                              f"{values['max_abs_diff']:.2e}, min cosine {values['min_cosine']:.5f}")
            records = measure(urls, settings, vocab_size, console)
    report = {"environment": harness.environment(pytriton=version("nvidia-pytriton"), threads="onnxruntime default"),
              "settings": vars(settings), "servers": args.servers, "model_notes": notes, "agreement": agreed,
              "records": records}
    harness.write_reports(report, args.output_dir, RESULT_STEM, markdown_report(report), plot, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
