"""FusedMHA: every CUDA attention kernel of plugins/kernels/fused_mha/ run on the CPU under the host
emulation (tests/emulation/README.md) against the CPU op of plugins/cpu/ on the same inputs. No GPU.

Each case runs every kernel that can take it: float32 through the FMA kernel (what the launcher picks),
float16 and bfloat16 through the short-sequence kernel (S <= 128) and the tiled kernel, both forced on
the same inputs, and bfloat16 through the FMA kernel that a device without bf16 tensor cores (sm_75)
runs. Tolerances: tests/emulation/checks.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from emulation import checks, harness
from emulation.checks import MhaCase
from emulation.harness import DeviceBuffer, Library

pytestmark = pytest.mark.skipif(not harness.have_compiler(), reason="no C++ compiler for the CUDA emulation")

_rng = np.random.default_rng(2024)
CASES = {
    "length1": MhaCase((1,), 2, 64),
    "wmma_tile_edges": MhaCase((15, 16, 17), 3, 32),  # 16-row fragments; FMA blocks of 16 queries
    "block_edges": MhaCase((63, 64, 65), 2, 64),  # 64-query blocks, 64-key tiles
    "d128_key_tile_edges": MhaCase((31, 32, 33, 1), 1, 128),  # 32-key tiles of D = 128 and of the FMA kernel
    "short_kernel_max": MhaCase((128, 127, 100), 2, 64),  # S = kFusedMHAShortMaxLen
    "empty_sequences": MhaCase((0, 5, 0, 0, 12, 0), 2, 64, padded_len=40),  # S above every length
    "batch64": MhaCase(tuple(int(n) for n in _rng.integers(0, 25, size=64)), 2, 32),
    "heads16": MhaCase((20, 9), 16, 32),
    "custom_scale": MhaCase((33, 7), 2, 64, scale=0.3),
    "large_scores": MhaCase((70, 20), 1, 64, amplitude=8.0),  # |scores| ~ 100: the max subtraction matters
    "no_tokens": MhaCase((0, 0), 1, 32, padded_len=8),
    "long": MhaCase((129, 300), 1, 64),  # past the short kernel: tiled and FMA only
    "long_d128": MhaCase((257,), 2, 128),
    "max_length": MhaCase((1024,), 1, 64),
    # The relative position bias (MPNet's 32 buckets, max distance 128): distances 0 to 7 exact, the
    # logarithmic buckets from 8, the last bucket of each direction from 128 on.
    "position_bias_exact_edge": MhaCase((7, 8, 9, 1), 2, 32, num_buckets=32),
    "position_bias_log_buckets": MhaCase((17, 40, 64), 2, 64, num_buckets=32),
    "position_bias_max_distance": MhaCase((127, 128, 129, 200), 2, 64, num_buckets=32),
    "position_bias_holes": MhaCase((50, 33), 2, 64, num_buckets=32, position_gaps=5),
    "position_bias_d128": MhaCase((65, 3), 1, 128, num_buckets=32, position_gaps=2),
    "position_bias_few_buckets": MhaCase((30, 0, 12), 3, 32, num_buckets=4, max_distance=3),
    # ModernBERT's rotary embeddings (local and global bases) and sliding window: windows shorter and
    # longer than the sequences, edges at the 32- and 64-key tiles, whole key tiles outside a query's
    # window (the online softmax's fully masked tiles), holes counting toward the distance.
    "rotary": MhaCase((17, 64, 1), 2, 64, rotary_theta=10000.0),
    "rotary_global_d32": MhaCase((100, 31), 2, 32, rotary_theta=160000.0),
    "rotary_d128": MhaCase((40, 3), 1, 128, rotary_theta=10000.0, position_gaps=3),
    "window_short": MhaCase((200, 90, 5), 2, 64, sliding_window=16),
    "window_tile_edge": MhaCase((130, 33), 2, 32, sliding_window=32),
    "window_longer_than_sequences": MhaCase((20, 60), 2, 64, sliding_window=64),
    "window_zero": MhaCase((40, 1), 1, 64, sliding_window=0),
    "window_holes": MhaCase((150,), 2, 64, sliding_window=20, position_gaps=4),
    "rotary_window": MhaCase((300, 65), 2, 64, rotary_theta=10000.0, sliding_window=64),
    "rotary_window_bias": MhaCase((80, 129), 2, 32, rotary_theta=10000.0, sliding_window=24, num_buckets=32),
    # DeBERTa's disentangled terms. v3's 256 buckets over 512 positions: exact distances to 128, log
    # buckets past it. 8 buckets over 32 positions: the log buckets from distance 5 and, past 31, buckets
    # beyond the table that clamp to its last row. No buckets: the distances themselves, clamped at the
    # span. Then each term alone, holes, the window, and 128-wide heads (the tiled kernel's largest
    # shared memory).
    "disentangled_v3": MhaCase((17, 64, 1, 100), 2, 64, position_span=256, position_buckets=256),
    "disentangled_v3_long": MhaCase((300, 129), 1, 64, position_span=256, position_buckets=256),
    "disentangled_bucket_edges": MhaCase((4, 5, 6, 33, 40), 2, 32, position_span=8, position_buckets=8,
                                         max_relative_positions=32),
    "disentangled_no_buckets": MhaCase((10, 17, 40), 2, 32, position_span=16),
    "disentangled_c2p_only": MhaCase((65, 3), 2, 64, position_span=16, position_buckets=16,
                                     max_relative_positions=64, position_terms=("c2p",)),
    "disentangled_p2c_holes": MhaCase((50, 20), 2, 64, position_span=8, position_buckets=8, max_relative_positions=32,
                                      position_gaps=3, position_terms=("p2c",)),
    "disentangled_window": MhaCase((130, 7), 2, 32, position_span=32, position_buckets=32, max_relative_positions=128,
                                   sliding_window=16),
    "disentangled_d128": MhaCase((70, 33), 1, 128, position_span=16, position_buckets=16, max_relative_positions=64),
}
# The trailing arguments of emu_fused_mha without the disentangled terms.
NO_DISENTANGLED = (None, None, 0, 0, 0)
VARIANTS = [
    ("float32", "auto"),
    ("float16", "short"),
    ("float16", "tiled"),
    ("bfloat16", "short"),
    ("bfloat16", "tiled"),
    ("bfloat16", "fma_sm75"),
]


def _params():
    for name, case in CASES.items():
        for dtype, kernel in VARIANTS:
            if kernel == "short" and case.seq_len > 128:
                continue
            yield pytest.param(case, dtype, kernel, id=f"{name}-{dtype}-{kernel}")


@pytest.mark.parametrize(("case", "dtype", "kernel"), list(_params()))
def test_fused_mha(lib, case, dtype, kernel):
    checks.check_fused_mha(lib, case, dtype, kernel, seed=sum(case.lengths) + case.heads)


@pytest.mark.parametrize(
    ("dtype", "seq_len", "head_size", "expected"),
    [
        ("float16", 1, 64, "short"),
        ("float16", 128, 128, "short"),
        ("float16", 129, 32, "tiled"),
        ("bfloat16", 128, 64, "short"),
        ("bfloat16", 129, 64, "tiled"),
        ("float32", 16, 64, "tiled"),
    ],
)
def test_kernel_choice_on_the_emulated_sm90(lib, dtype, seq_len, head_size, expected):
    """kAuto on the emulated device (sm_90, 227 KiB per block), as in docs/kernels.md."""
    choice = lib.call(
        "emu_fused_mha_selected", checks.DTYPES[dtype][0], seq_len, head_size, checks.MHA_KERNELS["auto"]
    )
    assert choice == checks.MHA_KERNELS[expected]


def _launch(
    lib: Library,
    dtype: str,
    kernel: str,
    lengths: tuple[int, ...],
    seq_len: int,
    heads: int,
    head_size: int,
    qkv_offset: int = 0,
) -> tuple[int, list[DeviceBuffer]]:
    code, dt = checks.DTYPES[dtype]
    tokens, hidden = sum(lengths), heads * head_size
    qkv = lib.buffers.of("qkv", np.ones((tokens, 3 * hidden), dt), qkv_offset)
    bias = lib.buffers.of("qkv_bias", np.zeros(3 * hidden, dt))
    cu = lib.buffers.of("cu_seqlens", np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    context = lib.buffers.empty("context", (tokens, hidden), dt)
    status = lib.call(
        "emu_fused_mha", code, qkv, bias, cu, len(lengths), seq_len, tokens, heads, head_size,
        1 / math.sqrt(head_size), context, checks.MHA_KERNELS[kernel], None, None, 0, 0, None, -1, *NO_DISENTANGLED,
    )
    return status, [qkv, bias, cu, context]


@pytest.mark.parametrize(
    ("dtype", "kernel", "lengths", "seq_len", "head_size", "qkv_offset"),
    [
        ("float16", "auto", (4,), 4, 40, 0),  # head size 40
        ("float16", "short", (129,), 129, 64, 0),  # short kernel past S = 128
        ("float16", "auto", (4,), 4, 64, 8),  # qkv not 16-byte aligned
        ("float16", "fma_sm75", (4,), 4, 64, 0),  # fp16 always has tensor cores: no FMA kernel
    ],
    ids=["head_size_40", "short_past_128", "misaligned_qkv", "fp16_fma"],
)
def test_launcher_refuses(lib, dtype, kernel, lengths, seq_len, head_size, qkv_offset):
    status, _ = _launch(lib, dtype, kernel, lengths, seq_len, 2, head_size, qkv_offset)
    assert status == 1  # cudaErrorInvalidValue


def test_launcher_refuses_a_missing_bias(lib):
    code, dt = checks.DTYPES["float16"]
    qkv = lib.buffers.of("qkv", np.ones((4, 3 * 64), dt))
    cu = lib.buffers.of("cu_seqlens", np.array([0, 4], np.int32))
    context = lib.buffers.empty("context", (4, 64), dt)
    status = lib.call(
        "emu_fused_mha", code, qkv, None, cu, 1, 4, 4, 1, 64, 0.125, context, checks.MHA_KERNELS["auto"], None, None, 0, 0,
        None, -1, *NO_DISENTANGLED,
    )
    assert status == 1  # cudaErrorInvalidValue


def launch_one_fp16_sequence(lib, positions=None, bias_table=None, num_buckets=0, max_distance=0, frequencies=None,
                              window=-1, disentangled=NO_DISENTANGLED):
    """The launcher's status for one float16 sequence of 4 tokens, one head of 64, with these position features."""
    code, dt = checks.DTYPES["float16"]
    qkv = lib.buffers.of("qkv", np.ones((4, 3 * 64), dt))
    bias = lib.buffers.of("qkv_bias", np.zeros(3 * 64, dt))
    cu = lib.buffers.of("cu_seqlens", np.array([0, 4], np.int32))
    context = lib.buffers.empty("context", (4, 64), dt)
    positions = lib.buffers.of("positions", positions) if positions is not None else None
    bias_table = lib.buffers.of("relative_position_bias", bias_table) if bias_table is not None else None
    return lib.call(
        "emu_fused_mha", code, qkv, bias, cu, 1, 4, 4, 1, 64, 0.125, context, checks.MHA_KERNELS["auto"],
        positions, bias_table, num_buckets, max_distance, frequencies, window, *disentangled,
    )


