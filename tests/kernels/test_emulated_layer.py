"""The host CUDA emulation itself (tests/emulation/README.md), on the sample kernels of
tests/emulation/samples.cu: warp functions, barriers, shared memory, atomics, wmma against NumPy,
float16/bfloat16 rounding against NumPy and ml_dtypes, and the misuse it must report. No GPU needed.
"""

from __future__ import annotations

import os
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest
from emulation import harness
from emulation.harness import DeviceBuffer, Library

pytestmark = pytest.mark.skipif(not harness.have_compiler(), reason="no C++ compiler for the CUDA emulation")

POISON_INT = 0x7FC07FC0
CUDA_SUCCESS = 0
CUDA_ERROR_INVALID_VALUE = 1
CUDA_ERROR_INVALID_CONFIGURATION = 9
CUDA_ERROR_ILLEGAL_ADDRESS = 700
CUDA_ERROR_ILLEGAL_INSTRUCTION = 715
CUDA_ERROR_MISALIGNED_ADDRESS = 716
CUDA_ERROR_LAUNCH_FAILURE = 719
CUDA_ERROR_NOT_SUPPORTED = 801


@pytest.fixture(scope="module")
def lib() -> Library:
    return harness.library()


def sample(lib: Library, name: str, *args) -> None:
    status = lib.call(name, *args)
    assert status == CUDA_SUCCESS, (
        f"{name}: cudaError {status}: {lib.raw('sample_last_launch_error')().decode()}"
    )


def test_warp_shuffles_and_votes(lib):
    blocks, threads = 2, 80  # two full warps and one of 16 lanes
    out = DeviceBuffer.empty("out", (blocks, threads, 10), np.int32)
    sample(lib, "sample_shuffles", out, blocks, threads)
    got = out.read(np.uint32, (blocks, threads, 10))
    for b in range(blocks):
        for t in range(threads):
            lane, base = t % 32, t - t % 32
            lanes = min(32, threads - base)

            def value(source: int) -> int:
                return 1000 * b + base + source if source < lanes else POISON_INT  # noqa: B023

            down = lane + 4 if lane + 4 < 32 else lane
            expected = [
                value(3),
                value(lane ^ 5),
                value(down),
                value(lane - 4 if lane >= 4 else lane),
                sum(1 << i for i in range(lanes) if i % 3 == 0),
                int(lanes > 7),
                int(lanes < 32),
                value(lane ^ 4),
                value((lane & ~15) + 9),
            ]
            assert got[b, t, :9].tolist() == expected, (b, t)
            if lanes == 32:
                assert got[b, t, 9] == sum(1000 * b + base + i for i in range(32))  # butterfly sum


def test_float_and_double_shuffles_keep_the_bits(lib):
    values = np.array([1.5, -0.0, np.inf, -np.inf, np.nan, 5e-324, 1e30, -3.25] * 4, dtype=np.float64)
    source = DeviceBuffer.of("in", values)
    doubles = DeviceBuffer.empty("out_double", (32,), np.float64)
    floats = DeviceBuffer.empty("out_float", (32,), np.float32)
    sample(lib, "sample_float_shuffles", source, doubles, floats)
    partner = np.arange(32) ^ 1
    harness.assert_bits_equal(doubles.read(np.float64, (32,)), values[partner], "__shfl_xor_sync of doubles")
    below = np.minimum(np.arange(32) + 1, 31)
    harness.assert_bits_equal(
        floats.read(np.float32, (32,)), values.astype(np.float32)[below], "__shfl_down_sync of floats"
    )


