#!/usr/bin/env python3
"""GPU benchmark: bytetx on ONNX Runtime CUDA and TensorRT against the padded and packed paths of
PyTorch, ONNX Runtime and TensorRT, in the ByteTransformer paper's setting (BERT-base, float16,
batch 1 to 16, max length 64 to 1024, lengths uniform in [0.2, 1] x max, mean about 0.6 x max).

It needs an NVIDIA GPU, onnxruntime-gpu and bytetx built with CUDA; the TensorRT rows need TensorRT
10 or newer (its Python package) and libbytetx_trt.so. Runners whose requirements are missing are
left out and the report says why. Like the CPU benchmark it measures the GEMM peak (float16 here) in
the same run, reports each model's max |diff| against float32 PyTorch on valid tokens, and writes
JSON, a markdown table and a speedup plot. It reports; it never asserts. With --models-only it writes
the ONNX model of every ONNX Runtime and TensorRT runner instead, which needs no GPU.

    python benchmarks/gpu_benchmark.py --quick

See benchmarks/README.md for what is measured and how.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import harness
import numpy as np
import onnx
import onnxruntime as ort
import torch
from rich.console import Console

if TYPE_CHECKING:
    from bytetx.graph_rewrite import AttentionSite

RESULT_STEM = "gpu_benchmark"
QUICK_TIMING = harness.TimingPolicy(warmup_s=0.3, budget_s=0.3, min_repeats=10, max_repeats=100)
FULL_TIMING = harness.TimingPolicy(warmup_s=1.0, budget_s=1.0, min_repeats=20, max_repeats=500)
TORCH_DTYPES = {"fp16": torch.float16, "fp32": torch.float32}


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

# BERT-base with 1024 positions, as in the paper's longest setting.
MODELS: dict[str, Callable[[Path], Path]] = {
    "bert-base": partial(harness.bert_base_dir, max_positions=1024),
    "minilm-l6": harness.minilm_dir,
}


# --------------------------------------------------------------------------------------------
# Runners
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GpuRunner(harness.Runner):
    needs_tensorrt: bool = False


RUNNERS: dict[str, GpuRunner] = {
    runner.name: runner
    for runner in (
        GpuRunner("torch-sdpa", "padded", "PyTorch, SDPA attention, padded batch"),
        GpuRunner("ort-fused", "padded",
                  "ONNX Runtime CUDA, optimize_model(use_gpu=True) (Attention, SkipLayerNormalization, "
                  "BiasGelu fused), padded batch"),
        GpuRunner("ort-packed", "unpadded",
                  "ONNX Runtime CUDA, ort-fused through convert_to_packing_mode (RemovePadding, "
                  "PackedAttention, RestorePadding)"),
        GpuRunner("trt-padded", "padded", "TensorRT engine of the plain export, padded batch", True),
        GpuRunner("trt-native-packed", "unpadded",
                  "TensorRT engine of bytetx's packed graph with every FusedMHA replaced by TensorRT's "
                  "IAttention on packed tokens (PACKED_NHD, query lengths = cu_seqlens)", True),
        GpuRunner("bytetx-ort-cuda", "ours", "ONNX Runtime CUDA with libbytetx_ort_cuda.so, the bytetx model"),
        GpuRunner("bytetx-trt", "ours", "TensorRT engine of bytetx's TensorRT flavour with libbytetx_trt.so",
                  True),
    )
}
# The runners whose model is ONNX (written by --models-only).
ONNX_RUNNERS = ("ort-fused", "ort-packed", "bytetx-ort-cuda", "trt-padded", "bytetx-trt", "trt-native-packed")


@dataclass
class Prepared:
    """A runner ready for one batch: ``run`` computes on the GPU and synchronizes; ``hidden`` returns
    the last ``run``'s last_hidden_state as float32 [B, S, H] on the host."""

    run: harness.Run
    hidden: Callable[[], np.ndarray]
    keep_alive: tuple[object, ...] = ()  # device buffers the run reads