@pytest.mark.parametrize(
    ("num_buckets", "max_distance", "with_positions", "with_table"),
    [(32, 128, False, True), (32, 128, True, False), (5, 128, True, True), (32, 8, True, True)],
    ids=["no_positions", "no_table", "odd_buckets", "max_distance_within_exact"],
)
def test_launcher_refuses_a_bad_position_bias(lib, num_buckets, max_distance, with_positions, with_table):
    status = launch_one_fp16_sequence(
        lib, positions=np.arange(4, dtype=np.int32) if with_positions else None,
        bias_table=np.zeros((num_buckets, 1), np.float16) if with_table else None,
        num_buckets=num_buckets, max_distance=max_distance,
    )
    assert status == 1  # cudaErrorInvalidValue


@pytest.mark.parametrize(("rotary", "window"), [(True, -1), (False, 4), (False, -2)],
                         ids=["rotary_without_positions", "window_without_positions", "window_below_minus_one"])
def test_launcher_refuses_bad_position_features(lib, rotary, window):
    status = launch_one_fp16_sequence(
        lib, positions=np.arange(4, dtype=np.int32) if window < -1 else None,
        frequencies=np.ones(32, np.float32) if rotary else None, window=window,
    )
    assert status == 1  # cudaErrorInvalidValue


