"""Attention masks with seeded randomness for the ORT op tests."""

from __future__ import annotations

import numpy as np

MASK_KINDS = ("full", "right", "left", "holes", "mixed")


def _row(kind: str, seq_len: int, rng: np.random.Generator) -> np.ndarray:
    row = np.zeros(seq_len, np.int64)
    if kind == "full":
        row[:] = 1
    elif kind == "empty":
        pass
    elif kind == "right":
        row[: rng.integers(0, seq_len + 1)] = 1
    elif kind == "left":
        row[seq_len - rng.integers(0, seq_len + 1) :] = 1
    elif kind == "holes":
        row[:] = rng.random(seq_len) < rng.uniform(0.2, 0.9)
    else:
        raise ValueError(kind)
    return row


def make_mask(batch: int, seq_len: int, kind: str, seed: int, dtype=np.int64) -> np.ndarray:
    """A ``[batch, seq_len]`` 0/1 mask. ``mixed`` cycles full, empty, right, left and holes rows."""
    rng = np.random.default_rng(seed)
    if kind == "mixed":
        kinds = ["full", "empty", "right", "left", "holes"]
        rows = [_row(kinds[b % len(kinds)], seq_len, rng) for b in range(batch)]
    else:
        rows = [_row(kind, seq_len, rng) for _ in range(batch)]
    return np.array(rows, dtype=dtype).reshape(batch, seq_len)