def synchronized(call: Callable[[], object]) -> harness.Run:
    def run() -> object:
        result = call()
        torch.cuda.synchronize()  # device-wide: covers ONNX Runtime's and TensorRT's streams too
        return result

    return run


def torch_prepare(model: torch.nn.Module, feeds: dict[str, np.ndarray]) -> Prepared:
    tensors = {name: torch.from_numpy(value).cuda() for name, value in feeds.items()}
    last: dict[str, Any] = {}

    def call() -> None:
        with torch.inference_mode():
            last["output"] = model(**tensors).last_hidden_state

    return Prepared(synchronized(call), lambda: last["output"].float().cpu().numpy())


def ort_prepare(session: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> Prepared:
    """Inputs copied to the GPU once; outputs stay on the GPU (IOBinding), as in a server."""
    binding = session.io_binding()
    device_inputs = [ort.OrtValue.ortvalue_from_numpy(value, "cuda", 0) for value in feeds.values()]
    for name, value in zip(feeds, device_inputs, strict=True):
        binding.bind_ortvalue_input(name, value)
    output_names = [output.name for output in session.get_outputs()]
    for name in output_names:
        binding.bind_output(name, "cuda")
    hidden_index = output_names.index("last_hidden_state")

    def hidden() -> np.ndarray:
        return binding.copy_outputs_to_cpu()[hidden_index].astype(np.float32)

    return Prepared(synchronized(lambda: session.run_with_iobinding(binding)), hidden, (device_inputs,))


class TrtEngine:
    """A deserialized engine with one execution context; buffers are torch CUDA tensors."""

    def __init__(self, trt: Any, serialized: bytes, logger: Any) -> None:
        self.trt = trt
        self.runtime = trt.Runtime(logger)  # kept alive as long as its engine
        self.engine = self.runtime.deserialize_cuda_engine(serialized)
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]

    def prepare(self, feeds: dict[str, np.ndarray]) -> Prepared:
        trt, context = self.trt, self.context
        buffers = {}
        for name in self.inputs:
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            buffers[name] = torch.from_numpy(feeds[name].astype(dtype)).cuda()
            context.set_input_shape(name, tuple(feeds[name].shape))
        for name in self.outputs:
            shape = tuple(context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise RuntimeError(f"TensorRT output {name} has a data-dependent shape {shape}")
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            buffers[name] = torch.empty(shape, dtype=torch.from_numpy(np.empty(0, dtype)).dtype, device="cuda")
        for name, tensor in buffers.items():
            context.set_tensor_address(name, tensor.data_ptr())
        stream = torch.cuda.current_stream().cuda_stream

        def call() -> None:
            if not context.execute_async_v3(stream):
                raise RuntimeError("TensorRT execute_async_v3 failed")

        return Prepared(synchronized(call), lambda: buffers["last_hidden_state"].float().cpu().numpy(), (buffers,))


# --------------------------------------------------------------------------------------------
# Building the models
# --------------------------------------------------------------------------------------------

@dataclass
class Requirements:
    """What this machine has, and why runners are left out."""

    missing: dict[str, str] = field(default_factory=dict)  # runner -> reason

    @staticmethod
    def check(runners: Sequence[str], trt_library: Path) -> tuple[Requirements, Any]:
        """The reasons runners cannot run here, and the tensorrt module (None without it)."""
        import bytetx

        missing: dict[str, str] = {}
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            for name in ("ort-fused", "ort-packed", "bytetx-ort-cuda"):
                missing[name] = "onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)"
        try:
            bytetx.ort_cuda_library_path()
        except bytetx.LibraryNotFoundError as error:
            missing.setdefault("bytetx-ort-cuda", str(error))
        trt = None
        try:
            import tensorrt as trt
        except ImportError:
            reason = "the tensorrt Python package is missing"
            missing.update({n: reason for n in runners if RUNNERS[n].needs_tensorrt})
        if trt is not None:
            if not trt_library.is_file():
                reason = f"{trt_library} is missing (build bytetx with TENSORRT_ROOT, or set BYTETX_TRT_LIBRARY)"
                missing.setdefault("bytetx-trt", reason)
                missing.setdefault("trt-native-packed", reason)
            if not hasattr(trt, "AttentionIOForm"):
                missing.setdefault("trt-native-packed",
                                   f"TensorRT {trt.__version__} has no packed IAttention (AttentionIOForm)")
        return Requirements({n: r for n, r in missing.items() if n in runners}), trt


@dataclass
class ModelUnderTest:
    name: str
    dims: harness.ModelDims
    inputs: harness.ModelInputs
    max_positions: int
    reference: torch.nn.Module  # float32 PyTorch on the GPU: what every runner is compared with
    prepare: dict[str, Callable[[dict[str, np.ndarray]], Prepared]]
    notes: dict[str, Any]


@dataclass(frozen=True)
class BuildSettings:
    precision: str
    max_batch: int
    max_length: int
    trt: Any
    trt_library: Path


def cuda_session(model: bytes, with_bytetx: bool = False) -> ort.InferenceSession:
    import bytetx

    options = ort.SessionOptions()
    options.log_severity_level = 3
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if with_bytetx:
        return bytetx.InferenceSession(model, options, providers=providers)
    return ort.InferenceSession(model, options, providers=providers)


def ort_fused_models(plain: onnx.ModelProto, dims: harness.ModelDims, precision: str, workdir: Path
                     ) -> tuple[bytes, bytes, dict[str, int]]:
    """ONNX Runtime's fused model for the GPU and its packing-mode conversion (both in ``precision``),
    and the fused op counts of each."""
    from onnxruntime.transformers.convert_to_packing_mode import PackingMode
    from onnxruntime.transformers.onnx_model import OnnxModel
    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    path = workdir / "plain.onnx"
    onnx.save(plain, path)
    fused = optimize_model(str(path), model_type="bert", num_heads=dims.heads, hidden_size=dims.hidden,
                           use_gpu=True)
    if precision == "fp16":
        fused.convert_float_to_float16(keep_io_types=True)
    fused_bytes = fused.model.SerializeToString()
    packed = OnnxModel(onnx.load_from_string(fused_bytes))
    PackingMode(packed).convert()
    counts = {
        op: sum(1 for node in model.graph.node if node.op_type == op)
        for model in (fused.model, packed.model)
        for op in ("Attention", "MultiHeadAttention", "PackedAttention", "PackedMultiHeadAttention",
                   "RemovePadding", "RestorePadding", "SkipLayerNormalization", "BiasGelu")
    }
    return fused_bytes, packed.model.SerializeToString(), {op: n for op, n in counts.items() if n}


def trt_logger(trt: Any) -> Any:
    return trt.Logger(trt.Logger.ERROR)


def trt_engine(model: onnx.ModelProto, settings: BuildSettings,
               edit_network: Callable[[Any], None] | None = None) -> TrtEngine:
    """The engine of ``model`` (bytetx's plugins loaded) for batch 1..max_batch and length 1..max_length,
    tuned for the largest, TF32 off."""
    from bytetx.exporter.tensorrt import ShapeProfile

    from bytetx.tensorrt import build_engine

    largest = (settings.max_batch, settings.max_length)
    logger = trt_logger(settings.trt)
    serialized = build_engine(model, settings.trt_library, ShapeProfile((1, 1), largest, largest),
                              logger=logger, edit_network=edit_network)
    return TrtEngine(settings.trt, serialized, logger)


def native_packed_attention(sites: Sequence[AttentionSite]) -> Callable[[Any], None]:
    """A network edit: each site's placeholder (bytetx.graph_rewrite.without_fused_mha) is replaced by
    TensorRT's own attention on the packed QKV: [T, 3H] viewed as [3, T, heads, d], Q scaled,
    IAttention with query and key-value form PACKED_NHD and lengths cu_seqlens, then back to [T, H]."""

    def edit(network: Any) -> None:
        import tensorrt as trt

        tensors = {network.get_layer(i).get_output(j).name: network.get_layer(i).get_output(j)
                   for i in range(network.num_layers) for j in range(network.get_layer(i).num_outputs)}
        for site in sites:
            qkv, cu_seqlens = tensors[site.qkv], tensors[site.cu_seqlens]
            heads = site.heads
            hidden = qkv.shape[1] // 3
            head_size = hidden // heads
            split = network.add_shuffle(qkv)
            split.reshape_dims = (0, 3, heads, head_size)
            split.second_transpose = (1, 0, 2, 3)
            query, key, value = (
                network.add_gather(split.get_output(0),
                                   network.add_constant((), np.array(index, dtype=np.int32)).get_output(0),
                                   0).get_output(0)
                for index in range(3)
            )
            scale_value = np.full((1, 1, 1), site.scale, dtype=np.float16 if qkv.dtype == trt.float16 else np.float32)
            scaled = network.add_elementwise(query, network.add_constant((1, 1, 1), scale_value).get_output(0),
                                             trt.ElementWiseOperation.PROD)
            # add_attention accepts the 3-D packed form; add_attention_v2 documents 4-D inputs only.
            attention = network.add_attention(scaled.get_output(0), key, value,
                                              trt.AttentionNormalizationOp.SOFTMAX, False)
            attention.query_form = trt.AttentionIOForm.PACKED_NHD
            attention.key_value_form = trt.AttentionIOForm.PACKED_NHD
            attention.query_lengths = cu_seqlens
            attention.key_value_lengths = cu_seqlens
            merge = network.add_shuffle(attention.get_output(0))
            merge.reshape_dims = (0, hidden)
            replace_uses(network, tensors[site.context], merge.get_output(0))

    return edit


def replace_uses(network: Any, old: Any, new: Any) -> None:
    """Every layer input that reads ``old`` reads ``new`` instead."""
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_inputs):
            if layer.get_input(j) is not None and layer.get_input(j).name == old.name:
                layer.set_input(j, new)