@pytest.mark.parametrize(
    ("span", "buckets", "with_positions", "terms"),
    [(8, 8, False, ("c2p", "p2c")), (8, 8, True, ()), (8, -2, True, ("c2p",)), (8, 2, True, ("c2p",)),
     (8, 7, True, ("p2c",)), (2**30, 0, True, ("p2c",))],
    ids=["no_positions", "no_table", "negative_buckets", "two_buckets", "odd_buckets", "span_past_int32_rows"],
)
def test_launcher_refuses_bad_disentangled_terms(lib, span, buckets, with_positions, terms):
    tables = {term: lib.buffers.of(term, np.zeros((16, 64), np.float16)) for term in terms}
    status = launch_one_fp16_sequence(
        lib, positions=np.arange(4, dtype=np.int32) if with_positions else None,
        disentangled=(tables.get("c2p"), tables.get("p2c"), span, buckets, 32),
    )
    assert status == 1  # cudaErrorInvalidValue


def test_disentangled_tiled_kernel_needs_the_shared_memory(lib):
    """128-wide heads keep their queries in shared memory beside the tiled kernel's tiles: 78 KiB, more than
    an sm_75 has per block, so the launcher refuses there rather than fail the launch."""
    code, dt = checks.DTYPES["float16"]
    qkv = lib.buffers.of("qkv", np.ones((4, 3 * 128), dt))
    bias = lib.buffers.of("qkv_bias", np.zeros(3 * 128, dt))
    cu = lib.buffers.of("cu_seqlens", np.array([0, 4], np.int32))
    context = lib.buffers.empty("context", (4, 128), dt)
    positions = lib.buffers.of("positions", np.arange(4, dtype=np.int32))
    table = lib.buffers.of("position_key", np.zeros((16, 128), dt))
    arguments = (
        "emu_fused_mha", code, qkv, bias, cu, 1, 4, 4, 1, 128, 0.125, context, checks.MHA_KERNELS["tiled"],
        positions, None, 0, 0, None, -1, table, None, 8, 8, 32,
    )
    lib.call("sample_set_device", 75, 64 * 1024)
    try:
        assert lib.call(*arguments) == 1  # cudaErrorInvalidValue
    finally:
        lib.call("sample_set_device", 90, 227 * 1024)
    assert lib.call(*arguments) == 0


