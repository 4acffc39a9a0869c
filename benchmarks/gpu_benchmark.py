#!/usr/bin/env python3
"""GPU benchmark: bytetx on ONNX Runtime CUDA and TensorRT against the padded and packed paths of
PyTorch, ONNX Runtime and TensorRT, in the ByteTransformer paper's setting (BERT-base, float16,
batch 1 to 16, max length 64 to 1024, lengths uniform in [0.2, 1] x max, mean about 0.6 x max).

It needs an NVIDIA GPU, onnxruntime-gpu and bytetx built with CUDA; the TensorRT rows need TensorRT
10 or newer (its Python package) and libbytetx_trt.so. Runners whose requirements are missing are
left out and the report says why. Like the CPU benchmark it measures the GEMM peak (float16 here) in
the same run, reports each model's max |diff| against float32 PyTorch on valid tokens, and writes
JSON, a markdown table and a speedup plot. It reports; it never asserts.

    python benchmarks/gpu_benchmark.py --quick

See benchmarks/README.md for what is measured and how.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import logging
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

# Workloads, FLOP count, timing and the model sources are the CPU benchmark's, so that both measure
# the same batches the same way.
from cpu_benchmark import (
    DISTRIBUTIONS,
    Batch,
    Kind,
    ModelDims,
    Timing,
    TimingPolicy,
    Workload,
    encoder_flops,
    format_duration,
    have_matplotlib,
    integers,
    measure,
    minilm_dir,
    names,
    workload_record,
    write_report_files,
)

DEFAULT_OUTPUT_DIR = Path(__file__).resolve().parent / "results"
RESULT_STEM = "gpu_benchmark"
QUICK_TIMING = TimingPolicy(warmup_s=0.3, budget_s=0.3, min_repeats=10, max_repeats=100)
FULL_TIMING = TimingPolicy(warmup_s=1.0, budget_s=1.0, min_repeats=20, max_repeats=500)
TORCH_DTYPES = {"fp16": torch.float16, "fp32": torch.float32}

Run = Callable[[], object]


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

def bert_base_dir(workdir: Path) -> Path:
    """BERT-base (12 layers, H 768, 12 heads, I 3072) with random weights (seed 0) and 1024 positions,
    as in the paper's longest setting; speed does not depend on the weights' values."""
    from transformers import BertConfig, BertModel

    directory = workdir / "bert-base-1024-random"
    torch.manual_seed(0)
    BertModel(BertConfig(max_position_embeddings=1024)).save_pretrained(directory)
    return directory


MODELS: dict[str, Callable[[Path], Path]] = {"bert-base": bert_base_dir, "minilm-l6": minilm_dir}


# --------------------------------------------------------------------------------------------
# Runners
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Runner:
    name: str
    kind: Kind
    description: str
    needs_tensorrt: bool = False


RUNNERS: dict[str, Runner] = {
    runner.name: runner
    for runner in (
        Runner("torch-sdpa", "padded", "PyTorch, SDPA attention, padded batch"),
        Runner("ort-fused", "padded",
               "ONNX Runtime CUDA, optimize_model(use_gpu=True) (Attention, SkipLayerNormalization, BiasGelu "
               "fused), padded batch"),
        Runner("ort-packed", "unpadded",
               "ONNX Runtime CUDA, ort-fused through convert_to_packing_mode (RemovePadding, PackedAttention, "
               "RestorePadding)"),
        Runner("trt-padded", "padded", "TensorRT engine of the plain export, padded batch", True),
        Runner("trt-native-packed", "unpadded",
               "TensorRT engine of bytetx's packed graph with every FusedMHA replaced by TensorRT's IAttention "
               "on packed tokens (PACKED_NHD, query lengths = cu_seqlens)", True),
        Runner("bytetx-ort-cuda", "ours", "ONNX Runtime CUDA with libbytetx_ort_cuda.so, the bytetx model"),
        Runner("bytetx-trt", "ours", "TensorRT engine of bytetx's TensorRT flavour with libbytetx_trt.so", True),
    )
}


@dataclass
class Prepared:
    """A runner ready for one batch: ``run`` computes on the GPU and synchronizes; ``hidden`` returns
    the last ``run``'s last_hidden_state as float32 [B, S, H] on the host."""

    run: Run
    hidden: Callable[[], np.ndarray]
    keep_alive: tuple[object, ...] = ()  # device buffers the run reads


