"""Writes the seed corpus of the ops fuzz harness (tests/fuzz/corpus/): one small input per situation
worth starting from, in the byte format that tests/fuzz/ops_fuzzer.cc documents.

    python tests/fuzz/make_seeds.py    # rewrites tests/fuzz/corpus/*.bin

Bytes the harness reads past the end of an input come from a generator seeded by the input, so a
seed spells only the choices that matter (case, dimensions, modes) and lets the data follow.
"""

from __future__ import annotations

import struct
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"

# Reader::Dim(): bytes below 0xB0 give b % 12, below 0xF0 b % 150, and 0xF0..0xF7 the large values
# INT32_MAX, INT32_MAX + 1, 2^32, 2^40, 46341, 65536, INT64_MAX / 4, INT64_MAX.
INT32_MAX_DIM, TWO_40_DIM, INT64_MAX_DIM = 0xF0, 0xF3, 0xF7
ONE, ZERO, BAD_MASK_2 = 0x00, 0x90, 0xFC  # mask bytes with density 0x80: 1, 0, the value 2


def dim(n: int) -> int:
    """The byte Reader::Dim() turns into n (n < 12, or 26 <= n <= 89)."""
    if n < 12:
        return n
    assert 26 <= n <= 89
    return 150 + n


def mask_bytes(rows: list[str]) -> list[int]:
    return [{"1": ONE, "0": ZERO, "2": BAD_MASK_2}[c] for row in rows for c in row]


SEEDS: dict[str, list[int]] = {
    # RemovePadding: case 0, B, S, H % 20, mask type (odd: int64), mask shape choice, density, mask.
    "remove_right_left_holes": [0, 3, 5, 8, 1, 0, 0x80] + mask_bytes(["11100", "00111", "10101"]),
    "remove_int32_empty_row": [0, 3, 4, 5, 0, 0, 0x80] + mask_bytes(["1111", "0000", "0110"]),
    "remove_mask_value_2": [0, 2, 3, 4, 1, 0, 0x80] + mask_bytes(["112", "011"]),
    "remove_mask_shape_mismatch": [0, 2, 3, 4, 1, 0xF0, 3, 2, 0x80],
    "remove_batch_2_40_empty_rows": [0, TWO_40_DIM, 0, 4, 1, 0, 0x80],
    "remove_long_rows": [0, 2, dim(89), 3, 1, 0, 0xF0],
    # FusedMHA: case 1, heads - 1, head size % 70, scale (< 0xE0: default), width (< 0xF0: 3 * H),
    # B, S, cu_seqlens mode (< 0xE0 consistent; 0xE0.. raw; 0xF0.. one entry broken; 0xF8.. other
    # length), lengths % (S + 1), special values (>= 0xF0), ... bias (< 0xB8: [3H]).
    "mha_ragged": [1, 1, 16, 0, 0, 3, 10, 0, 10, 1, 0, 0],
    "mha_long_sequence": [1, 0, 40, 0, 0, 1, dim(89), 0, 89, 0],
    "mha_odd_head_size": [1, 2, 17, 0, 0, 4, 9, 0, 9, 3, 0, 7, 0],
    "mha_no_bias_scale": [1, 3, 8, 0xE3, 0, 2, 6, 0, 6, 6, 0],
    "mha_cu_seqlens_broken": [1, 1, 8, 0, 0, 3, 6, 0xF0, 6, 2, 4, 1, 0, 0],
    "mha_cu_seqlens_raw": [1, 0, 8, 0, 0, 2, 6, 0xE0, 5, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 8],
    "mha_batch_int64_max_empty": [1, 0, 8, 0, 0, INT64_MAX_DIM, 0, 0],
    "mha_width_not_3h": [1, 1, 8, 0, 0xF0, 7, 2, 3, 0],
    "mha_special_values": [1, 0, 4, 0, 0, 2, 5, 0, 5, 5, 0xF0],
    "mha_zero_heads": [1, 0xF0, 8, 0, 0, 1, 1, 0, 1],
    # Found by the long run (a harness bug): B = 2^40 with S = 0 and an empty cu_seqlens.
    "mha_huge_batch_empty_cu_seqlens": [1, 0, 0x38, 8, 0xFD, 0xFD, 0xFD, 0, 0xF3, 0, 4, 1],
    # RebuildPadding: case 2, B, S, density, one byte per slot (below density: a token), mode
    # (0xC0..: one entry broken, 0xE0..: T from Dim(), 0xF0..: raw entries), ..., H (< 0xF0: % 24).
    "rebuild_valid": [2, 2, 4, 0x80, 0, 0, 0x90, 0, 0x90, 0, 0, 0, 0, 8],
    "rebuild_duplicate": [2, 2, 3, 0x80, 0, 0, 0, 0x90, 0, 0, 0xC0, 1, 5, 4],
    "rebuild_out_of_range": [2, 2, 3, 0x80, 0, 0, 0, 0, 0, 0, 0xC0, 2, 1, 4],
    "rebuild_more_tokens_than_slots": [2, 1, 2, 0x80, 0, 0, 0xE0, 5, 4],
    "rebuild_huge_hidden_no_tokens": [2, 2, 4, 0x00] + [0x90] * 8 + [0, 0xF3],
    "rebuild_batch_int32_max": [2, INT32_MAX_DIM, 0, 0x80, 0, 6],
    # The three ops in a row: case 3, B % 5, S % 80, heads - 1 (% 2), head size - 1 (% 32).
    "pipeline_ragged": [3, 4, 37, 1, 15],
    "pipeline_long": [3, 2, 79, 0, 31],
    # The validators on raw 64-bit values: case 4, B and S as big-endian int64, then cu_seqlens.
    "validators_overflowing_product": [4] + list(struct.pack(">qq", 2**31, 2**31)),
    "validators_negative": [4] + list(struct.pack(">qq", -1, 5)) + [3],
}


def main() -> None:
    CORPUS.mkdir(exist_ok=True)
    for old in CORPUS.glob("*.bin"):
        old.unlink()
    for name, data in SEEDS.items():
        (CORPUS / f"{name}.bin").write_bytes(bytes(data))
    print(f"wrote {len(SEEDS)} seeds to {CORPUS}")


if __name__ == "__main__":
    main()