@pytest.mark.parametrize(
    ("dtype", "kernel", "num_buckets", "rotary_window"),
    [
        ("float32", "auto", 0, False),
        ("float16", "short", 0, False),
        ("float16", "tiled", 0, False),
        ("bfloat16", "fma_sm75", 0, False),
        ("float32", "auto", 32, False),
        ("float16", "short", 32, False),
        ("bfloat16", "tiled", 32, False),
        ("float32", "auto", 0, True),
        ("float16", "short", 0, True),
        ("bfloat16", "tiled", 32, True),
        ("float32", "auto", -1, False),
        ("float16", "short", -1, False),
        ("bfloat16", "tiled", -1, False),
        ("bfloat16", "fma_sm75", -1, False),
    ],
)
def test_broken_cu_seqlens_stay_in_bounds(lib, dtype, kernel, num_buckets, rotary_window):
    """cu_seqlens the host cannot check (a length above S, a sequence past the rows of qkv): the kernels
    clamp them, so results are unspecified but no memory outside the tensors is written; with the
    position features, positions are read only for rows of the clamped sequences. num_buckets -1: the
    disentangled terms instead of the bias."""
    code, dt = checks.DTYPES[dtype]
    seq_len, rows, heads, head_size = 16, 40, 2, 32
    qkv = lib.buffers.of("qkv", np.ones((rows, 3 * heads * head_size), dt))
    bias = lib.buffers.of("qkv_bias", np.zeros(3 * heads * head_size, dt))
    cu = lib.buffers.of("cu_seqlens", np.array([0, 30, 36, 90], np.int32))
    context = lib.buffers.empty("context", (rows, heads * head_size), dt)
    buffers = [qkv, bias, cu, context]
    positions = table = None
    disentangled = NO_DISENTANGLED
    if num_buckets or rotary_window:
        positions = lib.buffers.of("positions", np.arange(rows, dtype=np.int32) * 7)
        buffers.append(positions)
    if num_buckets > 0:
        table = lib.buffers.of("relative_position_bias", np.ones((num_buckets, heads), dt))
        buffers.append(table)
    if num_buckets < 0:
        tables = [lib.buffers.of(name, np.ones((16, heads * head_size), dt)) for name in ("position_key", "position_query")]
        buffers.extend(tables)
        disentangled = (*tables, 8, 8, 32)
    frequencies = np.linspace(1.0, 1e-4, head_size // 2).astype(np.float32) if rotary_window else None
    lib.launch(
        "emu_fused_mha", code, qkv, bias, cu, 3, seq_len, rows, heads, head_size, 0.5, context,
        checks.MHA_KERNELS[kernel], positions, table, max(num_buckets, 0), 128, frequencies,
        20 if rotary_window else -1, *disentangled,
    )
    harness.check_guards(*buffers)