def synchronized(call: Callable[[], object]) -> Run:
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
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
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
    dims: ModelDims
    input_names: tuple[str, ...]
    vocab_size: int
    pad_token_id: int
    type_vocab_size: int
    max_positions: int
    reference: torch.nn.Module  # float32 PyTorch on the GPU: what every runner is compared with
    prepare: dict[str, Callable[[dict[str, np.ndarray]], Prepared]]
    notes: dict[str, Any]

    def batch(self, lengths: np.ndarray) -> Batch:
        from bytetx.exporter.verify import make_feeds, ragged_mask

        mask = ragged_mask(lengths, int(lengths.max()))
        feeds = make_feeds(self.input_names, mask, self.vocab_size, self.pad_token_id, self.type_vocab_size)
        return Batch(lengths, mask, feeds)


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


def ort_fused_models(plain: onnx.ModelProto, dims: ModelDims, precision: str, workdir: Path
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


def build_trt_engine(model: onnx.ModelProto, settings: BuildSettings, input_names: Sequence[str],
                     edit_network: Callable[[Any], None] | None = None) -> TrtEngine:
    """Parse ``model`` with TensorRT's ONNX parser (bytetx's plugins loaded), optionally edit the
    network, and build an engine for batch 1..max_batch and length 1..max_length."""
    trt = settings.trt
    logger = trt_logger(trt)
    builder = trt.Builder(logger)
    builder.get_plugin_registry().load_library(str(settings.trt_library))
    flags = 0
    if int(trt.__version__.split(".")[0]) == 10:  # TensorRT 11 networks are always strongly typed
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model.SerializeToString()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT's ONNX parser failed: {errors}")
    if edit_network is not None:
        edit_network(network)
    config = builder.create_builder_config()
    config.clear_flag(trt.BuilderFlag.TF32)  # float32 runs compute in float32, as on the other back ends
    profile = builder.create_optimization_profile()
    for name in input_names:
        profile.set_shape(name, (1, 1), (settings.max_batch, settings.max_length),
                          (settings.max_batch, settings.max_length))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT could not build the engine")
    return TrtEngine(trt, bytes(serialized), logger)


@dataclass(frozen=True)
class AttentionSite:
    """Where a FusedMHA was, by tensor name: its biased packed QKV [T, 3H], cu_seqlens, and the
    placeholder standing in for its context output [T, H]."""

    qkv: str
    cu_seqlens: str
    context: str
    heads: int
    scale: float


def without_fused_mha(flavour: onnx.ModelProto) -> tuple[onnx.ModelProto, list[AttentionSite]]:
    """The TensorRT flavour with each FusedMHA replaced by ``Add(qkv, qkv_bias)`` and a placeholder
    ``Slice`` of the first H columns under the context's name, for :func:`native_packed_attention` to
    replace in the network (the unused placeholder is then dead and removed by the builder)."""
    model = onnx.ModelProto()
    model.CopyFrom(flavour)
    graph = model.graph
    sites, nodes = [], []
    for node in graph.node:
        if node.op_type != "FusedMHA":
            nodes.append(node)
            continue
        qkv, bias, cu_seqlens = node.input[:3]
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        biased = f"{node.name}/native/qkv_biased"
        bounds = [f"{node.name}/native/{what}" for what in ("starts", "ends", "axes")]
        bias_values = [i for i in graph.initializer if i.name == bias]
        if not bias_values:
            raise RuntimeError(f"{node.name}: qkv_bias is not an initializer; cannot size the attention")
        width = onnx.numpy_helper.to_array(bias_values[0]).shape[0] // 3
        for name, value in zip(bounds, (0, width, 1), strict=True):
            graph.initializer.append(onnx.numpy_helper.from_array(np.array([value], dtype=np.int64), name))
        nodes.append(onnx.helper.make_node("Add", [qkv, bias], [biased], name=f"{node.name}/native/bias"))
        nodes.append(onnx.helper.make_node("Slice", [biased, *bounds], [node.output[0]],
                                           name=f"{node.name}/native/placeholder"))
        head_size = width // attributes["num_heads"]
        sites.append(AttentionSite(biased, cu_seqlens, node.output[0], attributes["num_heads"],
                                   attributes.get("scale", head_size ** -0.5)))
    del graph.node[:]
    graph.node.extend(nodes)
    return model, sites


def native_packed_attention(sites: Sequence[AttentionSite]) -> Callable[[Any], None]:
    """A network edit: each site's placeholder is replaced by TensorRT's own attention on the packed
    QKV: [T, 3H] viewed as [3, T, heads, d], Q scaled, IAttention with query and key-value form
    PACKED_NHD and lengths cu_seqlens, then back to [T, H]."""

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


def prepare_model(name: str, runners: Sequence[str], settings: BuildSettings, workdir: Path,
                  report: Callable[[str], None]) -> ModelUnderTest:
    """Export and rewrite the model once; build what each runner needs."""
    from bytetx.exporter import export_to_onnx, load_hf_model, to_float16
    from bytetx.exporter.tensorrt import profile_inputs, to_tensorrt
    from bytetx.graph_rewrite import rewrite_padding_free

    report(f"{name}: loading and exporting")
    model_dir = MODELS[name](workdir)
    loaded = load_hf_model(model_dir, "eager")
    config: Any = loaded.config
    dims = ModelDims.of(config)
    plain = export_to_onnx(loaded)
    rewritten, _ = rewrite_padding_free(plain)
    in_precision = to_float16 if settings.precision == "fp16" else (lambda model: model)
    dtype = TORCH_DTYPES[settings.precision]
    prepare: dict[str, Callable[[dict[str, np.ndarray]], Prepared]] = {}
    notes: dict[str, Any] = {**asdict(dims)}

    if "torch-sdpa" in runners:
        sdpa = load_hf_model(model_dir, "sdpa").model.to("cuda", dtype=dtype).eval()
        prepare["torch-sdpa"] = lambda feeds: torch_prepare(sdpa, feeds)
    if {"ort-fused", "ort-packed"} & set(runners):
        report(f"{name}: onnxruntime.transformers optimize_model and convert_to_packing_mode")
        fused, packed, notes["ort_fused_ops"] = ort_fused_models(plain, dims, settings.precision, workdir)
        sessions = {"ort-fused": fused, "ort-packed": packed}
        for runner in ("ort-fused", "ort-packed"):
            if runner in runners:
                session = cuda_session(sessions[runner])
                prepare[runner] = lambda feeds, s=session: ort_prepare(s, feeds)
    if "bytetx-ort-cuda" in runners:
        session = cuda_session(in_precision(rewritten).SerializeToString(), with_bytetx=True)
        prepare["bytetx-ort-cuda"] = lambda feeds: ort_prepare(session, feeds)

    inputs = profile_inputs(plain)
    engines = {}
    if "trt-padded" in runners:
        report(f"{name}: building the padded TensorRT engine")
        engines["trt-padded"] = build_trt_engine(in_precision(plain), settings, inputs)
    flavour = to_tensorrt(in_precision(rewritten)) if {"bytetx-trt", "trt-native-packed"} & set(runners) else None
    if "bytetx-trt" in runners:
        report(f"{name}: building the bytetx TensorRT engine")
        engines["bytetx-trt"] = build_trt_engine(flavour, settings, inputs)
    if "trt-native-packed" in runners:
        report(f"{name}: building the TensorRT engine with native packed attention")
        placeholder_model, sites = without_fused_mha(flavour)
        engines["trt-native-packed"] = build_trt_engine(placeholder_model, settings, inputs,
                                                        native_packed_attention(sites))
    for runner, engine in engines.items():
        prepare[runner] = engine.prepare

    reference = loaded.model.to("cuda", dtype=torch.float32).eval()
    return ModelUnderTest(name, dims, loaded.input_names, config.vocab_size, loaded.pad_token_id,
                          getattr(config, "type_vocab_size", 1), config.max_position_embeddings, reference,
                          prepare, notes)


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------

def gemm_peak(precision: str, policy: TimingPolicy) -> list[dict[str, Any]]:
    """torch.matmul [T, H] x [H, 4H] in ``precision`` for H 768, 1024 and T 4096..32768: GFLOP/s."""
    torch.backends.cuda.matmul.allow_tf32 = False
    dtype = TORCH_DTYPES[precision]
    rows = []
    for hidden in (768, 1024):
        for tokens in (4096, 8192, 16384, 32768):
            a = torch.randn(tokens, hidden, device="cuda", dtype=dtype)
            b = torch.randn(hidden, 4 * hidden, device="cuda", dtype=dtype)
            timing = measure(synchronized(lambda a=a, b=b: torch.matmul(a, b)), policy)
            rows.append({"m": tokens, "k": hidden, "n": 4 * hidden, "median_ms": timing.median_ms,
                         "gflops": 2 * tokens * hidden * 4 * hidden / (timing.median_ms / 1e3) / 1e9})
    return rows


@dataclass
class WorkloadResult:
    workload: Workload
    lengths: list[int]
    padded_length: int
    useful_gflop: float
    timings: dict[str, Timing]
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
            **workload_record(self.workload, self.lengths, self.padded_length, self.useful_gflop,
                              self.timings, peak_gflops),
            "speedup": speedups,
            "best_padded": {mine: best_of(s, "padded") for mine, s in speedups.items()},
            "best_unpadded": {mine: best_of(s, "unpadded") for mine, s in speedups.items()},
            "max_abs_diff_vs_torch_fp32": self.max_abs_diff,
            "failures": self.failures,
        }