def test_builtin_variables_of_3d_grids_and_blocks(lib):
    grid, block = (2, 3, 2), (8, 4, 2)
    threads = int(np.prod(block))
    out = DeviceBuffer.empty("out", (int(np.prod(grid)), threads, 12), np.uint32)
    grid_array, block_array = np.array(grid, np.uint32), np.array(block, np.uint32)
    sample(lib, "sample_builtins", out, grid_array, block_array)
    got = out.read(np.uint32, (int(np.prod(grid)), threads, 12))
    for bz, by, bx in np.ndindex(grid[2], grid[1], grid[0]):
        for tz, ty, tx in np.ndindex(block[2], block[1], block[0]):
            row = got[bx + grid[0] * (by + grid[1] * bz), tx + block[0] * (ty + block[1] * tz)]
            assert row.tolist() == [tx, ty, tz, bx, by, bz, *block, *grid]


def test_syncthreads_is_a_barrier_across_warps(lib):
    blocks, rounds = 3, 200
    out = DeviceBuffer.empty("out", (blocks, 256), np.int32)
    counts = DeviceBuffer.empty("counts", (blocks, 4), np.int32)
    sample(lib, "sample_barriers", blocks, rounds, out, counts)
    assert (out.read(np.int32, (blocks, 256)) == rounds).all()  # every read saw the write of its round
    expected = [len(range(0, 256, 5)), 1, 1, 0]  # __syncthreads_count / _and / _or / _or(0)
    assert counts.read(np.int32, (blocks, 4)).tolist() == [expected] * blocks


def test_exited_threads_do_not_hold_the_barrier(lib):
    out = DeviceBuffer.empty("out", (128,), np.int32)
    sample(lib, "sample_early_exit", out)
    assert (out.read(np.int32, (128,))[:40] == 123).all()


def test_static_shared_memory_is_one_variable_per_kernel(lib):
    blocks = 4
    stale_a = DeviceBuffer.empty("stale_a", (blocks,), np.int32)
    stale_b = DeviceBuffer.empty("stale_b", (blocks,), np.int32)
    sample(lib, "sample_static_shared", blocks, stale_a, stale_b)
    for tag, stale in ((1, stale_a.read(np.int32, (blocks,))), (2, stale_b.read(np.int32, (blocks,)))):
        # Each block finds what the previous block of the same kernel left; the first block finds zero
        # (or what this kernel's last block left, should the test run twice in one process).
        assert stale[1:].tolist() == [tag * 100 + b for b in range(1, blocks)]
        assert stale[0] in (0, tag * 100 + blocks)


def test_dynamic_shared_memory_is_aligned_poisoned_and_per_block(lib):
    blocks, n = 3, 100
    values = np.arange(blocks * n, dtype=np.float32)
    source = DeviceBuffer.of("in", values)
    out = DeviceBuffer.empty("out", (blocks, n), np.float32)
    first_bits = DeviceBuffer.empty("first_bits", (blocks,), np.uint32)
    alignment = DeviceBuffer.empty("alignment", (blocks,), np.int64)
    sample(lib, "sample_dynamic_shared", source, out, first_bits, alignment, blocks, n, 0)
    assert (first_bits.read(np.uint32, (blocks,)) == POISON_INT).all()  # poisoned again for every block
    assert (alignment.read(np.int64, (blocks,)) == 0).all()
    harness.assert_bits_equal(
        out.read(np.float32, (blocks, n)), values.reshape(blocks, n)[:, ::-1], "reversed"
    )


def test_write_past_dynamic_shared_memory_is_reported(lib):
    source = DeviceBuffer.of("in", np.zeros(100, np.float32))
    scratch = [DeviceBuffer.empty(name, (100,), np.float32) for name in ("out", "bits", "alignment")]
    status = lib.call("sample_dynamic_shared", source, *scratch, 1, 100, 3)
    assert status == CUDA_ERROR_ILLEGAL_ADDRESS
    assert "outside the 400 bytes of dynamic shared memory" in lib.raw("sample_last_launch_error")().decode()


