"""int8 for the CPU: smoothing, then ONNX Runtime's dynamic quantization of the padding-free graph.

The recipe (docs/int8.md has the measurements behind it): first SmoothQuant's equivalence transform
(Xiao et al., 2023) on every quantized GEMM, ``x @ W = (x / s) @ (s W)`` with one factor per input
channel, ``s = max|x|^alpha / max|W|^(1 - alpha)``, so that the outlier channels of the activations
hand part of their range to the weights; the division is a ``Mul`` on the packed activations, the
product is folded into the weights, and the float32 model computes the same up to rounding. Then
``onnxruntime.quantization.quantize_dynamic`` with per-channel int8 weights on the encoder's
MatMuls, which ONNX Runtime fuses into ``DynamicQuantizeMatMul`` (u8 x s8 on AVX512-VNNI; u8 x u8
on an x86 CPU without VNNI, see :func:`int8_weight_type`);
activations get one dynamic range per call, over all packed tokens. The pooler, the embeddings and
FusedMHA stay float32. GEMMs whose (smoothed) inputs have the widest range relative to their typical
value lose most to that one range; they stay float32, unsmoothed, the fewest that keep the quality
above the required minimum (a search measured with :class:`~bytetx.exporter.quality.QualityCheck`).
"""

from __future__ import annotations

import logging
import platform
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from .quality import (
    QualityCheck,
    QualityReport,
    Runner,
    describe_input,
    random_batches,
    sentence_batches,
    sentences,
)
from .verify import vocab_size_of

QUANTIZED_OP = "MatMul"
# SmoothQuant's migration strength: 0.7 kept the fewest GEMMs float32 on the sentence set for MiniLM
# (2 of 24, against 4 at 0.5 and 3 at 0.8; docs/int8.md).
SMOOTHING_ALPHA = 0.7
SMOOTHING_SUFFIX = "/smooth_quant"
# Metadata of a quantized model: the weights' integer type ("int8" or "uint8").
WEIGHT_TYPE_KEY = "bytetx_int8_weights"
# CPU flags of x86 int8 dot-product instructions that accumulate u8 x s8 in int32.
_VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@dataclass
class Int8Result:
    model: onnx.ModelProto
    float32_matmuls: list[str]  # MatMul nodes kept in float32, widest input range first
    quantized_matmuls: int
    report: QualityReport
    smoothing: dict[str, np.ndarray]  # per quantized MatMul: its input channels' factors s

    def apply(self, model: onnx.ModelProto) -> onnx.ModelProto:
        """The same recipe on another flavour of the model with the same MatMuls and weights (the
        packed-input flavour): smoothing, then int8 for all but the float32 GEMMs."""
        return quantize_smoothed(model, self.smoothing, self.float32_matmuls)