def best_of(speedups: dict[str, float], kind: Kind) -> dict[str, Any] | None:
    candidates = {name: s for name, s in speedups.items() if RUNNERS[name].kind == kind}
    if not candidates:
        return None
    name = min(candidates, key=candidates.__getitem__)
    return {"baseline": name, "speedup": candidates[name]}


def valid_max_diff(ours: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    valid = mask.astype(bool)
    return float(np.abs(ours[valid] - reference[valid]).max())


def run_workload(workload: Workload, model: ModelUnderTest, runners: Sequence[str], policy: TimingPolicy,
                 on_measured: Callable[[str], None]) -> WorkloadResult:
    batch = model.batch(workload.lengths())
    reference = torch_prepare(model.reference, batch.feeds)
    reference.run()
    expected = reference.hidden()
    timings, diffs, failures = {}, {}, {}
    for name in runners:
        try:
            prepared = model.prepare[name](batch.feeds)
            prepared.run()
            diffs[name] = valid_max_diff(prepared.hidden(), expected, batch.mask)
            timings[name] = measure(prepared.run, policy)
        except Exception as error:  # one runner's failure (e.g. out of memory) must not end the run
            failures[name] = f"{type(error).__name__}: {error}"
        on_measured(name)
    return WorkloadResult(workload, [int(n) for n in batch.lengths], batch.padded_length,
                          encoder_flops(batch.lengths, model.dims) / 1e9, timings, diffs, failures)


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------

def environment(precision: str) -> dict[str, Any]:
    import transformers

    properties = torch.cuda.get_device_properties(0)
    versions = {"torch": torch.__version__, "onnxruntime": ort.__version__,
                "transformers": transformers.__version__, "cuda": torch.version.cuda}
    try:
        import tensorrt

        versions["tensorrt"] = tensorrt.__version__
    except ImportError:
        pass
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "gpu": properties.name,
        "gpu_memory_gib": properties.total_memory / 2**30,
        "compute_capability": f"{properties.major}.{properties.minor}",
        "host": platform.node(),
        "precision": precision,
        **versions,
    }


