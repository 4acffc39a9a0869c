"""Ragged test batches and the comparisons that decide whether a rewrite is correct."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import onnx

Padding = Literal["right", "left", "holes"]

# Absolute tolerance on valid tokens for float32 models (the padding-free path reorders no
# reduction inside a token; differences come from the attention sum order only).
FP32_TOLERANCE = 1e-4


def ragged_lengths(batch: int, max_length: int, rng: np.random.Generator) -> np.ndarray:
    """Lengths in [1, max_length], always including both ends once the batch allows it."""
    lengths = rng.integers(1, max_length + 1, size=batch)
    if batch >= 2:
        lengths[0], lengths[-1] = max_length, 1
    return lengths


def ragged_mask(lengths: np.ndarray, max_length: int, padding: Padding = "right", seed: int = 0) -> np.ndarray:
    """int64 [B, S] mask with ``lengths[b]`` ones per row, placed right-, left- or hole-padded."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((len(lengths), max_length), dtype=np.int64)
    for row, length in enumerate(lengths):
        if padding == "right":
            mask[row, :length] = 1
        elif padding == "left":
            mask[row, max_length - length :] = 1
        else:
            mask[row, np.sort(rng.choice(max_length, size=length, replace=False))] = 1
    return mask


def make_feeds(
    input_names: list[str] | tuple[str, ...],
    mask: np.ndarray,
    vocab_size: int,
    pad_token_id: int,
    type_vocab_size: int = 1,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Model inputs for ``mask``: random token ids (the pad id at padding), random token types."""
    rng = np.random.default_rng(seed)
    low = 2 if vocab_size > 3 else 0
    ids = rng.integers(low, vocab_size, size=mask.shape, dtype=np.int64)
    ids[ids == pad_token_id] = low if pad_token_id != low else low + 1
    ids[mask == 0] = pad_token_id
    types = rng.integers(0, max(type_vocab_size, 1), size=mask.shape, dtype=np.int64) * mask
    by_name = {"input_ids": ids, "attention_mask": mask.astype(np.int64), "token_type_ids": types}
    missing = [name for name in input_names if name not in by_name]
    if missing:
        raise ValueError(f"cannot make values for model inputs {missing}; known: {sorted(by_name)}")
    return {name: by_name[name] for name in input_names}


def vocab_size_of(model: onnx.ModelProto, input_name: str = "input_ids") -> int | None:
    """Rows of the word-embedding table that ``input_ids`` indexes, if the graph shows it."""
    initializers = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Gather" and len(node.input) == 2 and node.input[1] == input_name:
            table = initializers.get(node.input[0])
            if table is not None and len(table.dims) == 2:
                return int(table.dims[0])
    return None


def _is_per_token(output: np.ndarray, mask: np.ndarray) -> bool:
    """[B, S, H] outputs hold one vector per position; [B, H] ones (a pooler) one per sequence."""
    return output.ndim >= 3 and output.shape[:2] == mask.shape


def valid_token_diff(actual: np.ndarray, expected: np.ndarray, mask: np.ndarray) -> float:
    """Largest |actual - expected| over valid tokens ([B, S, H] outputs) or valid rows ([B, H]).

    A per-sequence output such as the pooler reads position 0, so it counts only where position 0
    is a valid token. NaN anywhere that counts gives NaN.
    """
    if actual.shape != expected.shape:
        raise ValueError(f"shape mismatch: {actual.shape} vs {expected.shape}")
    if _is_per_token(actual, mask):
        selected = mask.astype(bool)
    else:
        selected = mask[:, 0].astype(bool)
    if not selected.any():
        return 0.0
    diff = np.abs(actual[selected].astype(np.float64) - expected[selected].astype(np.float64))
    return float(np.nan) if np.isnan(diff).any() else float(diff.max())


def padding_is_zero(output: np.ndarray, mask: np.ndarray) -> bool:
    """Whether every padded position of a [B, S, H] output is exactly zero."""
    if not _is_per_token(output, mask):
        return True
    return bool(np.all(output[mask == 0] == 0))


@dataclass
class VerifyReport:
    """Per-output largest difference on valid tokens against a reference, and the padding check."""

    reference: str
    tolerance: float
    max_diff: dict[str, float] = field(default_factory=dict)
    padding_zero: bool = True

    @property
    def passed(self) -> bool:
        return self.padding_zero and all(d <= self.tolerance for d in self.max_diff.values())

    def __str__(self) -> str:
        diffs = ", ".join(f"{name} {diff:.3g}" for name, diff in self.max_diff.items())
        verdict = "ok" if self.passed else "FAILED"
        pads = "padding exactly zero" if self.padding_zero else "padding NOT zero"
        return f"vs {self.reference}: max |diff| on valid tokens {diffs} (tolerance {self.tolerance:g}); {pads}: {verdict}"


def compare_outputs(
    reference: str,
    actual: dict[str, np.ndarray],
    expected: dict[str, np.ndarray],
    mask: np.ndarray,
    tolerance: float = FP32_TOLERANCE,
) -> VerifyReport:
    report = VerifyReport(reference, tolerance)
    for name, value in expected.items():
        report.max_diff[name] = valid_token_diff(actual[name], value, mask)
        report.padding_zero &= padding_is_zero(actual[name], mask)
    return report


def run_onnx(session, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run an onnxruntime session; outputs by name."""
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def run_torch(model, feeds: dict[str, np.ndarray], output_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Run a Hugging Face model on the same inputs; outputs by name."""
    import torch

    with torch.no_grad():
        outputs = model(**{k: torch.from_numpy(v) for k, v in feeds.items()})
    return {name: outputs[name].numpy() for name in output_names}


def pack_feeds(feeds: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    """The packed-input flavour's feeds for a right-padded batch: each input's valid tokens concatenated
    [T], ``cu_seqlens`` int32 [B + 1] and ``max_seqlen`` int32 [S]."""
    lengths = mask.sum(axis=1)
    if not np.array_equal(mask, (np.arange(mask.shape[1])[None, :] < lengths[:, None]).astype(mask.dtype)):
        raise ValueError("pack_feeds takes right-padded batches: positions restart at 0 in every sequence")
    packed = {name: value[mask == 1] for name, value in feeds.items() if name != "attention_mask"}
    packed["cu_seqlens"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    packed["max_seqlen"] = np.zeros(mask.shape[1], np.int32)
    return packed


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str, normalize: bool) -> np.ndarray:
    """Sentence embeddings [B, H] of padded hidden states [B, S, H] as sentence-transformers pools them:
    the mean over valid tokens or the first token (``cls``), then optionally L2-normalized."""
    weights = mask.astype(np.float64)
    if mode == "cls":
        pooled = hidden[:, 0].astype(np.float64)
    else:
        pooled = (hidden * weights[..., None]).sum(axis=1) / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
    if normalize:
        pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return pooled.astype(np.float32)