def test_atomics_are_atomic(lib):
    blocks, threads = 5, 192
    int_sum = DeviceBuffer.of("int_sum", np.zeros(1, np.int32))
    float_sum = DeviceBuffer.of("float_sum", np.zeros(1, np.float32))
    maximum = DeviceBuffer.of("maximum", np.full(1, -1, np.int32))
    wide_sum = DeviceBuffer.of("wide_sum", np.zeros(1, np.uint64))
    per_block = DeviceBuffer.empty("per_block", (blocks,), np.int32)
    sample(lib, "sample_atomics", blocks, threads, int_sum, float_sum, maximum, wide_sum, per_block)
    values = (np.arange(blocks)[:, None] * 1000 + np.arange(threads)[None, :]).reshape(-1).astype(np.int64)
    assert int_sum.read(np.int32, (1,))[0] == values.sum()
    assert float_sum.read(np.float32, (1,))[0] == 0.5 * values.size
    assert maximum.read(np.int32, (1,))[0] == ((values * 7919) % 100003).max()
    assert wide_sum.read(np.uint64, (1,))[0] == int((values << 20).sum())
    assert per_block.read(np.int32, (blocks,)).tolist() == [threads] * blocks


def _float32_product(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """c + a b in float32 with k ascending, as the emulated mma_sync sums (products are exact)."""
    out = c.astype(np.float32).copy()
    for k in range(16):
        out = out + (a[:, k : k + 1].astype(np.float32) * b[k : k + 1, :].astype(np.float32))
    return out


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("a_col_major", [False, True])
@pytest.mark.parametrize("b_col_major", [False, True])
@pytest.mark.parametrize("store_col_major", [False, True])
def test_wmma_against_numpy(lib, dtype, a_col_major, b_col_major, store_col_major):
    dt = np.dtype(np.float16) if dtype == "float16" else np.dtype(ml_dtypes.bfloat16)
    rng = np.random.default_rng(7)
    warps, scale = 2, 0.375
    a = rng.standard_normal((warps, 16, 16)).astype(dt)
    b = rng.standard_normal((warps, 16, 16)).astype(dt)
    c = rng.standard_normal((warps, 16, 16)).astype(np.float32)

    def stored(tiles: np.ndarray, col_major: bool, ld: int) -> np.ndarray:
        out = np.zeros((warps, 16, ld), dtype=tiles.dtype)
        out[:, :, :16] = tiles.transpose(0, 2, 1) if col_major else tiles
        return out

    a_buffer = DeviceBuffer.of("a", stored(a, a_col_major, 24))
    b_buffer = DeviceBuffer.of("b", stored(b, b_col_major, 24))
    c_buffer = DeviceBuffer.of("c", stored(c, False, 20))
    d_buffer = DeviceBuffer.empty("d", (warps, 16, 20), np.float32)
    sample(
        lib,
        "sample_wmma",
        1 if dtype == "float16" else 2,
        a_buffer,
        b_buffer,
        c_buffer,
        d_buffer,
        scale,
        int(a_col_major),
        int(b_col_major),
        int(store_col_major),
        warps,
    )
    harness.check_guards(a_buffer, b_buffer, c_buffer, d_buffer)
    got = d_buffer.read(np.float32, (warps, 16, 20))[:, :, :16]
    if store_col_major:
        got = got.transpose(0, 2, 1)
    for w in range(warps):
        zero = np.zeros((16, 16), np.float32)
        expected = _float32_product(a[w], b[w], zero) * np.float32(scale) + _float32_product(a[w], b[w], c[w])
        harness.assert_bits_equal(got[w], expected, f"wmma d = scale * a b + (c + a b), warp {w}")
        exact = (a[w].astype(np.float64) @ b[w].astype(np.float64)) * (1 + scale) + c[w]
        harness.assert_close(got[w], exact, atol=1e-5, rtol=1e-5, what="wmma against a float64 matmul")


def test_wmma_misaligned_pointer_is_reported(lib):
    a = DeviceBuffer.of("a", np.zeros(16 * 24, np.float16))
    d = DeviceBuffer.empty("d", (32,), np.float32)
    assert lib.call("sample_misaligned_wmma", a, d) == CUDA_ERROR_MISALIGNED_ADDRESS
    assert "wmma::load_matrix_sync" in lib.raw("sample_last_launch_error")().decode()


def test_a_missing_syncwarp_shows(lib):
    """Each lane reads the shared-memory cell its neighbour wrote: with __syncwarp the values are right;
    without, lanes run ahead of their neighbours (as they may on a GPU) and read the poisoned cells."""
    blocks = 2
    out = DeviceBuffer.empty("out", (blocks, 64), np.float32)
    sample(lib, "sample_neighbours", blocks, 1, out)
    t = np.arange(64)
    expected = (t - t % 32 + (t % 32 + 1) % 32).astype(np.float32)
    harness.assert_bits_equal(
        out.read(np.float32, (blocks, 64)), np.tile(expected, (blocks, 1)), "with __syncwarp"
    )
    out = DeviceBuffer.empty("out", (blocks, 64), np.float32)
    sample(lib, "sample_neighbours", blocks, 0, out)
    assert np.isnan(out.read(np.float32, (blocks, 64))).any()


@pytest.mark.parametrize(
    ("kind", "error", "message"),
    [
        (0, CUDA_ERROR_ILLEGAL_INSTRUCTION, "different warp functions: __shfl_xor_sync and __syncwarp"),
        (1, CUDA_ERROR_ILLEGAL_INSTRUCTION, "some lanes wait at a warp function, others at a block barrier"),
        (2, CUDA_ERROR_NOT_SUPPORTED, "partial mask"),
        (3, CUDA_ERROR_LAUNCH_FAILURE, "__trap() was called (thread (5, 0, 0))"),
        (4, CUDA_ERROR_ILLEGAL_INSTRUCTION, "different barriers"),
    ],
    ids=[
        "divergent_warp_functions",
        "warp_function_and_barrier",
        "partial_mask",
        "trap",
        "different_barriers",
    ],
)
def test_misuse_is_reported_and_the_next_launch_works(lib, kind, error, message):
    out = DeviceBuffer.empty("out", (64,), np.int32)
    assert lib.call("sample_misuse", kind, out) == error
    assert message in lib.raw("sample_last_launch_error")().decode()
    sample(lib, "sample_parameter_copies", 7, out)
    assert out.read(np.int32, (64,)).tolist() == list(range(7, 71))


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        (0, CUDA_ERROR_INVALID_CONFIGURATION),
        (1, CUDA_ERROR_INVALID_CONFIGURATION),
        (2, CUDA_ERROR_INVALID_VALUE),
    ],
    ids=["2048_threads", "grid_y_70000", "too_much_shared_memory"],
)
def test_launches_a_gpu_refuses_fail(lib, kind, error):
    assert lib.call("sample_bad_launch", kind) == error


