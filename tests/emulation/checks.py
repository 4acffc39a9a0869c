"""Run each CUDA kernel under the host emulation and compare it with the CPU op or a NumPy reference.

Every ``check_*`` function builds inputs from a fixed seed, runs the real launcher of
``plugins/kernels/`` through the emulation library, checks the guard zones of every buffer (no write
out of bounds) and raises AssertionError when a result is wrong. Outputs start poisoned (NaN), so an
element the kernel forgets to write fails the comparison.

Tolerances:

- Data movement (RemovePadding, RebuildPadding, the layout): bit-exact.
- float32 FusedMHA: ``max|out - exact| <= 2 * max|cpu - exact| + atol`` (``FP32_ATOL``), where
  ``exact`` is float64 NumPy and ``cpu`` the float32 CPU op: the kernel may be off by twice what the
  CPU op is, so large scores (ill-conditioned softmax) get a proportionate bound.
- float16 / bfloat16, FlashAttention's rule: ``max|out - ref| <= 2 * max|ref_lowp - ref| + atol``. The
  inputs are generated in the low precision; ``ref`` is the exact result on them (CPU op in float32,
  or float64 NumPy), ``ref_lowp`` the same computation rounded to the dtype where a low-precision
  kernel has to round: for attention on tensor cores the biased Q, K and V, the softmax weights before
  ``P V`` and the output; for the FMA attention kernel (float math inside) the output only. ``atol`` is
  in ``LOWP_ATOL``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import ml_dtypes
import numpy as np
from fixtures.masks import make_mask
from fixtures.reference import fused_mha, rotary_frequencies

from .harness import (
    Library,
    assert_bits_equal,
    assert_close_lowp,
    check_guards,
)

DTYPES = {
    "float32": (0, np.dtype(np.float32)),
    "float16": (1, np.dtype(np.float16)),
    "bfloat16": (2, np.dtype(ml_dtypes.bfloat16)),
}
MASK_TYPES = {"int32": 0, "int64": 1, "bits": 2}
# FusedMHA kernel choices of the driver (driver.cc MhaChoice).
MHA_KERNELS = {"auto": 0, "short": 1, "tiled": 2, "fma_sm75": 3}

FP32_ATOL = {"fused_mha": 1e-5}
LOWP_ATOL = {"float16": 1e-4, "bfloat16": 1e-3}


def np_dtype(dtype: str) -> np.dtype:
    return DTYPES[dtype][1]


def rounded(x: np.ndarray, dtype: str) -> np.ndarray:
    """x rounded to ``dtype`` (nearest even), as float64."""
    return np.asarray(x, dtype=np.float64).astype(np.float32).astype(np_dtype(dtype)).astype(np.float64)


# ---------------------------------------------------------------------------------------------------
# The packed layout: RemovePadding, RebuildPadding
# ---------------------------------------------------------------------------------------------------


def cpu_layout(lib: Library, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cu_seqlens [B + 1] and token_offset [B * S] of the CPU RemovePadding."""
    batch, seq_len = mask.shape
    mask = np.ascontiguousarray(mask, dtype=np.int64)
    cu = np.zeros(batch + 1, dtype=np.int32)
    offsets = np.zeros(max(batch * seq_len, 1), dtype=np.int32)
    dummy = np.zeros(max(batch * seq_len, 1), dtype=np.float32)
    packed = np.zeros(max(int(mask.sum()), 1), dtype=np.float32)
    status = lib.call("cpu_remove_padding", dummy, mask, 1, batch, seq_len, 1, packed, cu, offsets)
    assert status == 0
    return cu, offsets[: batch * seq_len]


