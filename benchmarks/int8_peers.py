#!/usr/bin/env python3
"""The low-precision CPU engines a user would pick, against bytetx float32 and int8, in one run.

Peers: ONNX Runtime int8 the way Optimum and sentence-transformers make it (``optimize_model`` fusion,
then ``quantize_dynamic`` with the AVX512-VNNI settings: QInt8 weights, per-tensor, no range reduction),
OpenVINO at float32, at its default precision (bf16 on CPUs with AVX512_BF16) and int8 (NNCF
post-training quantization, calibrated on the packaged sentences), each on the padded batch and on each
sequence alone. Every runner's latency (interleaved rounds, medians) and its quality on the sentence set
(mean-pooled cosine to Hugging Face float32, min and mean, nearest-neighbour agreement) go in one table,
beside the int8 and float32 GEMM peaks measured in the same run.

    pip install ".[bench]"
    python benchmarks/int8_peers.py --model minilm-l6 --max-lengths 128,512

"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import harness
import numpy as np
import onnx
import onnxruntime as ort

Run = Callable[[], object]
Hidden = Callable[[dict[str, np.ndarray]], np.ndarray]


def ort_int8_optimum_style(plain: onnx.ModelProto, dims: harness.ModelDims, workdir: Path) -> bytes:
    """Optimum's ``AutoQuantizationConfig.avx512_vnni(is_static=False)`` on the fused export, as
    sentence-transformers' ``export_dynamic_quantized_onnx_model`` runs it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fused, _ = harness.fuse_with_ort_optimizer(plain, dims, workdir)
    (workdir / "fused.onnx").write_bytes(fused)
    quantize_dynamic(workdir / "fused.onnx", workdir / "fused.int8.onnx", per_channel=False, reduce_range=False,
                     weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Attention", "Gemm"],
                     # shape inference stops at the contrib ops of the fused model
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return (workdir / "fused.int8.onnx").read_bytes()


def openvino_compiled(path: Path, threads: int, precision: str | None, calibration=None):
    """OpenVINO's CPU plugin on an ONNX file; ``precision`` "f32", or None for its default (bf16 where the
    CPU has it); ``calibration`` (a list of feeds) quantizes to int8 with NNCF first."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    if calibration is not None:
        import nncf

        model = nncf.quantize(model, nncf.Dataset(calibration), model_type=nncf.ModelType.TRANSFORMER,
                              subset_size=len(calibration))
    config = {"INFERENCE_NUM_THREADS": threads}
    if precision is not None:
        config["INFERENCE_PRECISION_HINT"] = precision
    return core.compile_model(model, "CPU", config)


def onnx_hidden(session: ort.InferenceSession) -> Hidden:
    names = [i.name for i in session.get_inputs()]
    return lambda feeds: session.run(None, {k: feeds[k] for k in names})[0]


def openvino_hidden(compiled) -> Hidden:
    names = [p.get_any_name() for p in compiled.inputs]
    output = compiled.outputs[0]
    request = compiled.create_infer_request()
    return lambda feeds: np.array(request.infer({k: feeds[k] for k in names})[output])


def padded(hidden: Hidden, feeds: dict[str, np.ndarray]) -> Run:
    return lambda: hidden(feeds)


def per_sequence(hidden: Hidden, feeds: dict[str, np.ndarray], lengths: np.ndarray) -> Run:
    singles = [{k: np.ascontiguousarray(v[row : row + 1, : int(lengths[row])]) for k, v in feeds.items()}
               for row in range(len(lengths))]
    return lambda: [hidden(f) for f in singles]


def length_sorted(hidden: Hidden, feeds: dict[str, np.ndarray], lengths: np.ndarray, size: int = 4) -> Run:
    order = np.argsort(lengths, kind="stable")
    groups = [order[i : i + size] for i in range(0, len(order), size)]
    batches = [{k: np.ascontiguousarray(v[g, : int(lengths[g].max())]) for k, v in feeds.items()} for g in groups]
    return lambda: [hidden(f) for f in batches]


def gemm_peaks(threads: int, m: int = 2048, k: int = 768) -> dict[str, float]:
    """float32 MatMul (GFLOP/s) and MatMulInteger u8 x s8 (GOP/s), [m, k] x [k, 4k], weights constant."""
    from onnx import TensorProto, helper, numpy_helper

    n = 4 * k
    rng = np.random.default_rng(0)
    models = {
        "fp32 MatMul": (helper.make_node("MatMul", ["A", "W"], ["Y"]), TensorProto.FLOAT, TensorProto.FLOAT,
                        [numpy_helper.from_array(rng.standard_normal((k, n), dtype=np.float32), "W")],
                        rng.standard_normal((m, k), dtype=np.float32)),
        "int8 MatMulInteger": (helper.make_node("MatMulInteger", ["A", "W", "za", "zw"], ["Y"]), TensorProto.UINT8,
                               TensorProto.INT32,
                               [numpy_helper.from_array(rng.integers(-127, 128, (k, n), dtype=np.int8), "W"),
                                numpy_helper.from_array(np.array(128, np.uint8), "za"),
                                numpy_helper.from_array(np.zeros(n, np.int8), "zw")],
                               rng.integers(0, 256, (m, k), dtype=np.uint8)),
    }
    peaks = {}
    for name, (node, a_type, y_type, weights, a) in models.items():
        graph = helper.make_graph([node], "peak", [helper.make_tensor_value_info("A", a_type, [m, k])],
                                  [helper.make_tensor_value_info("Y", y_type, [m, n])], weights)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        session = ort.InferenceSession(model.SerializeToString(), harness.ort_session_options(threads),
                                       providers=["CPUExecutionProvider"])
        seconds = statistics.median(timed(lambda s=session, x=a: s.run(None, {"A": x}), 0.3, 1.0))
        peaks[name] = 2 * m * k * n / seconds / 1e9
    return peaks


def timed(run: Run, warmup_s: float, budget_s: float) -> list[float]:
    """Warm up for ``warmup_s`` (at least one call), then time calls for ``budget_s`` (at least 3)."""
    warmed, last = 0.0, 0.0
    while warmed == 0.0 or warmed < warmup_s:
        start = time.perf_counter()
        run()
        last = time.perf_counter() - start
        warmed += last
    samples = []
    for _ in range(max(3, int(budget_s / max(last, 1e-6)))):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return samples


def interleaved(runs: dict[str, Run], budget_s: float, rounds: int = 3) -> dict[str, float]:
    """Median ms of each run over ``rounds`` rounds that visit every run in turn."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            samples[name] += timed(run, 0.3, budget_s / rounds)
    return {name: statistics.median(values) * 1e3 for name, values in samples.items()}


def uniform_lengths(batch: int, max_length: int) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(f"{batch}/{max_length}/uniform".encode()))
    return rng.integers(max(1, math.ceil(0.2 * max_length)), max_length + 1, size=batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["minilm-l6", "bert-base"], default="minilm-l6")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-lengths", default="128,512")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds of timed calls per runner and workload")
    parser.add_argument("--threads", type=int, default=0, help="default: all cores")
    args = parser.parse_args()

    import os

    import torch
    from bytetx.exporter import export_to_onnx, load_hf_model
    from bytetx.exporter.int8 import quality_check, to_int8
    from bytetx.exporter.verify import make_feeds, ragged_mask
    from bytetx.graph_rewrite import rewrite_padding_free
    from transformers import AutoTokenizer, BertConfig, BertModel

    import bytetx
    from bytetx.cli import bundled_model_dir

    threads = args.threads or os.cpu_count() or 1
    workdir = Path(tempfile.mkdtemp(prefix="bytetx-int8-peers-"))
    if args.model == "minilm-l6":
        model_dir = bundled_model_dir()
    else:
        model_dir = workdir / "bert-base-random"
        torch.manual_seed(0)
        BertModel(BertConfig()).save_pretrained(model_dir)
    loaded = load_hf_model(model_dir)
    plain = export_to_onnx(loaded)
    rewritten, _ = rewrite_padding_free(plain)
    check = quality_check(plain, rewritten, loaded, bundled_model_dir())  # the bundled tokenizer fits both
    int8 = to_int8(rewritten, check, 0.99)
    onnx.save(plain, workdir / "plain.onnx")
    config = loaded.config
    tokenizer = AutoTokenizer.from_pretrained(str(bundled_model_dir()))
    from bytetx.exporter.quality import sentences

    calibration = [{k: v.astype(np.int64) for k, v in tokenizer(sentences()[i : i + 16], padding=True,
                                                               return_tensors="np").items()}
                   for i in range(0, 160, 16)]
    hidden: dict[str, Hidden] = {
        "bytetx fp32": onnx_hidden(bytetx.InferenceSession(rewritten.SerializeToString(), harness.ort_session_options(threads))),
        "bytetx int8": onnx_hidden(bytetx.InferenceSession(int8.model.SerializeToString(), harness.ort_session_options(threads))),
        "ort int8 (Optimum)": onnx_hidden(ort.InferenceSession(
            ort_int8_optimum_style(plain, harness.ModelDims.of(config), workdir),
            harness.ort_session_options(threads), providers=["CPUExecutionProvider"])),
        "openvino f32": openvino_hidden(openvino_compiled(workdir / "plain.onnx", threads, "f32")),
        "openvino default": openvino_hidden(openvino_compiled(workdir / "plain.onnx", threads, None)),
    }
    try:
        hidden["openvino int8 (NNCF)"] = openvino_hidden(openvino_compiled(workdir / "plain.onnx", threads, None,
                                                                           calibration))
    except ImportError as error:
        print(f"openvino int8 left out: {error}")
    peaks = gemm_peaks(threads)
    print(f"{args.model}; " + "; ".join(f"{name} peak {value:.0f} G(FL)OP/s" for name, value in peaks.items()))
    print("| runner | min cos | mean cos | NN unchanged |")
    print("| --- | ---: | ---: | ---: |")
    for name, run in hidden.items():
        report = check.measure(run, 0.99)
        print(f"| {name} | {report.min_cosine:.4f} | {report.mean_cosine:.4f} | {report.neighbour_agreement:.1%} |")
    for max_length in (int(v) for v in args.max_lengths.split(",")):
        lengths = uniform_lengths(args.batch, max_length)
        mask = ragged_mask(lengths, int(lengths.max()))
        feeds = make_feeds(loaded.input_names, mask, config.vocab_size, loaded.pad_token_id,
                           getattr(config, "type_vocab_size", 1))
        runs = {"bytetx fp32": padded(hidden["bytetx fp32"], feeds), "bytetx int8": padded(hidden["bytetx int8"], feeds)}
        for name, run in hidden.items():
            if not name.startswith("bytetx"):
                runs[f"{name}, padded"] = padded(run, feeds)
                runs[f"{name}, per sequence"] = per_sequence(run, feeds, lengths)
        runs["ort int8 (Optimum), sorted 4"] = length_sorted(hidden["ort int8 (Optimum)"], feeds, lengths)
        medians = interleaved(runs, args.budget)
        fastest_peer = min(v for k, v in medians.items() if not k.startswith("bytetx"))
        print(f"\nbatch {args.batch}, max length {max_length}, uniform, {int(lengths.sum())} tokens (median ms)")
        for name, ms in medians.items():
            print(f"  {name:40s} {ms:9.1f}   fastest peer / this {fastest_peer / ms:5.2f}x")


if __name__ == "__main__":
    main()