def _special_floats() -> np.ndarray:
    """Rounding boundaries of float16 and bfloat16, subnormals, overflow, signed zeros."""
    f16_ulp_one = 2.0**-10
    values = [
        0.0,
        -0.0,
        1.0,
        1 + f16_ulp_one / 2,
        1 + 3 * f16_ulp_one / 2,
        1 + f16_ulp_one / 2 + 2**-20,
        65504.0,
        65519.99,
        65520.0,
        1e5,
        2.0**-24,
        2.0**-25,
        1.5 * 2.0**-25,
        2.0**-26,
        2.0**-14,
        2.0**-14 - 2.0**-25,
        1 + 2.0**-8,
        1 + 3 * 2.0**-8,
        1 + 2.0**-8 + 2.0**-20,
        3.3895314e38,
        3.4e38,
        1e-40,
        np.float32(np.finfo(np.float32).max),
        np.float32(np.finfo(np.float32).tiny),
        np.inf,
    ]
    values = np.array(values, dtype=np.float32)
    return np.concatenate([values, -values])


def _random_floats(rng: np.random.Generator) -> np.ndarray:
    """Random bit patterns (every exponent) and values around 1."""
    bits = rng.integers(0, 2**32, size=200_000, dtype=np.uint64).astype(np.uint32)
    return np.concatenate(
        [bits.view(np.float32), rng.standard_normal(50_000).astype(np.float32), _special_floats()]
    )