def onnx_models(
    name: str, loaded: Any, runners: Sequence[str], precision: str, workdir: Path, report: Callable[[str], None]
) -> tuple[dict[str, onnx.ModelProto], list[AttentionSite], dict[str, int]]:
    """The ONNX model of each ONNX Runtime and TensorRT runner among ``runners`` in ``precision`` (for
    model ``name``, ``loaded``), the attention sites of trt-native-packed's model, and ONNX Runtime's
    fused op counts."""
    from bytetx.exporter import export_to_onnx, to_float16
    from bytetx.graph_rewrite import rewrite_padding_free, to_tensorrt, without_fused_mha

    wanted = set(runners)
    plain = export_to_onnx(loaded)
    rewritten, _ = rewrite_padding_free(plain)
    in_precision = to_float16 if precision == "fp16" else (lambda model: model)
    models: dict[str, onnx.ModelProto] = {}
    sites: list[AttentionSite] = []
    fused_ops: dict[str, int] = {}
    if {"ort-fused", "ort-packed"} & wanted:
        report(f"{name}: onnxruntime.transformers optimize_model and convert_to_packing_mode")
        dims = harness.ModelDims.of(loaded.config)
        fused, packed, fused_ops = ort_fused_models(plain, dims, precision, workdir)
        models["ort-fused"] = onnx.load_from_string(fused)
        models["ort-packed"] = onnx.load_from_string(packed)
    if {"bytetx-ort-cuda", "bytetx-trt", "trt-native-packed"} & wanted:
        models["bytetx-ort-cuda"] = in_precision(rewritten)
    if "trt-padded" in wanted:
        models["trt-padded"] = in_precision(plain)
    if {"bytetx-trt", "trt-native-packed"} & wanted:
        models["bytetx-trt"], _ = to_tensorrt(models["bytetx-ort-cuda"])
    if "trt-native-packed" in wanted:
        models["trt-native-packed"], sites = without_fused_mha(models["bytetx-trt"])
    return {name: model for name, model in models.items() if name in wanted}, sites, fused_ops