def weight_matmuls(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """MatMul nodes whose right operand is a 2-D float initializer: the ones quantize_dynamic handles."""
    weights = {t.name for t in model.graph.initializer if len(t.dims) == 2 and t.data_type == onnx.TensorProto.FLOAT}
    return [n for n in model.graph.node if n.op_type == QUANTIZED_OP and n.input[1] in weights]


def int8_weight_type() -> str:
    """"int8" where ONNX Runtime's u8 x s8 GEMM is exact on this CPU, else "uint8". On x86 without
    VNNI it multiplies with VPMADDUBSW, whose int16 sums of two products saturate (2 * 255 * 127 >
    32767); ONNX Runtime's quantization guide advises u8 x u8 there, which its AVX2 kernel widens to
    int16 before multiplying (measured on AVX2: random-weight BERT's min cosine 0.89 with int8
    weights, within the noise bound with uint8)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return "int8"
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "int8"
    return "int8" if flags & set(_VNNI_FLAGS) else "uint8"


def quantize_int8(model: onnx.ModelProto, float32_matmuls: Sequence[str] = ()) -> onnx.ModelProto:
    """The model through ``quantize_dynamic``: every weight MatMul but ``float32_matmuls`` gets
    per-channel weights of :func:`int8_weight_type` and dynamic uint8 activations; nothing else
    changes but the metadata, which records the weight type."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    targets = [n.name for n in weight_matmuls(model) if n.name not in set(float32_matmuls)]
    if not targets:
        return model
    quantizer_log = logging.getLogger()
    level = quantizer_log.level
    quantizer_log.setLevel(logging.ERROR)  # its advice to run pre-processing is for convolutional models
    try:
        with tempfile.TemporaryDirectory() as folder:
            output = Path(folder) / "int8.onnx"
            weights = int8_weight_type()
            quantize_dynamic(model, output, op_types_to_quantize=[QUANTIZED_OP], nodes_to_quantize=targets,
                             per_channel=True, weight_type=QuantType.QInt8 if weights == "int8" else QuantType.QUInt8)
            quantized = onnx.load(str(output))
            quantized.metadata_props.add(key=WEIGHT_TYPE_KEY, value=weights)
            return quantized
    finally:
        quantizer_log.setLevel(level)


@dataclass
class ActivationStats:
    """What the calibration batches put through one weight MatMul's input [rows, K], per channel."""

    channel_max: np.ndarray  # [K] max |x|
    channel_square_sum: np.ndarray  # [K] sum of x^2
    rows: int

    def range_to_rms(self) -> float:
        """max |x| / rms(x) over the whole input."""
        rms = np.sqrt(self.channel_square_sum.sum() / max(self.rows * self.channel_max.size, 1))
        return float(self.channel_max.max(initial=0.0) / max(rms, 1e-30))

    def divided_by(self, factors: np.ndarray) -> ActivationStats:
        """The statistics of x / factors (smoothed)."""
        return ActivationStats(self.channel_max / factors, self.channel_square_sum / factors**2, self.rows)


RunWithOutputs = Callable[[onnx.ModelProto], Iterable[dict[str, np.ndarray]]]


def activation_stats(model: onnx.ModelProto, run_with_outputs: RunWithOutputs) -> dict[str, ActivationStats]:
    """Per weight MatMul (by node name): the statistics of its input over the batches
    ``run_with_outputs`` runs on ``model`` with those inputs added as outputs."""
    matmuls = weight_matmuls(model)
    probed = onnx.ModelProto()
    probed.CopyFrom(model)
    existing = {o.name for o in probed.graph.output}
    for name in dict.fromkeys(n.input[0] for n in matmuls):
        if name not in existing:
            probed.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    stats: dict[str, ActivationStats] = {}
    for outputs in run_with_outputs(probed):
        for node in matmuls:
            x = outputs[node.input[0]].astype(np.float64)
            x = x.reshape(-1, x.shape[-1])
            channel_max, squares = np.abs(x).max(axis=0, initial=0.0), (x * x).sum(axis=0)
            seen = stats.get(node.name)
            stats[node.name] = ActivationStats(channel_max, squares, x.shape[0]) if seen is None else ActivationStats(
                np.maximum(seen.channel_max, channel_max), seen.channel_square_sum + squares, seen.rows + x.shape[0])
    return stats


def quantize_smoothed(model: onnx.ModelProto, smoothing: dict[str, np.ndarray],
                      float32_matmuls: Sequence[str]) -> onnx.ModelProto:
    """Smoothing with ``smoothing``'s factors, then int8 for every weight MatMul but ``float32_matmuls``."""
    return quantize_int8(smooth(model, smoothing), float32_matmuls)


def range_to_rms(model: onnx.ModelProto, run_with_outputs: RunWithOutputs) -> dict[str, float]:
    """Per weight MatMul: max |input| / rms(input) over the batches ``run_with_outputs`` runs.

    A dynamic uint8 range spends its 256 steps on [min, max] of the whole input, so the
    quantization noise relative to the signal grows with this ratio (outlier channels and the
    large activations of [CLS]/[SEP] tokens make it reach 100 and more in BERT's FFN inputs).
    """
    return {name: stats.range_to_rms() for name, stats in activation_stats(model, run_with_outputs).items()}


def smoothing_factors(stats: ActivationStats, weight: np.ndarray, alpha: float = SMOOTHING_ALPHA) -> np.ndarray:
    """SmoothQuant's per-channel factors for ``x @ weight`` ([K, N]): max|x_k|^alpha / max|W_k|^(1 - alpha).
    Channels that never fire, and weight rows of zeros, get factors near 1 rather than 0 or infinity."""
    activation = np.maximum(stats.channel_max, 1e-5)
    weight_max = np.maximum(np.abs(weight).max(axis=1), 1e-5)
    return (activation**alpha / weight_max ** (1 - alpha)).astype(np.float32)


def smooth(model: onnx.ModelProto, factors: dict[str, np.ndarray]) -> onnx.ModelProto:
    """``model`` with each MatMul named in ``factors`` computing ``(x / s) @ (s W)``: a Mul by 1/s right
    before it, its weight rows scaled by s (a new initializer; the old one goes when unused).
    MatMuls already reading a smoothed input are left as they are, so smoothing twice changes nothing."""
    smoothed = onnx.ModelProto()
    smoothed.CopyFrom(model)
    graph = smoothed.graph
    initializers = {t.name: t for t in graph.initializer}
    nodes = []
    for node in graph.node:
        s = factors.get(node.name)
        if s is not None and node.op_type == QUANTIZED_OP and not node.input[0].endswith(SMOOTHING_SUFFIX):
            x, weight = node.input[0], node.input[1]
            tag = node.name + SMOOTHING_SUFFIX
            graph.initializer.append(numpy_helper.from_array((1.0 / s).astype(np.float32), tag + "_inverse"))
            scaled = numpy_helper.to_array(initializers[weight]) * s[:, None]
            graph.initializer.append(numpy_helper.from_array(scaled.astype(np.float32), weight + SMOOTHING_SUFFIX))
            nodes.append(onnx.helper.make_node("Mul", [x, tag + "_inverse"], [tag], name=tag))
            node.input[0], node.input[1] = tag, weight + SMOOTHING_SUFFIX
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return smoothed


def choose_float32_matmuls(ranked: Sequence[str], measure: Callable[[Sequence[str]], QualityReport]
                           ) -> tuple[list[str], QualityReport]:
    """The shortest prefix of ``ranked`` (widest input range first) to keep in float32 whose quality
    passes, found by bisection (quality grows as more GEMMs stay float32); all of them if none does."""
    report = measure([])
    if report.passed or not ranked:
        return [], report
    low, high = 0, len(ranked)  # prefix `low` fails; prefix `high` is the fallback
    reports = {0: report}
    while high - low > 1:
        middle = (low + high) // 2
        reports[middle] = measure(list(ranked[:middle]))
        if reports[middle].passed:
            high = middle
        else:
            low = middle
    if high not in reports:
        reports[high] = measure(list(ranked[:high]))
    return list(ranked[:high]), reports[high]


def hidden_state_output(model: onnx.ModelProto) -> str:
    """The per-token output that the embeddings are pooled from: ``last_hidden_state``, else the first output."""
    names = [o.name for o in model.graph.output]
    return "last_hidden_state" if "last_hidden_state" in names else names[0]


def onnx_runner(model: onnx.ModelProto) -> Runner:
    """A bytetx session on ``model`` as a Runner: feeds in, the hidden states [B, S, H] out."""
    import bytetx

    session = bytetx.InferenceSession(model.SerializeToString())
    output = hidden_state_output(model)
    return lambda feeds: session.run([output], feeds)[0]


def to_int8(rewritten: onnx.ModelProto, check: QualityCheck, min_cosine: float) -> Int8Result:
    """Quantize the padding-free model, keeping float32 the fewest widest-range GEMMs that keep the
    mean-pooled cosine to the check's reference at ``min_cosine`` or above (on both padding sides).

    The result's report says whether it passed; the caller decides what a failure means.
    """
    import bytetx

    def run_with_outputs(probed: onnx.ModelProto) -> Iterable[dict[str, np.ndarray]]:
        session = bytetx.InferenceSession(probed.SerializeToString())
        names = [o.name for o in session.get_outputs()]
        for batch in check.batches:
            if batch.padding == "right":
                yield dict(zip(names, session.run(names, batch.feeds)))

    stats = activation_stats(rewritten, run_with_outputs)
    weights = {t.name: t for t in rewritten.graph.initializer}
    factors = {node.name: smoothing_factors(stats[node.name], numpy_helper.to_array(weights[node.input[1]]))
               for node in weight_matmuls(rewritten)}
    ratios = {name: stats[name].divided_by(factors[name]).range_to_rms() for name in factors}
    ranked = sorted(ratios, key=ratios.__getitem__, reverse=True)
    models: dict[tuple[str, ...], Int8Result] = {}

    def measure(float32_matmuls: Sequence[str]) -> QualityReport:
        smoothing = {name: f for name, f in factors.items() if name not in set(float32_matmuls)}
        model = quantize_smoothed(rewritten, smoothing, float32_matmuls)
        report = check.measure(onnx_runner(model), min_cosine)
        models[tuple(float32_matmuls)] = Int8Result(model, list(float32_matmuls), len(smoothing), report, smoothing)
        return report

    chosen, _ = choose_float32_matmuls(ranked, measure)
    return models[tuple(chosen)]


def int8_for(original: onnx.ModelProto, rewritten: onnx.ModelProto, loaded, source: Path,
             min_cosine: float) -> Int8Result:
    """The int8 recipe of ``rewritten`` chosen by the quality check of ``source`` (a model directory or
    the ONNX file) against ``loaded`` or the float32 model; its report says whether it passed."""
    return to_int8(rewritten, quality_check(original, rewritten, loaded, source), min_cosine)


def quality_check(original: onnx.ModelProto, rewritten: onnx.ModelProto, loaded, source: Path) -> QualityCheck:
    """The check of an int8 export: the sentence set through the model's tokenizer (random token ids
    where it has none), against Hugging Face PyTorch in float32 for model directories (``loaded``, a
    LoadedModel), else against the float32 rewritten model."""

    input_names = [i.name for i in original.graph.input]
    if loaded is not None:
        import torch

        def reference(feeds):
            with torch.no_grad():
                outputs = loaded.model(**{k: torch.from_numpy(v) for k, v in feeds.items()})
            return outputs["last_hidden_state"].numpy()

        reference_name = "Hugging Face PyTorch (float32)"
        max_positions = getattr(loaded.config, "max_position_embeddings", 514)
    else:
        reference = onnx_runner(rewritten)
        reference_name = "the float32 rewritten model"
        max_positions = 514
    vocab_size = loaded.config.vocab_size if loaded is not None else vocab_size_of(original)
    tokenizer = tokenizer_for(source, vocab_size)
    if tokenizer is not None:
        texts = sentences()
        max_length = min(512, max_positions - 2, int(getattr(tokenizer, "model_max_length", 512)))
        batches = sentence_batches(tokenizer, texts, input_names, max_length)
        labels = [describe_input(text) for text in texts]
        inputs_name = f"{len(texts)} sentences"
    else:
        if loaded is not None:
            config = loaded.config
            vocab, pad, types = config.vocab_size, loaded.pad_token_id, getattr(config, "type_vocab_size", 1)
        else:
            vocab, pad, types = vocab_size_of(original) or 100, 0, 1
        batches = random_batches(input_names, vocab, pad, types, max_length=min(64, max_positions - 2))
        count = max(int(b.indices.max()) for b in batches) + 1
        labels = [f"random sequence {i}" for i in range(count)]
        inputs_name = f"{count} sequences of random token ids (no tokenizer found)"
    return QualityCheck.build(reference, batches, labels, reference_name, inputs_name)


TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model", "spiece.model")


def tokenizer_for(source: Path, vocab_size: int | None) -> Any:
    """The tokenizer saved with the model (its directory, or the ONNX file's folder), or None.

    Without vocabulary files transformers builds a tokenizer that maps every word to [UNK]; that,
    and one whose ids the model's embedding table does not hold, do not count."""
    from transformers import AutoTokenizer

    folder = source if source.is_dir() else source.parent
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return None
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception:  # noqa: BLE001 - unreadable tokenizer files: the check uses random ids
        return None
    return tokenizer if vocab_size is None or len(tokenizer) <= vocab_size else None
