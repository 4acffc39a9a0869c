"""A relative position bias on the attention scores, recognized by what it computes.

MPNet adds to every layer's scores a term that reads no input values: ``table[bucket(i - j), h]`` for
query slot ``i`` and key slot ``j`` of the padded row, with T5's bidirectional bucketing. The term is
evaluated (probe.py) at a few sequence lengths and must equal a bucketed table exactly; the table is
read off the evaluation. FusedMHA then computes the same term from the packed tokens' positions (docs/ops.md, "Relative position bias").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_graphsurgeon as gs

from .probe import ProbeError, RowProbe, squeeze_leading

# transformers' MPNetEncoder.compute_position_bias buckets with these, whatever the config says.
MPNET_NUM_BUCKETS = 32
MPNET_MAX_DISTANCE = 128
# The longest length reaches every bucket of MPNet's bucketing (distances from 91 on share the last
# one); the others check that the term depends on the distance only, not on the length.
_PROBE_LENGTHS = (100, 37, 1)


class NotAPositionBias(ValueError):
    """The term is not a bucketed relative position bias; the message says why."""


@dataclass(frozen=True)
class RelativePositionBias:
    """``table[bucket(i - j), h]``, as FusedMHA's inputs 5 and attribute take it."""

    table: np.ndarray  # [num_buckets, heads]
    max_distance: int


def relative_position_bucket(n: np.ndarray, num_buckets: int, max_distance: int) -> np.ndarray:
    """MPNet's bidirectional T5 bucket of ``n`` = query position - key position, written after
    transformers' MPNetEncoder.relative_position_bucket (float32 logarithm, truncation)."""
    n = np.asarray(n, np.int64)
    half = num_buckets // 2
    max_exact = half // 2
    direction = np.where(n < 0, half, 0)
    distance = np.abs(n)
    with np.errstate(divide="ignore"):
        scaled = (np.log(distance.astype(np.float32) / np.float32(max_exact))
                  / np.float32(np.log(max_distance / max_exact)) * np.float32(half - max_exact))
    large = np.minimum(max_exact + np.where(distance < max_exact, 0, scaled).astype(np.int64), half - 1)
    return direction + np.where(distance < max_exact, distance, large)


def find_relative_position_bias(graph: gs.Graph, term: gs.Tensor, num_heads: int) -> RelativePositionBias:
    """The table of ``term`` (a tensor of ``graph`` broadcasting to [B, heads, S, S]) under MPNet's
    bucketing; NotAPositionBias if the term is anything else."""
    try:
        probe = RowProbe(graph, [term])
        values = {length: squeeze_leading(probe(length)[0], 3) for length in _PROBE_LENGTHS}
    except ProbeError as error:
        raise NotAPositionBias(str(error)) from None
    for length, value in values.items():
        if value.shape != (num_heads, length, length):
            raise NotAPositionBias(f"at sequence length {length} it has shape {list(value.shape)}, "
                                   f"not [{num_heads}, {length}, {length}] (heads, queries, keys)")
    longest = max(_PROBE_LENGTHS)
    buckets = _buckets(longest)
    table = np.zeros((MPNET_NUM_BUCKETS, num_heads), values[longest].dtype)
    query, key = np.unravel_index(np.unique(buckets, return_index=True)[1], buckets.shape)
    table[buckets[query, key]] = values[longest][:, query, key].T
    for length, value in values.items():
        expected = table[_buckets(length)].transpose(2, 0, 1)
        if not np.allclose(value, expected, rtol=1e-6, atol=1e-6 * max(1.0, float(np.abs(table).max()))):
            raise NotAPositionBias(
                f"at sequence length {length} it is not a table indexed by MPNet's relative position buckets "
                f"({MPNET_NUM_BUCKETS} buckets, max distance {MPNET_MAX_DISTANCE})")
    return RelativePositionBias(table, MPNET_MAX_DISTANCE)


def _buckets(length: int) -> np.ndarray:
    slots = np.arange(length)
    return relative_position_bucket(slots[:, None] - slots[None, :], MPNET_NUM_BUCKETS, MPNET_MAX_DISTANCE)