def prepare_model(name: str, runners: Sequence[str], settings: BuildSettings, workdir: Path,
                  report: Callable[[str], None]) -> ModelUnderTest:
    """Export and rewrite the model once; build what each runner needs."""
    from bytetx.exporter import load_hf_model

    report(f"{name}: loading and exporting")
    model_dir = MODELS[name](workdir)
    loaded = load_hf_model(model_dir, "eager")
    config: Any = loaded.config
    dims = harness.ModelDims.of(config)
    models, sites, fused_ops = onnx_models(name, loaded, runners, settings.precision, workdir, report)
    prepare: dict[str, Callable[[dict[str, np.ndarray]], Prepared]] = {}
    notes: dict[str, Any] = {**asdict(dims)}
    if fused_ops:
        notes["ort_fused_ops"] = fused_ops

    if "torch-sdpa" in runners:
        sdpa = load_hf_model(model_dir, "sdpa").model
        sdpa = sdpa.to("cuda", dtype=TORCH_DTYPES[settings.precision]).eval()
        prepare["torch-sdpa"] = lambda feeds: torch_prepare(sdpa, feeds)
    for runner in ("ort-fused", "ort-packed", "bytetx-ort-cuda"):
        if runner in models:
            with_bytetx = runner == "bytetx-ort-cuda"
            session = cuda_session(models[runner].SerializeToString(), with_bytetx=with_bytetx)
            prepare[runner] = lambda feeds, s=session: ort_prepare(s, feeds)
    for runner, what in (("trt-padded", "padded"), ("bytetx-trt", "bytetx"),
                         ("trt-native-packed", "native packed attention")):
        if runner in models:
            report(f"{name}: building the {what} TensorRT engine")
            edit = native_packed_attention(sites) if runner == "trt-native-packed" else None
            prepare[runner] = trt_engine(models[runner], settings, edit).prepare

    reference = loaded.model.to("cuda", dtype=torch.float32).eval()
    return ModelUnderTest(name, dims, harness.ModelInputs.of(loaded), config.max_position_embeddings,
                          reference, prepare, notes)


