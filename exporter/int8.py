"""int8 for the CPU: ONNX Runtime's dynamic quantization of the padding-free graph.

The recipe (docs/int8.md has the measurements behind it): ``onnxruntime.quantization.quantize_dynamic``
with per-channel signed int8 weights on the encoder's MatMuls, which ONNX Runtime fuses into
``DynamicQuantizeMatMul`` (u8 x s8 on AVX512-VNNI); activations get one dynamic range per call, over
all packed tokens. The pooler, the embeddings and FusedMHA stay float32. GEMMs whose inputs have
the widest range relative to their typical value lose most to that one range; they stay float32,
the fewest that keep the quality above the required minimum (a search measured with
:class:`~bytetx.exporter.quality.QualityCheck`).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

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


@dataclass
class Int8Result:
    model: onnx.ModelProto
    float32_matmuls: list[str]  # MatMul nodes kept in float32, widest input range first
    quantized_matmuls: int
    report: QualityReport


def weight_matmuls(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """MatMul nodes whose right operand is a 2-D float initializer: the ones quantize_dynamic handles."""
    weights = {t.name for t in model.graph.initializer if len(t.dims) == 2 and t.data_type == onnx.TensorProto.FLOAT}
    return [n for n in model.graph.node if n.op_type == QUANTIZED_OP and n.input[1] in weights]


def quantize_int8(model: onnx.ModelProto, float32_matmuls: Sequence[str] = ()) -> onnx.ModelProto:
    """The model through ``quantize_dynamic``: every weight MatMul but ``float32_matmuls`` gets
    per-channel QInt8 weights and dynamic uint8 activations; nothing else changes."""
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
            quantize_dynamic(model, output, op_types_to_quantize=[QUANTIZED_OP], nodes_to_quantize=targets,
                             per_channel=True, weight_type=QuantType.QInt8)
            return onnx.load(str(output))
    finally:
        quantizer_log.setLevel(level)


def range_to_rms(model: onnx.ModelProto, run_with_outputs: Callable[[onnx.ModelProto], Iterable[dict[str, np.ndarray]]]
                 ) -> dict[str, float]:
    """Per weight MatMul: max |input| / rms(input) over the batches ``run_with_outputs`` runs.

    A dynamic uint8 range spends its 256 steps on [min, max] of the whole input, so the
    quantization noise relative to the signal grows with this ratio (outlier channels and the
    large activations of [CLS]/[SEP] tokens make it reach 100 and more in BERT's FFN inputs).
    """
    matmuls = weight_matmuls(model)
    probed = onnx.ModelProto()
    probed.CopyFrom(model)
    existing = {o.name for o in probed.graph.output}
    for name in dict.fromkeys(n.input[0] for n in matmuls):
        if name not in existing:
            probed.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    peak: dict[str, float] = {}
    squares: dict[str, float] = {}
    counts: dict[str, int] = {}
    for outputs in run_with_outputs(probed):
        for node in matmuls:
            x = outputs[node.input[0]].astype(np.float64)
            peak[node.name] = max(peak.get(node.name, 0.0), float(np.abs(x).max(initial=0.0)))
            squares[node.name] = squares.get(node.name, 0.0) + float((x * x).sum())
            counts[node.name] = counts.get(node.name, 0) + x.size
    return {name: peak[name] / max(np.sqrt(squares[name] / max(counts[name], 1)), 1e-30) for name in peak}


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

    ratios = range_to_rms(rewritten, run_with_outputs)
    ranked = sorted(ratios, key=ratios.__getitem__, reverse=True)
    models: dict[tuple[str, ...], onnx.ModelProto] = {}

    def measure(float32_matmuls: Sequence[str]) -> QualityReport:
        model = models[tuple(float32_matmuls)] = quantize_int8(rewritten, float32_matmuls)
        return check.measure(onnx_runner(model), min_cosine)

    chosen, report = choose_float32_matmuls(ranked, measure)
    return Int8Result(models[tuple(chosen)], chosen, len(ranked) - len(chosen), report)


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