def markdown_report(report: dict[str, Any]) -> str:
    env, peak = report["environment"], report["gemm_peak"]
    runners = list(report["settings"]["runners"])
    ours = [name for name in runners if RUNNERS[name].kind == "ours"]
    lines = [
        "# bytetx GPU benchmark", "",
        f"{env['gpu']} (sm {env['compute_capability']}), {env['precision']}; torch {env['torch']}, "
        f"onnxruntime {env['onnxruntime']}, TensorRT {env.get('tensorrt', '-')}; {env['date']}.",
        f"{env['precision']} GEMM peak (torch.matmul, best of {len(peak['shapes'])} shapes): "
        f"**{peak['peak_gflops'] / 1e3:.1f} TFLOP/s**.", "",
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
                f"{100 * r['fraction_of_peak'][mine]:.0f}% | {format_best(padded)} | {format_best(unpadded)} | "
                f"{r['max_abs_diff_vs_torch_fp32'][mine]:.2e} |")
    failures = [(r, name, text) for r in report["results"] for name, text in r["failures"].items()]
    if failures:
        lines += ["", "## Failures", ""]
        lines += [f"- {r['model']} b{r['batch']} L{r['max_length']} `{name}`: {text}" for r, name, text in failures]
    return "\n".join(lines) + "\n"


def format_best(best: dict[str, Any] | None) -> str:
    return "-" if best is None else f"{best['speedup']:.2f}x ({best['baseline']})"