def write_models(names_: Sequence[str], runners: Sequence[str], precision: str, output_dir: Path,
                 console: Console) -> None:
    """--models-only: each model's ONNX model per runner as ``<model>.<runner>.<precision>.onnx``."""
    from bytetx.exporter import load_hf_model, save_onnx_atomic

    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names_:
            loaded = load_hf_model(MODELS[name](Path(tmp)), "eager")
            models, _, _ = onnx_models(name, loaded, runners, precision, Path(tmp), console.print)
            for runner, model in models.items():
                path = output_dir / f"{name}.{runner}.{precision}.onnx"
                save_onnx_atomic(model, path)
                console.print(f"wrote {path}")


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------

def measure_gemm_peak(precision: str, policy: harness.TimingPolicy) -> list[dict[str, Any]]:
    """torch.matmul [T, H] x [H, 4H] in ``precision`` for H 768, 1024 and T 4096..32768: GFLOP/s."""
    torch.backends.cuda.matmul.allow_tf32 = False
    dtype = TORCH_DTYPES[precision]

    def matmul_run(m: int, k: int, n: int) -> harness.Run:
        a = torch.randn(m, k, device="cuda", dtype=dtype)
        b = torch.randn(k, n, device="cuda", dtype=dtype)
        return synchronized(lambda: torch.matmul(a, b))

    shapes = [(tokens, hidden, 4 * hidden) for hidden in (768, 1024) for tokens in (4096, 8192, 16384, 32768)]
    return harness.gemm_peak(shapes, matmul_run, policy)


