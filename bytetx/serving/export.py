"""A Hugging Face model directory to the verified packed-input model that a Triton repository serves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np

from bytetx.exporter import ExportError

from .repository import ServedModel, served_model

# A tokenizer_config.json model_max_length this large means "no limit" (transformers' sentinel is 1e30).
_UNBOUNDED_LENGTH = 1_000_000

Precision = Literal["fp32", "int8"]


def prepare_model(model_dir: str | Path, tolerance: float = 1e-4, precision: Precision = "fp32",
                  min_cosine: float | None = None) -> tuple[ServedModel, list[str]]:
    """Export, rewrite to the packed-input flavour with the model's own pooling, and verify against Hugging
    Face PyTorch on a ragged batch; for ``int8``, then quantize as ``bytetx-export --precision int8`` does
    (its quality check, ``min_cosine`` by default its default). Returns the model and report lines;
    ExportError if it disagrees or int8 misses the quality bound."""
    from bytetx.exporter import export_to_onnx, load_hf_model
    from bytetx.exporter.pooling import read_sentence_pooling
    from bytetx.graph_rewrite import to_packed_inputs

    if precision not in ("fp32", "int8"):
        raise ExportError(f"precision must be fp32 or int8, got {precision!r}")
    model_dir = Path(model_dir)
    pooling = read_sentence_pooling(model_dir)
    loaded = load_hf_model(model_dir)
    plain = export_to_onnx(loaded)
    packed, reports = to_packed_inputs(plain, pooling.mode, pooling.normalize)
    lines = [str(report) for report in reports]
    lines.append(verify_packed(packed, loaded, pooling.mode, pooling.normalize, tolerance))
    if precision == "int8":
        packed, line = quantize_packed(packed, plain, loaded, model_dir, min_cosine)
        lines.append(line)
    tokenizer = model_dir / "tokenizer.json"
    metadata = {p.key: p.value for p in packed.metadata_props}
    limits = [pooling.max_seq_length, _tokenizer_max_length(model_dir), metadata.get("bytetx_max_length")]
    max_length = min(int(v) for v in limits if v is not None) if any(v is not None for v in limits) else 512
    return served_model(packed, tokenizer if tokenizer.is_file() else None, max_length), lines


def verify_packed(packed, loaded, pooling: str, normalize: bool, tolerance: float) -> str:
    """Compare the packed model with Hugging Face PyTorch on a right-padded ragged batch of 8 sequences of
    lengths 1 to 32: hidden states of every token and the pooled embeddings."""
    import bytetx
    from bytetx.exporter.verify import make_feeds, pack_feeds, pool, ragged_lengths, ragged_mask, run_torch

    mask = ragged_mask(ragged_lengths(8, 32, np.random.default_rng(0)), 32)
    config = loaded.config
    feeds = make_feeds(loaded.input_names, mask, config.vocab_size, loaded.pad_token_id,
                       getattr(config, "type_vocab_size", 1))
    hidden = run_torch(loaded.model, feeds, ("last_hidden_state",))["last_hidden_state"]
    session = bytetx.InferenceSession(packed.SerializeToString())
    ours_hidden, ours_sentence = session.run(["last_hidden_state", "sentence_embedding"], pack_feeds(feeds, mask))
    errors = {"last_hidden_state": float(np.abs(ours_hidden - hidden[mask == 1]).max()),
              "sentence_embedding": float(np.abs(ours_sentence - pool(hidden, mask, pooling, normalize)).max())}
    line = ("packed flavour vs Hugging Face PyTorch on 8 sequences of lengths 1..32: max |diff| "
            + ", ".join(f"{name} {error:.3g}" for name, error in errors.items()) + f" (tolerance {tolerance:g})")
    if not all(error <= tolerance for error in errors.values()):
        raise ExportError(line + ": FAILED; nothing was written")
    return line


def quantize_packed(packed, plain, loaded, model_dir: Path, min_cosine: float | None) -> tuple[object, str]:
    """The packed model with int8 GEMMs: the smoothing and which GEMMs stay float32 are chosen on the
    padding-free model (the packed flavour shares its MatMul nodes and weights) by the quality check on
    the sentence set."""
    from bytetx.exporter.int8 import int8_for
    from bytetx.exporter.quality import DEFAULT_MIN_COSINE
    from bytetx.graph_rewrite import rewrite_padding_free

    rewritten, _ = rewrite_padding_free(plain)
    result = int8_for(plain, rewritten, loaded, model_dir, DEFAULT_MIN_COSINE if min_cosine is None else min_cosine)
    line = f"int8 {result.report}"
    if not result.report.passed:
        raise ExportError(line + ": FAILED; nothing was written")
    return result.apply(packed), line


def _tokenizer_max_length(model_dir: Path) -> int | None:
    path = model_dir / "tokenizer_config.json"
    try:
        value = json.loads(path.read_text()).get("model_max_length") if path.is_file() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExportError(f"cannot read {path}: {error}") from None
    return int(value) if isinstance(value, (int, float)) and value < _UNBOUNDED_LENGTH else None
