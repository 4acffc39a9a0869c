"""The emulated kernel tests catch kernel bugs: each check below compiles a copy of plugins/ in which one
kernel carries a deliberate bug (a text substitution), runs the same comparison the kernel tests make,
and requires it to FAIL, while the unmodified kernels pass it. If a kernel's source changes so that a
substitution no longer applies, the build raises and names it: update the substitution.
"""

from __future__ import annotations

import pytest
from emulation import checks, harness
from emulation.checks import MhaCase
from emulation.harness import Mutation

pytestmark = pytest.mark.skipif(not harness.have_compiler(), reason="no C++ compiler for the CUDA emulation")

RAGGED = MhaCase((63, 64, 65), 2, 64)
BIASED = MhaCase((9, 40, 70), 2, 64, num_buckets=32)
WINDOWED = MhaCase((200, 30), 2, 64, sliding_window=16)
ROTATED = MhaCase((9, 40, 70), 2, 64, rotary_theta=10000.0)

KNOWN_BAD = {
    # An index bug: RebuildPadding copies packed row T - 1 - t instead of row t.
    "rebuild_padding_wrong_row": (
        Mutation(
            "kernels/rebuild_padding/rebuild_padding_kernels.cuh",
            "t < num_tokens ? packed + t * units_per_row",
            "t < num_tokens ? packed + (num_tokens - 1 - t) * units_per_row",
        ),
        lambda lib: checks.check_rebuild_padding(lib, "float16", 5, 33, 64, "right", seed=1),
    ),
    # A masking bug at a tile edge: the tiled kernel lets one padded key past the sequence end into the
    # softmax of the last key tile.
    "fused_mha_tiled_mask_off_by_one": (
        Mutation(
            "kernels/fused_mha/tiled_kernel.cuh",
            "p[i] = j < valid ? score_row[j] : -INFINITY;",
            "p[i] = j <= valid ? score_row[j] : -INFINITY;",
        ),
        lambda lib: checks.check_fused_mha(lib, RAGGED, "float16", "tiled", seed=1),
    ),
    # A synchronization bug: the short kernel's lanes read the score rows other lanes stored with wmma
    # without the __syncwarp in between.
    "fused_mha_short_missing_syncwarp": (
        Mutation(
            "kernels/fused_mha/short_kernel.cuh",
            "warp_scores, ld);\n    __syncwarp();\n\n    const ScoreTerms",
            "warp_scores, ld);\n\n    const ScoreTerms",
        ),
        lambda lib: checks.check_fused_mha(lib, RAGGED, "bfloat16", "short", seed=1),
    ),
    # A softmax bug in the FMA kernel (float32, and bfloat16 before sm_80): the running sum is not
    # rescaled when a later key tile raises the row maximum.
    "fused_mha_fma_sum_not_rescaled": (
        Mutation(
            "kernels/fused_mha/fma_kernel.cuh",
            "row_sum[r] = row_sum[r] * alpha + WarpSum(s[r]);",
            "row_sum[r] = row_sum[r] + WarpSum(s[r]);",
        ),
        lambda lib: checks.check_fused_mha(lib, RAGGED, "float32", "auto", seed=1),
    ),
    # A direction bug in the relative position bias: the bucket of key minus query instead of query
    # minus key, which swaps the two halves of the table.
    "fused_mha_position_bias_direction": (
        Mutation(
            "kernels/fused_mha/block_tile.cuh",
            "static_cast<int64_t>(positions[q]) - positions[k];",
            "static_cast<int64_t>(positions[k]) - positions[q];",
        ),
        lambda lib: checks.check_fused_mha(lib, BIASED, "float16", "tiled", seed=1),
    ),
    # A softmax bug under the sliding window: a key tile with every key outside a query's window shifts
    # by the running maximum, -inf, and gives NaN instead of 0.
    "fused_mha_window_masked_tile": (
        Mutation(
            "kernels/fused_mha/block_tile.cuh",
            "return running_max == -INFINITY ? 0.0f : running_max;",
            "return running_max;",
        ),
        lambda lib: checks.check_fused_mha(lib, WINDOWED, "float32", "auto", seed=1),
    ),
    # A rotation bug: the first half of each rotated pair takes + sin instead of - sin.
    "fused_mha_rotary_sign": (
        Mutation(
            "kernels/fused_mha/block_tile.cuh",
            "row[c] = FromFloat<S>(x1 * cos_a - x2 * sin_a);",
            "row[c] = FromFloat<S>(x1 * cos_a + x2 * sin_a);",
        ),
        lambda lib: checks.check_fused_mha(lib, ROTATED, "bfloat16", "short", seed=1),
    ),
}


@pytest.mark.parametrize("name", KNOWN_BAD)
def test_known_bad_kernel_fails_the_comparison(name):
    mutation, check = KNOWN_BAD[name]
    check(harness.library())  # the real kernel passes
    with pytest.raises(AssertionError):
        check(harness.library(mutation))