@dataclass
class WorkloadResult(harness.WorkloadResult):
    max_abs_diff: dict[str, float]  # vs float32 PyTorch, valid tokens of last_hidden_state
    failures: dict[str, str]

    def record(self, peak_gflops: float) -> dict[str, Any]:
        ours = [name for name in self.timings if RUNNERS[name].kind == "ours"]
        speedups = {
            mine: {name: t.median_ms / self.timings[mine].median_ms
                   for name, t in self.timings.items() if RUNNERS[name].kind != "ours"}
            for mine in ours
        }
        return {
            **super().record(peak_gflops),
            "speedup": speedups,
            "best_padded": {mine: harness.best_of(s, RUNNERS, "padded") for mine, s in speedups.items()},
            "best_unpadded": {mine: harness.best_of(s, RUNNERS, "unpadded") for mine, s in speedups.items()},
            "max_abs_diff_vs_torch_fp32": self.max_abs_diff,
            "failures": self.failures,
        }


def valid_max_diff(ours: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    valid = mask.astype(bool)
    return float(np.abs(ours[valid] - reference[valid]).max())


def run_workload(workload: harness.Workload, model: ModelUnderTest, runners: Sequence[str],
                 policy: harness.TimingPolicy, on_measured: Callable[[str], None]) -> WorkloadResult:
    batch = model.inputs.batch(workload.lengths())
    reference = torch_prepare(model.reference, batch.feeds)
    reference.run()
    expected = reference.hidden()
    timings, diffs, failures = {}, {}, {}
    for name in runners:
        try:
            prepared = model.prepare[name](batch.feeds)
            prepared.run()
            diffs[name] = valid_max_diff(prepared.hidden(), expected, batch.mask)
            timings[name] = harness.measure(prepared.run, policy)
        except Exception as error:  # noqa: BLE001 - one runner's failure (e.g. out of memory) must not end the run
            failures[name] = f"{type(error).__name__}: {error}"
        on_measured(name)
    return WorkloadResult(workload, [int(n) for n in batch.lengths], batch.padded_length,
                          harness.encoder_flops(batch.lengths, model.dims) / 1e9, timings, diffs, failures)


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------

def gpu_environment(precision: str) -> dict[str, Any]:
    properties = torch.cuda.get_device_properties(0)
    extra = {"gpu": properties.name, "gpu_memory_gib": properties.total_memory / 2**30,
             "compute_capability": f"{properties.major}.{properties.minor}", "precision": precision,
             "cuda": torch.version.cuda}
    try:
        import tensorrt

        extra["tensorrt"] = tensorrt.__version__
    except ImportError:
        pass
    return harness.environment(**extra)


def markdown_report(report: dict[str, Any]) -> str:
    env, peak = report["environment"], report["gemm_peak"]
    runners = list(report["settings"]["runners"])
    ours = [name for name in runners if RUNNERS[name].kind == "ours"]
    lines = [
        "# bytetx GPU benchmark", "",
        (f"{env['gpu']} (sm {env['compute_capability']}), {env['precision']}; torch {env['torch']}, "
        f"onnxruntime {env['onnxruntime']}, TensorRT {env.get('tensorrt', '-')}; {env['date']}."),
        (f"{env['precision']} GEMM peak (torch.matmul, best of {len(peak['shapes'])} shapes): "
        f"**{peak['peak_gflops'] / 1e3:.1f} TFLOP/s**."), "",
    ]
    for name, reason in report["left_out"].items():
        lines.append(f"- left out `{name}`: {reason}")
    lines += ["", "## Median latency (ms)", "",
              "| model | batch | max len | mean len | real / padded tokens | " + " | ".join(runners) + " |",
              "|" + " --- |" * 5 + " ---: |" * len(runners)]
    for r in report["results"]:
        cells = [f"{r['latency_ms'][n]['median_ms']:.2f}" if n in r["latency_ms"] else "failed" for n in runners]
        lines.append(f"| {r['model']} | {r['batch']} | {r['max_length']} | {r['mean_length']:.0f} | "
                     f"{r['real_tokens']} / {r['padded_tokens']} | " + " | ".join(cells) + " |")
    lines += ["", "## bytetx: speedup (baseline latency / ours), % of GEMM peak, max |diff| vs float32 PyTorch",
              "", "| model | batch | max len | runner | % of peak | vs best padded | vs best unpadded | max abs diff |",
              "|" + " --- |" * 4 + " ---: |" * 4]
    for r in report["results"]:
        for mine in ours:
            if mine not in r["latency_ms"]:
                continue
            padded, unpadded = r["best_padded"][mine], r["best_unpadded"][mine]
            lines.append(
                f"| {r['model']} | {r['batch']} | {r['max_length']} | {mine} | "
                f"{100 * r['fraction_of_peak'][mine]:.0f}% | {harness.format_speedup(padded)} | "
                f"{harness.format_speedup(unpadded)} | "
                f"{r['max_abs_diff_vs_torch_fp32'][mine]:.2e} |")
    failures = [(r, name, text) for r in report["results"] for name, text in r["failures"].items()]
    if failures:
        lines += ["", "## Failures", ""]
        lines += [f"- {r['model']} b{r['batch']} L{r['max_length']} `{name}`: {text}" for r, name, text in failures]
    return "\n".join(lines) + "\n"


def plot_speedups(report: dict[str, Any], path: Path) -> None:
    """Speedup of each bytetx runner against the best padded and best unpadded baseline vs max length,
    one panel per (model, batch)."""
    harness.plot_panels(report["results"], path, "speedup (x)", plot_panel)


def plot_panel(axis: Any, records: list[dict[str, Any]]) -> None:
    """One (model, batch) panel: solid lines for bytetx on ONNX Runtime CUDA, dashed for TensorRT."""
    for mine, style in (("bytetx-ort-cuda", "-"), ("bytetx-trt", "--")):
        for key, color in (("best_padded", "tab:blue"), ("best_unpadded", "tab:orange")):
            points = [(r["max_length"], r[key][mine]["speedup"]) for r in records if r[key].get(mine)]
            if points:
                xs, ys = zip(*points, strict=True)
                axis.plot(xs, ys, style, color=color, marker="o", label=f"{mine} vs {key.replace('_', ' ')}")


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = harness.benchmark_parser(__doc__, "bert-base, batch 16, max length 128 and 512, shorter timing")
    harness.add_workload_options(parser, list(MODELS), default_models="bert-base", default_batches="1,4,8,16",
                                 default_max_lengths="64,128,256,512,1024",
                                 default_distributions="uniform, the paper's")
    parser.add_argument("--runners", type=harness.names(list(RUNNERS)),
                        help=f"comma-separated (default all: {', '.join(RUNNERS)})")
    parser.add_argument("--precision", choices=list(TORCH_DTYPES), default="fp16",
                        help="of every runner (default fp16, the paper's)")
    parser.add_argument("--models-only", action="store_true",
                        help="write the ONNX model of every chosen ONNX Runtime and TensorRT runner to "
                             "--output-dir (<model>.<runner>.<precision>.onnx) and stop; needs no GPU")
    harness.add_timing_options(parser, FULL_TIMING, QUICK_TIMING)
    return parser


def resolve(args: argparse.Namespace) -> tuple[list[harness.Workload], list[str], harness.TimingPolicy]:
    if args.quick:
        defaults = (["bert-base"], [16], [128, 512])
    else:
        defaults = (["bert-base"], [1, 4, 8, 16], [64, 128, 256, 512, 1024])
    workloads = harness.workload_grid(args.models or defaults[0], args.batches or defaults[1],
                              args.max_lengths or defaults[2], args.distributions or ["uniform"])
    return workloads, args.runners or list(RUNNERS), harness.timing_policy(args, FULL_TIMING, QUICK_TIMING)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=True)
    harness.quiet_transformers()
    workloads, runners, policy = resolve(args)
    if args.models_only:
        write_models(list(dict.fromkeys(w.model for w in workloads)),
                     [name for name in runners if name in ONNX_RUNNERS], args.precision, args.output_dir,
                     console)
        return 0
    if not torch.cuda.is_available():
        console.print("[bold red]error:[/] no CUDA device: the GPU benchmark needs an NVIDIA GPU and a CUDA "
                      "build of torch (benchmarks/cpu_benchmark.py measures the CPU path)", highlight=False)
        return 1
    if not harness.have_matplotlib(console):
        return 1
    from bytetx.exporter.tensorrt import plugin_library_path

    requirements, trt = Requirements.check(runners, plugin_library_path())
    for name, reason in requirements.missing.items():
        console.print(f"left out {name}: {reason}", highlight=False)
    runners = [name for name in runners if name not in requirements.missing]
    if not any(RUNNERS[name].kind == "ours" for name in runners):
        console.print("[bold red]error:[/] no bytetx runner can run here (see above)", highlight=False)
        return 1
    settings = BuildSettings(args.precision, max(w.batch for w in workloads),
                             max(w.max_length for w in workloads), trt, plugin_library_path())
    report = run_benchmark(workloads, runners, policy, settings, console)
    report["left_out"] = requirements.missing
    report["settings"] = {"quick": args.quick, "timing": asdict(policy), "precision": args.precision,
                          "runners": {name: asdict(RUNNERS[name]) for name in runners},
                          "inputs": "on the GPU before timing; outputs left on the GPU; every call synchronized"}
    harness.write_reports(report, args.output_dir, RESULT_STEM, markdown_report(report), plot_speedups, console)
    return 0