def _convert(lib: Library, name: str, values: np.ndarray, out_dtype) -> np.ndarray:
    values = np.ascontiguousarray(values)
    out = np.zeros(values.size, dtype=out_dtype)
    lib.call(name, values, out, values.size)
    return out


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_float_to_16_bit_rounds_to_nearest_even(lib, dtype):
    values = _random_floats(np.random.default_rng(11))
    name, reference = (
        ("sample_float_to_half", np.float16)
        if dtype == "float16"
        else ("sample_float_to_bfloat16", ml_dtypes.bfloat16)
    )
    got = _convert(lib, name, values, np.uint16)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = values.astype(reference).view(np.uint16)
    nan = np.isnan(values)
    assert (got[nan] == 0x7FFF).all()  # the GPU's canonical NaN
    mismatch = np.flatnonzero(got[~nan] != expected[~nan])
    assert mismatch.size == 0, (
        f"{mismatch.size} {dtype} roundings differ, e.g. {values[~nan][mismatch[0]]!r}: "
        f"{got[~nan][mismatch[0]]:#06x} != {expected[~nan][mismatch[0]]:#06x}"
    )


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_16_bit_to_float_is_exact(lib, dtype):
    every = np.arange(65536, dtype=np.uint16)
    name, reference = (
        ("sample_half_to_float", np.float16)
        if dtype == "float16"
        else ("sample_bfloat16_to_float", ml_dtypes.bfloat16)
    )
    got = _convert(lib, name, every, np.float32)
    expected = every.view(reference).astype(np.float32)
    nan = np.isnan(expected)
    assert np.isnan(got[nan]).all()
    harness.assert_bits_equal(got[~nan], expected[~nan], f"{dtype} to float")


def test_emulated_device_answers_queries_and_enforces_its_limits(lib):
    """The device cudaDeviceGetAttribute describes is configurable (here an sm_75 with 64 KiB per
    block), and a launch asking for more dynamic shared memory than it has fails as on a GPU."""
    major, minor, optin = 75, 76, 97  # cudaDevAttrComputeCapabilityMajor/Minor, MaxSharedMemoryPerBlockOptin
    lib.call("sample_set_device", 75, 64 * 1024)
    try:
        assert [lib.call("sample_device_attribute", a) for a in (major, minor, optin)] == [7, 5, 64 * 1024]
        n = 20_000  # 80 KB of floats
        source = DeviceBuffer.of("in", np.zeros(n, np.float32))
        scratch = [DeviceBuffer.empty(name, (n,), np.float32) for name in ("out", "bits", "alignment")]
        assert lib.call("sample_dynamic_shared", source, *scratch, 1, n, 0) == CUDA_ERROR_INVALID_VALUE
    finally:
        lib.call("sample_set_device", 90, 227 * 1024)
    assert [lib.call("sample_device_attribute", a) for a in (major, minor, optin)] == [9, 0, 227 * 1024]


def test_a_kernel_that_never_ends_ends_the_process_with_a_message(lib):
    """A kernel spinning on a flag nobody sets (e.g. one written by another block, which never runs
    beside it) would hang the tests: the watchdog aborts after BYTETX_EMULATION_TIMEOUT_S seconds."""
    script = (
        "import ctypes, numpy as np\n"
        f"lib = ctypes.CDLL({str(lib.path)!r})\n"
        "flag = np.zeros(1, np.int32)\n"
        "lib.sample_spin(ctypes.c_void_p(flag.ctypes.data))\n"
    )
    env = dict(os.environ, BYTETX_EMULATION_TIMEOUT_S="2")
    result = subprocess.run(
        [sys.executable, "-c", script], check=False, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "a launch ran for more than 2 s" in result.stderr
    assert "SpinKernel" in result.stderr or "const int*" in result.stderr
