"""DeBERTa-v2/v3's disentangled attention terms, recognized on the scores by what they compute.

The export adds to ``Q K^T`` a term built from the query and key head rows: ``q_i`` times the
position keys and ``k_j`` times the position queries (constant once the relative embeddings are
folded, tiled per batch), each gathered at the clamped log bucket of ``i - j``. The MatMuls that read
the head rows give the tables (evaluated at batch 1, probe.py); the buckets are read off the term
evaluated with random head rows; and the whole term must then equal FusedMHA's
(docs/ops.md, "Disentangled position terms") at every probe length, or it is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_graphsurgeon as gs

from .base import ancestor_nodes
from .probe import ProbeError, RowProbe, length_beyond_constants, squeeze_leading

# Floors and bounds of the longest probe, which must reach the last bucket of each direction: twice
# the largest integer constant the term reads (the span's clamp bound among them).
_MIN_LONGEST = 64
_MAX_CONSTANT = 1 << 13
_SHORT_LENGTHS = (37, 1)
# max_relative_positions tried for a bucketed span (transformers' own bound is the model's positions).
_MAX_RELATIVE_POSITIONS = 1 << 14


class NotDisentangled(ValueError):
    """The term is not DeBERTa's disentangled terms as FusedMHA computes them; the message says why."""


@dataclass(frozen=True)
class DisentangledTerms:
    position_key: np.ndarray | None  # [2 span, H]: content to position
    position_query: np.ndarray | None  # [2 span, H]: position to content
    position_buckets: int
    max_relative_positions: int

    def __str__(self) -> str:
        terms = [name for name, table in (("c2p", self.position_key), ("p2c", self.position_query)) if table is not None]
        rows = (self.position_key if self.position_key is not None else self.position_query).shape[0]
        return (f"disentangled {'+'.join(terms)} (span {rows // 2}, buckets {self.position_buckets}, "
                f"max {self.max_relative_positions})")


def depends_on(tensor: gs.Tensor, names: set[str]) -> bool:
    """Whether ``tensor`` is computed from one of the tensors ``names``."""
    return any(t.name in names for node in ancestor_nodes(tensor) for t in node.inputs)


def bucket_index(n: np.ndarray, span: int, position_buckets: int, max_relative_positions: int) -> np.ndarray:
    """FusedMHA's clamped bucket of relative positions ``n`` (docs/ops.md), as transformers computes
    make_log_bucket_position in float32."""
    n = np.asarray(n, np.int64)
    if position_buckets > 0:
        mid = position_buckets // 2
        distance = np.where((n < mid) & (n > -mid), mid - 1, np.abs(n))
        log_ratio = np.log(np.float32((max_relative_positions - 1) / mid))
        logarithmic = np.ceil(np.log(distance.astype(np.float32) / np.float32(mid)) / log_ratio
                              * np.float32(mid - 1)) + np.float32(mid)
        n = np.where(distance <= mid, n, logarithmic * np.sign(n)).astype(np.int64)
    return np.clip(n + span, 0, 2 * span - 1)


def find_disentangled_terms(graph: gs.Graph, term: gs.Tensor, query_heads: set[str], key_heads: set[str],
                            num_heads: int, head_size: int, factor: float) -> DisentangledTerms:
    """The tables and bucketing of ``term`` (broadcasting to [B * heads, S, S]), which must equal
    ``factor`` times FusedMHA's disentangled terms of the head rows ``query_heads`` / ``key_heads``."""
    matmuls = [n for n in ancestor_nodes(term) if n.op == "MatMul" and n.inputs[0].name in query_heads | key_heads]
    by_side = {side: [m for m in matmuls if m.inputs[0].name in heads]
               for side, heads in (("query", query_heads), ("key", key_heads))}
    if not matmuls or any(len(found) > 1 for found in by_side.values()):
        raise NotDisentangled(f"it multiplies the query and key head rows by {len(matmuls)} tables, not one each "
                              "at most")
    try:
        tables = {side: _table(graph, found[0], num_heads, head_size) for side, found in by_side.items() if found}
    except ProbeError as error:
        raise NotDisentangled(f"its position tables: {error}") from None
    rows = {table.shape[0] for table in tables.values()}
    if len(rows) != 1 or next(iter(rows)) % 2:
        raise NotDisentangled(f"its position tables have {sorted(rows)} rows, not one even count")
    span = next(iter(rows)) // 2
    cuts = {side: found[0].inputs[0] for side, found in by_side.items() if found}
    lengths = (length_beyond_constants(term, _MIN_LONGEST, _MAX_CONSTANT), *_SHORT_LENGTHS)
    try:
        probe = RowProbe(graph, [term], tuple(t.name for t in cuts.values()))
        longest = lengths[0]
        recovered = _recover_buckets(probe, cuts, tables, num_heads, head_size, factor, longest)
        position_buckets, max_positions = _bucketing(recovered, span, longest)
        found = DisentangledTerms(tables.get("query"), tables.get("key"), position_buckets, max_positions)
        for length in lengths:
            _check(probe, cuts, found, num_heads, head_size, factor, length, span)
    except ProbeError as error:
        raise NotDisentangled(str(error)) from None
    return found