def run_benchmark(workloads: Sequence[harness.Workload], runners: Sequence[str], policy: harness.TimingPolicy,
                  settings: BuildSettings, console: Console) -> dict[str, Any]:
    started = time.perf_counter()
    with harness.progress_bar(console) as progress, tempfile.TemporaryDirectory() as tmp:
        task = progress.add_task("GEMM peak", total=len(workloads) * len(runners))
        shapes = measure_gemm_peak(settings.precision, policy)
        peak = max(row["gflops"] for row in shapes)
        console.print(f"{settings.precision} GEMM peak {peak / 1e3:.1f} TFLOP/s", highlight=False)
        results, models, skipped = [], {}, []
        for name in dict.fromkeys(w.model for w in workloads):
            model = prepare_model(name, runners, settings, Path(tmp),
                                  lambda text: progress.update(task, description=text))
            models[name] = model.notes
            for workload in (w for w in workloads if w.model == name):
                if workload.max_length > model.max_positions:
                    skipped.append({**asdict(workload), "reason": f"{name} has {model.max_positions} positions"})
                    progress.advance(task, len(runners))
                    continue
                label = f"{name} b{workload.batch} L{workload.max_length} {workload.distribution}"
                result = run_workload(workload, model, runners, policy,
                                      lambda runner, label=label: progress.update(
                                          task, advance=1, description=f"{label}: {runner} done"))
                latencies = ", ".join(f"{n} {t.median_ms:.2f}" for n, t in result.timings.items())
                progress.console.print(f"{label}: median ms {latencies}", highlight=False)
                results.append(result)
            del model
            torch.cuda.empty_cache()
    console.print(f"done in {harness.format_duration(time.perf_counter() - started)}", highlight=False)
    return {
        "environment": gpu_environment(settings.precision),
        "gemm_peak": {"peak_gflops": peak, "shapes": shapes},
        "models": models,
        "flops_formula": harness.FLOPS_FORMULA,
        "results": [result.record(peak) for result in results],
        "skipped_workloads": skipped,
    }


if __name__ == "__main__":
    sys.exit(main())