def mask_words(mask: np.ndarray) -> np.ndarray:
    """The kBits mask: uint32 words, slot i is bit i % 32 of word i // 32."""
    flat = mask.reshape(-1).astype(np.uint8)
    padded = np.zeros((flat.size + 31) // 32 * 32, dtype=np.uint8)
    padded[: flat.size] = flat
    return np.packbits(padded, bitorder="little").view(np.uint32)


def check_remove_padding(
    lib: Library,
    dtype: str,
    mask_type: str,
    batch: int,
    seq_len: int,
    hidden: int,
    mask_kind: str,
    seed: int,
    upper_bound: bool = False,
    offset: int = 0,
) -> None:
    """RemovePadding of a [batch, seq_len, hidden] batch: layout equal to the CPU op's, packed rows
    bit-equal to the gathered input, rows from T on zero when packed is sized by the upper bound B * S.
    ``offset`` shifts the input and packed pointers off 256-byte alignment (narrower copy units)."""
    rng = np.random.default_rng(seed)
    code, dt = DTYPES[dtype]
    mask = make_mask(batch, seq_len, mask_kind, rng)
    x = rng.standard_normal((batch, seq_len, hidden)).astype(dt)
    cu_ref, offsets_ref = cpu_layout(lib, mask)
    tokens = int(mask.sum())
    rows = batch * seq_len if upper_bound else tokens

    if mask_type == "bits":
        words = mask_words(mask)
        mask_buffer = lib.buffers("mask words", words.nbytes)
        status = lib.call("emu_upload_mask_bits", words, batch * seq_len, mask_buffer)
        assert status == 0, f"UploadMaskBits returned {status}: {lib.last_error()}"
        check_guards(mask_buffer)
        assert_bits_equal(mask_buffer.read(np.uint32, words.shape), words, "UploadMaskBits words")
    else:
        mask_buffer = lib.buffers.of(
            "attention_mask", mask.astype(np.int32 if mask_type == "int32" else np.int64)
        )
    input_buffer = lib.buffers.of("input", x, offset)
    packed = lib.buffers.empty("packed", (rows, hidden), dt, offset)
    cu = lib.buffers.empty("cu_seqlens", (batch + 1,), np.int32)
    offsets = lib.buffers.empty("token_offset", (batch * seq_len,), np.int32)
    lib.launch(
        "emu_remove_padding",
        code,
        input_buffer,
        mask_buffer,
        MASK_TYPES[mask_type],
        batch,
        seq_len,
        hidden,
        rows,
        packed,
        cu,
        offsets,
    )
    check_guards(mask_buffer, input_buffer, packed, cu, offsets)

    assert_bits_equal(cu.read(np.int32, (batch + 1,)), cu_ref, "cu_seqlens")
    if seq_len > 0:
        assert_bits_equal(offsets.read(np.int32, (batch * seq_len,)), offsets_ref, "token_offset")
    out = packed.read(dt, (rows, hidden))
    expected = x.reshape(-1, hidden)[offsets_ref[:tokens]]
    assert_bits_equal(out[:tokens], expected, "packed rows")
    assert_bits_equal(out[tokens:], np.zeros((rows - tokens, hidden), dtype=dt), "packed rows from T on")
    if dtype == "float32" and batch * seq_len > 0 and hidden > 0:
        ref = np.zeros((max(tokens, 1), hidden), dtype=np.float32)
        cu_cpu, offsets_cpu = np.zeros(batch + 1, np.int32), np.zeros(batch * seq_len, np.int32)
        status = lib.call("cpu_remove_padding", x, mask, 1, batch, seq_len, hidden, ref, cu_cpu, offsets_cpu)
        assert status == 0
        assert_bits_equal(out[:tokens], ref[:tokens], "packed rows against the CPU op")


def check_rebuild_padding(
    lib: Library,
    dtype: str,
    batch: int,
    seq_len: int,
    hidden: int,
    mask_kind: str,
    seed: int,
    offset: int = 0,
) -> None:
    """RebuildPadding of the layout the CPU RemovePadding makes: token rows bit-equal to the packed
    rows, padding rows exactly zero."""
    rng = np.random.default_rng(seed)
    code, dt = DTYPES[dtype]
    mask = make_mask(batch, seq_len, mask_kind, rng)
    _, offsets_ref = cpu_layout(lib, mask)
    tokens = int(mask.sum())
    packed = rng.standard_normal((tokens, hidden)).astype(dt)

    packed_buffer = lib.buffers.of("packed", packed, offset)
    offsets = lib.buffers.of("token_offset", offsets_ref)
    output = lib.buffers.empty("output", (batch, seq_len, hidden), dt, offset)
    lib.launch("emu_rebuild_padding", code, packed_buffer, offsets, tokens, batch, seq_len, hidden, output)
    check_guards(packed_buffer, offsets, output)

    out = output.read(dt, (batch, seq_len, hidden))
    expected = np.zeros((batch * seq_len, hidden), dtype=dt)
    expected[offsets_ref[:tokens]] = packed[:tokens]
    assert_bits_equal(out, expected.reshape(batch, seq_len, hidden), "padded output")
    if dtype == "float32" and batch * seq_len > 0 and hidden > 0:
        ref = np.zeros((batch, seq_len, hidden), dtype=np.float32)
        packed32 = np.ascontiguousarray(packed) if packed.size else np.zeros((1, hidden), np.float32)
        status = lib.call("cpu_rebuild_padding", packed32, offsets_ref, tokens, batch, seq_len, hidden, ref)
        assert status == 0
        assert_bits_equal(out, ref, "padded output against the CPU op")


# ---------------------------------------------------------------------------------------------------
# FusedMHA
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MhaCase:
    """Sequences of ``lengths`` tokens (0 allowed), ``heads`` x ``head_size``; the padded length S is
    ``padded_len``, by default the longest length. ``amplitude`` scales Q, K, V.

    With ``num_buckets`` > 0, a relative position bias of that many buckets and ``max_distance``
    (docs/ops.md#fusedmha) on positions counting from a random start in each sequence (left padding);
    ``position_gaps`` > 0 leaves random holes of up to that many positions between tokens. With
    ``rotary_theta``, rotary embeddings of Q and K with that base's default frequencies; with
    ``sliding_window`` >= 0, that window; both on the same positions. With ``position_span`` > 0,
    DeBERTa's disentangled terms of ``position_terms`` ("c2p" reads position_key, "p2c"
    position_query; tables of ``2 * position_span`` rows) with ``position_buckets`` (0: the distances
    themselves) and ``max_relative_positions``, on the same positions."""

    lengths: tuple[int, ...]
    heads: int
    head_size: int
    padded_len: int | None = None
    scale: float | None = None
    amplitude: float = 1.0
    num_buckets: int = 0
    max_distance: int = 128
    position_gaps: int = 0
    rotary_theta: float | None = None
    sliding_window: int = -1
    position_span: int = 0
    position_buckets: int = 0
    max_relative_positions: int = 512
    position_terms: tuple[str, ...] = ("c2p", "p2c")

    @property
    def seq_len(self) -> int:
        return self.padded_len if self.padded_len is not None else max(self.lengths, default=0)


def check_fused_mha(lib: Library, case: MhaCase, dtype: str, kernel: str, seed: int) -> None:
    """FusedMHA with the kernel ``kernel`` (MHA_KERNELS) against the CPU op on the same inputs."""
    rng = np.random.default_rng(seed)
    code, dt = DTYPES[dtype]
    batch, seq_len, d = len(case.lengths), case.seq_len, case.head_size
    hidden = case.heads * d
    tokens = sum(case.lengths)
    qkv = (rng.standard_normal((tokens, 3 * hidden)) * case.amplitude).astype(dt)
    bias = (rng.standard_normal(3 * hidden) * 0.5).astype(dt)
    scale = case.scale if case.scale is not None else 1.0 / math.sqrt(d)
    cu_seqlens = np.concatenate([[0], np.cumsum(case.lengths)]).astype(np.int32)

    biased = case.num_buckets > 0
    rotary = None if case.rotary_theta is None else rotary_frequencies(d, case.rotary_theta)
    disentangled = case.position_span > 0
    positioned = biased or rotary is not None or case.sliding_window >= 0 or disentangled
    positions = _positions(rng, case) if positioned else np.zeros(0, np.int32)
    table = (rng.standard_normal((case.num_buckets, case.heads)) * 2.0).astype(dt)
    position_tables = {
        term: (rng.standard_normal((2 * case.position_span, hidden)) * case.amplitude).astype(dt)
        for term in case.position_terms if disentangled
    }

    qkv_buffer = lib.buffers.of("qkv", qkv)
    bias_buffer = lib.buffers.of("qkv_bias", bias)
    cu = lib.buffers.of("cu_seqlens", cu_seqlens)
    context = lib.buffers.empty("context", (tokens, hidden), dt)
    buffers = [qkv_buffer, bias_buffer, cu, context]
    position_buffer = table_buffer = None
    if positioned:
        position_buffer = lib.buffers.of("positions", positions)
        buffers.append(position_buffer)
    if biased:
        table_buffer = lib.buffers.of("relative_position_bias", table)
        buffers.append(table_buffer)
    table_buffers = {
        term: lib.buffers.of("position_key" if term == "c2p" else "position_query", rows)
        for term, rows in position_tables.items()
    }
    buffers.extend(table_buffers.values())
    lib.launch(
        "emu_fused_mha", code, qkv_buffer, bias_buffer, cu, batch, seq_len, tokens, case.heads, d, scale, context,
        MHA_KERNELS[kernel], position_buffer, table_buffer, case.num_buckets, case.max_distance, rotary,
        case.sliding_window, table_buffers.get("c2p"), table_buffers.get("p2c"), case.position_span,
        case.position_buckets, case.max_relative_positions,
    )
    check_guards(*buffers)
    out = context.read(dt, (tokens, hidden))
    if tokens == 0:
        return

    qkv32 = np.ascontiguousarray(qkv.astype(np.float32))
    bias32 = np.ascontiguousarray(bias.astype(np.float32))
    ref = np.zeros((tokens, hidden), dtype=np.float32)
    table32 = np.ascontiguousarray(table.astype(np.float32))
    tables32 = {term: np.ascontiguousarray(rows.astype(np.float32)) for term, rows in position_tables.items()}
    status = lib.call(
        "cpu_fused_mha", qkv32, bias32, cu_seqlens, batch, tokens, case.heads, d, scale, ref,
        positions if positioned else None, table32 if biased else None, case.num_buckets, case.max_distance,
        rotary, case.sliding_window, tables32.get("c2p"), tables32.get("p2c"), case.position_span,
        case.position_buckets, case.max_relative_positions,
    )
    assert status == 0
    what = f"FusedMHA {dtype} {kernel} {case}"
    position_bias = {"positions": positions} if positioned else {}
    if biased:
        position_bias.update(relative_position_bias=table32, max_distance=case.max_distance)
    if rotary is not None:
        position_bias["rotary_frequencies"] = rotary
    if case.sliding_window >= 0:
        position_bias["sliding_window"] = case.sliding_window
    if disentangled:
        position_bias.update(position_buckets=case.position_buckets,
                             max_relative_positions=case.max_relative_positions)
    if dtype == "float32":
        # The float32 CPU op is the reference in the kernel's own precision, float64 the exact one.
        exact = fused_mha(qkv32, bias32, cu_seqlens, case.heads, scale, position_key=tables32.get("c2p"),
                          position_query=tables32.get("p2c"), **position_bias)
        assert_close_lowp(out, exact, ref, FP32_ATOL["fused_mha"], what)
        return
    if kernel == "fma_sm75":
        ref_lowp = rounded(ref, dtype)  # float math inside, one rounding at the output
    else:
        ref_lowp = fused_mha(qkv, bias, cu_seqlens, case.heads, scale, dt, position_key=position_tables.get("c2p"),
                             position_query=position_tables.get("p2c"), **position_bias)
    assert_close_lowp(out, ref, ref_lowp, LOWP_ATOL[dtype], what)


def _positions(rng: np.random.Generator, case: MhaCase) -> np.ndarray:
    """Each sequence's positions: a random start, then steps of 1 (plus up to ``position_gaps``)."""
    parts = []
    for length in case.lengths:
        steps = 1 + rng.integers(0, case.position_gaps + 1, size=length)
        start = int(rng.integers(0, 40))
        parts.append(start + np.cumsum(steps) - steps[0] if length else np.zeros(0, np.int64))
    return np.concatenate(parts or [np.zeros(0)]).astype(np.int32)