def plot_speedups(report: dict[str, Any], path: Path) -> None:
    """Speedup of each bytetx runner against the best padded and best unpadded baseline vs max length,
    one panel per (model, batch)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = report["results"]
    models = list(dict.fromkeys(r["model"] for r in records))
    batches = sorted({r["batch"] for r in records})
    max_lengths = sorted({r["max_length"] for r in records})
    figure, axes = plt.subplots(len(models), len(batches), squeeze=False, sharey=True,
                                figsize=(4 * len(batches), 3.2 * len(models)))
    styles = {"bytetx-ort-cuda": "-", "bytetx-trt": "--"}
    for row, model in enumerate(models):
        for column, batch in enumerate(batches):
            axis = axes[row][column]
            panel = sorted((r for r in records if (r["model"], r["batch"]) == (model, batch)),
                           key=lambda r: r["max_length"])
            for mine, style in styles.items():
                for key, color in (("best_padded", "tab:blue"), ("best_unpadded", "tab:orange")):
                    points = [(r["max_length"], r[key][mine]["speedup"]) for r in panel
                              if r[key].get(mine)]
                    if points:
                        xs, ys = zip(*points, strict=True)
                        axis.plot(xs, ys, style, color=color, marker="o",
                                  label=f"{mine} vs {key.replace('_', ' ')}")
            axis.axhline(1.0, color="grey", linewidth=0.8)
            axis.set_xscale("log", base=2)
            axis.set_xticks(max_lengths, [str(n) for n in max_lengths])
            axis.set_xlabel("max length")
            axis.set_ylabel("speedup (x)")
            axis.set_title(f"{model}, batch {batch}")
            axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_reports(report: dict[str, Any], output_dir: Path) -> list[Path]:
    return write_report_files(report, output_dir, RESULT_STEM, markdown_report(report), plot_speedups)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="bert-base, batch 16, max length 128 and 512, shorter timing")
    parser.add_argument("--models", type=names(list(MODELS)), help="comma-separated (default bert-base)")
    parser.add_argument("--batches", type=integers, help="comma-separated batch sizes (default 1,4,8,16)")
    parser.add_argument("--max-lengths", type=integers,
                        help="comma-separated max lengths (default 64,128,256,512,1024)")
    parser.add_argument("--distributions", type=names(list(DISTRIBUTIONS)),
                        help="comma-separated length distributions (default uniform, the paper's)")
    parser.add_argument("--runners", type=names(list(RUNNERS)),
                        help=f"comma-separated (default all: {', '.join(RUNNERS)})")
    parser.add_argument("--precision", choices=list(TORCH_DTYPES), default="fp16",
                        help="of every runner (default fp16, the paper's)")
    parser.add_argument("--budget", type=float, help="seconds of timed calls per runner and workload "
                        f"(default {FULL_TIMING.budget_s}, quick {QUICK_TIMING.budget_s})")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR,
                        help="where the JSON, markdown and PNG go (default benchmarks/results)")
    return parser


def resolve(args: argparse.Namespace) -> tuple[list[Workload], list[str], TimingPolicy]:
    if args.quick:
        defaults = (["bert-base"], [16], [128, 512], QUICK_TIMING)
    else:
        defaults = (["bert-base"], [1, 4, 8, 16], [64, 128, 256, 512, 1024], FULL_TIMING)
    policy = defaults[3]
    if args.budget is not None:
        policy = dataclasses.replace(policy, budget_s=args.budget)
    workloads = [Workload(model, batch, length, distribution)
                 for model in args.models or defaults[0] for batch in args.batches or defaults[1]
                 for length in args.max_lengths or defaults[2]
                 for distribution in args.distributions or ["uniform"]]
    return workloads, args.runners or list(RUNNERS), policy


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=True)
    if not torch.cuda.is_available():
        console.print("[bold red]error:[/] no CUDA device: the GPU benchmark needs an NVIDIA GPU and a CUDA "
                      "build of torch (benchmarks/cpu_benchmark.py measures the CPU path)", highlight=False)
        return 1
    if not have_matplotlib(console):
        return 1
    from transformers.utils import logging as hf_logging

    from bytetx.exporter.tensorrt import plugin_library_path

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    workloads, runners, policy = resolve(args)
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
    for path in write_reports(report, args.output_dir):
        console.print(f"wrote {path}")
    return 0


def run_benchmark(workloads: Sequence[Workload], runners: Sequence[str], policy: TimingPolicy,
                  settings: BuildSettings, console: Console) -> dict[str, Any]:
    started = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress, tempfile.TemporaryDirectory() as tmp:
        task = progress.add_task("GEMM peak", total=len(workloads) * len(runners))
        shapes = gemm_peak(settings.precision, policy)
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
                                      lambda runner: progress.update(task, advance=1,
                                                                     description=f"{label}: {runner} done"))
                latencies = ", ".join(f"{n} {t.median_ms:.2f}" for n, t in result.timings.items())
                progress.console.print(f"{label}: median ms {latencies}", highlight=False)
                results.append(result)
            del model
            torch.cuda.empty_cache()
    console.print(f"done in {format_duration(time.perf_counter() - started)}", highlight=False)
    return {
        "environment": environment(settings.precision),
        "gemm_peak": {"peak_gflops": peak, "shapes": shapes},
        "models": models,
        "flops_formula": "per layer 2*T*H*3H + 2*T*H*H + 2*2*T*H*I + 2*2*sum(len^2)*H, T = real tokens",
        "results": [result.record(peak) for result in results],
        "skipped_workloads": skipped,
    }


if __name__ == "__main__":
    sys.exit(main())
