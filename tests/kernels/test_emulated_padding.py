"""RemovePadding and RebuildPadding: the CUDA kernels of plugins/kernels/ run on the CPU under the host
emulation (tests/emulation/README.md), against the CPU ops of plugins/cpu/ and NumPy. No GPU needed.

Everything must match bit for bit: the layout (cu_seqlens, token_offset) the CPU op's, the packed and
padded rows the gathered and scattered inputs, padding exactly zero (outputs start as NaN poison).
"""

from __future__ import annotations

import numpy as np
import pytest
from emulation import checks, harness

pytestmark = pytest.mark.skipif(not harness.have_compiler(), reason="no C++ compiler for the CUDA emulation")

DTYPES = ["float32", "float16", "bfloat16"]
# (batch, seq_len, hidden, mask kind): length 1, holes, right/left padding with an empty and a full row,
# batch 64 with an odd hidden size, rows longer than one 256-slot scan step, no token, S = 0, B = 0.
SHAPES = {
    "length1": (1, 1, 8, "full"),
    "holes": (3, 17, 12, "holes"),
    "right": (5, 33, 64, "right"),
    "left": (4, 40, 20, "left"),
    "batch64_odd_hidden": (64, 9, 5, "right"),
    "rows_over_256": (2, 300, 4, "right"),
    "no_tokens": (3, 7, 8, "empty"),
    "seq_len_0": (4, 0, 8, "full"),
    "batch_0": (0, 5, 8, "full"),
}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("mask_type", ["int32", "int64", "bits"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_remove_padding(lib, dtype, mask_type, shape):
    checks.check_remove_padding(lib, dtype, mask_type, *shape, seed=1)


@pytest.mark.parametrize(
    "shape", [SHAPES["right"], SHAPES["holes"], SHAPES["no_tokens"]], ids=["right", "holes", "no_tokens"]
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_remove_padding_into_upper_bound_rows(lib, dtype, shape):
    """packed sized by B * S (TensorRT's bound; T only on the device): rows from T on are zero."""
    checks.check_remove_padding(lib, dtype, "bits", *shape, seed=2, upper_bound=True)


@pytest.mark.parametrize(
    ("dtype", "offset"), [("float32", 4), ("float16", 2), ("bfloat16", 2), ("float16", 4)]
)
def test_remove_padding_misaligned_rows(lib, dtype, offset):
    """Pointers off 16-byte alignment: the row copies fall back to 4- or 2-byte units."""
    checks.check_remove_padding(lib, dtype, "int64", 3, 17, 12, "holes", seed=3, offset=offset)


def test_remove_padding_batch_over_1024(lib):
    """More rows than the 1024 threads of the scan: the prefix sum carries across steps."""
    checks.check_remove_padding(lib, "float32", "int64", 1030, 2, 3, "holes", seed=4)


def test_remove_padding_mask_over_one_upload(lib):
    """A bit mask of more than kMaskBitsPerLaunch (30720) slots takes two StoreMaskWordsKernel launches."""
    checks.check_remove_padding(lib, "float16", "bits", 2, 16000, 2, "right", seed=5)


@pytest.mark.parametrize(
    "shape", [s for k, s in SHAPES.items() if k != "batch_0"], ids=[k for k in SHAPES if k != "batch_0"]
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_rebuild_padding(lib, dtype, shape):
    checks.check_rebuild_padding(lib, dtype, *shape, seed=6)


@pytest.mark.parametrize(("dtype", "offset"), [("float32", 4), ("float16", 2), ("bfloat16", 2)])
def test_rebuild_padding_misaligned_rows(lib, dtype, offset):
    checks.check_rebuild_padding(lib, dtype, 3, 17, 12, "holes", seed=8, offset=offset)


def test_rebuild_padding_skips_out_of_range_offsets(lib):
    """A token_offset RemovePadding would never make: entries outside [0, B * S) are skipped without a
    stray write, every other row is still right."""
    rng = np.random.default_rng(9)
    batch, seq_len, hidden = 3, 10, 8
    mask = checks.make_mask(batch, seq_len, "right", rng)
    _, offsets = checks.cpu_layout(lib, mask)
    tokens = int(mask.sum())
    assert tokens >= 2
    packed = rng.standard_normal((tokens, hidden)).astype(np.float32)
    broken = offsets.copy()
    broken[0], broken[tokens - 1] = -5, batch * seq_len + 100
    packed_buffer = lib.buffers.of("packed", packed)
    offset_buffer = lib.buffers.of("token_offset", broken)
    output = lib.buffers.empty("output", (batch, seq_len, hidden), np.float32)
    lib.launch(
        "emu_rebuild_padding", 0, packed_buffer, offset_buffer, tokens, batch, seq_len, hidden, output
    )
    harness.check_guards(packed_buffer, offset_buffer, output)
    out = output.read(np.float32, (batch * seq_len, hidden))
    written = np.ones(batch * seq_len, dtype=bool)
    written[[offsets[0], offsets[tokens - 1]]] = False  # their rows are unspecified
    expected = np.zeros((batch * seq_len, hidden), np.float32)
    expected[offsets[1 : tokens - 1]] = packed[1 : tokens - 1]
    harness.assert_bits_equal(out[written], expected[written], "rows of valid entries")


def test_launchers_refuse_inconsistent_sizes(lib):
    assert (
        lib.call("emu_remove_padding", 0, None, None, 1, 2, 3, 4, 7, None, None, None) == 1
    )  # packed_rows > B * S
    assert lib.call("emu_rebuild_padding", 0, None, None, 7, 2, 3, 4, None) == 1  # T > B * S