def _table(graph: gs.Graph, matmul: gs.Node, num_heads: int, head_size: int) -> np.ndarray:
    """The [2 span, H] rows the MatMul multiplies a head's rows by: its second operand, [heads, d, 2 span]
    at batch 1."""
    value = squeeze_leading(RowProbe(graph, [matmul.inputs[1]])(1)[0], 3)
    if value.shape[:2] != (num_heads, head_size):
        raise NotDisentangled(f"'{matmul.inputs[1].name}' has shape {list(value.shape)} at batch 1, not "
                              f"[{num_heads}, {head_size}, 2 * span]")
    return np.ascontiguousarray(value.transpose(2, 0, 1).reshape(value.shape[2], num_heads * head_size))


def _heads(cut: gs.Tensor, values: np.ndarray) -> np.ndarray:
    """[heads, L, d] head rows in the rank of the cut tensor ([B * heads, S, d] or [B, heads, S, d])."""
    return values if cut.shape is None or len(cut.shape) == 3 else values[None]


def _evaluate(probe: RowProbe, cuts: dict[str, gs.Tensor], rows: dict[str, np.ndarray], length: int) -> np.ndarray:
    values = probe(length, {cut.name: _heads(cut, rows[side]).astype(np.float32) for side, cut in cuts.items()})[0]
    return squeeze_leading(values, 3).astype(np.float64)


def _products(rows: np.ndarray, table: np.ndarray, num_heads: int, head_size: int) -> np.ndarray:
    """[heads, L, 2 span]: each head row times each of the table's rows of its head."""
    per_head = table.astype(np.float64).reshape(table.shape[0], num_heads, head_size).transpose(1, 0, 2)
    return rows.astype(np.float64) @ per_head.transpose(0, 2, 1)


def _recover_buckets(probe: RowProbe, cuts: dict[str, gs.Tensor], tables: dict[str, np.ndarray], num_heads: int,
                     head_size: int, factor: float, length: int) -> np.ndarray:
    """The bucket r(n) of each n in [-(L - 1), L - 1], read off the term with one side's head rows random
    and the other's zero: each gathered product is the one of its bucket."""
    rng = np.random.default_rng(0)
    side = "query" if "query" in tables else "key"
    rows = {s: (rng.standard_normal((num_heads, length, head_size)) if s == side
                else np.zeros((num_heads, length, head_size))) for s in cuts}
    value = _evaluate(probe, cuts, rows, length) / factor
    if value.shape != (num_heads, length, length):
        raise NotDisentangled(f"at sequence length {length} it has shape {list(value.shape)}, not "
                              f"[{num_heads}, {length}, {length}] (heads, queries, keys)")
    products = _products(rows[side].astype(np.float32), tables[side], num_heads, head_size)[0]  # [L, 2 span]
    distance = np.arange(length)
    # The query side holds query i's product with the bucket of i - j at key j; the key side key j's.
    if side == "query":  # n >= 0 on the last query's row, n <= 0 on the first's
        positive, negative = (value[0, -1, length - 1 - distance], products[-1]), (value[0, 0, distance], products[0])
    else:  # n >= 0 down the first key's column, n <= 0 down the last key's
        positive, negative = (value[0, distance, 0], products[0]), (value[0, length - 1 - distance, -1], products[-1])
    r_positive, r_negative = (np.abs(values[:, None] - candidates[None, :]).argmin(axis=1)
                              for values, candidates in (positive, negative))
    return np.concatenate([r_negative[:0:-1], r_positive])  # n = -(L - 1) .. L - 1


def _bucketing(recovered: np.ndarray, span: int, length: int) -> tuple[int, int]:
    """(position_buckets, max_relative_positions) whose clamped buckets are ``recovered`` over
    n = -(L - 1) .. L - 1; with several, they must agree on every longer distance too."""
    n = np.arange(-(length - 1), length)
    if np.array_equal(recovered, bucket_index(n, span, 0, span)):
        return 0, span
    mid = span // 2
    fitting = [m for m in range(mid + 2, _MAX_RELATIVE_POSITIONS)
               if np.array_equal(recovered, bucket_index(n, span, span, m))]
    if not fitting:
        raise NotDisentangled(f"its buckets over distances up to {length - 1} are neither the distances clamped to "
                              f"the span of {span} nor DeBERTa's log buckets of {span} for any max_relative_positions")
    saturated = recovered[0] == 0 and recovered[-1] == 2 * span - 1
    if len(fitting) > 1 and not saturated:
        raise NotDisentangled(f"its log buckets do not reach the last one within distance {length - 1}, so "
                              "max_relative_positions is not determined")
    return span, fitting[0]


def _check(probe: RowProbe, cuts: dict[str, gs.Tensor], found: DisentangledTerms, num_heads: int, head_size: int,
           factor: float, length: int, span: int) -> None:
    rng = np.random.default_rng(length)
    rows = {side: rng.standard_normal((num_heads, length, head_size)).astype(np.float32) for side in cuts}
    value = _evaluate(probe, cuts, rows, length)
    n = np.arange(length)
    r = bucket_index(n[:, None] - n[None, :], span, found.position_buckets, found.max_relative_positions)
    expected = np.zeros((num_heads, length, length))
    if found.position_key is not None:
        expected += np.take_along_axis(_products(rows["query"], found.position_key, num_heads, head_size),
                                       np.broadcast_to(r, expected.shape), axis=2)
    if found.position_query is not None:
        expected += _products(rows["key"], found.position_query, num_heads, head_size)[:, n[None, :], r]
    expected *= factor
    if value.shape != expected.shape or not np.allclose(value, expected, rtol=1e-4,
                                                        atol=1e-5 * max(1.0, float(np.abs(expected).max()))):
        raise NotDisentangled(f"at sequence length {length} it is not FusedMHA's disentangled terms of the query and "
                              "key head rows (docs/ops.md)")
