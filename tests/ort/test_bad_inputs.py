"""Malformed inputs fail the run with a message naming the op, the input and the rule; the session
keeps serving afterwards. Bad attributes fail at session creation."""

from __future__ import annotations

import numpy as np
import pytest

import op_models

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 4, 8)).astype(np.float32)
MASK = np.array([[1, 1, 0, 1], [0, 1, 1, 1]], np.int64)

NUM_HEADS = 2
QKV = RNG.standard_normal((8, 3 * 16)).astype(np.float32)
BIAS = RNG.standard_normal(3 * 16).astype(np.float32)
CU_SEQLENS = np.array([0, 4, 8], np.int32)
TOKEN_OFFSET = np.arange(8, dtype=np.int32).reshape(2, 4)
ATTENTION = {"qkv": QKV, "qkv_bias": BIAS, "cu_seqlens": CU_SEQLENS, "token_offset": TOKEN_OFFSET}

PACKED = RNG.standard_normal((6, 8)).astype(np.float32)
REBUILD = {"packed": PACKED, "token_offset": np.array([[0, 1, 3, 5], [6, 7, 2, 4]], np.int32)}


def remove_padding_model(mask_type=op_models.INT64):
    return lambda: op_models.remove_padding_model(mask_type)


CASES = {
    # name: (model factory, good feeds or None, bad feeds, substrings the message must contain)
    "mask of wrong shape": (
        remove_padding_model(), {"input": X, "attention_mask": MASK},
        {"input": X, "attention_mask": np.ones((2, 5), np.int64)},
        ["input 'attention_mask' must have shape [B, S] = [2, 4]", "its shape is [2, 5]"],
    ),
    "mask of wrong rank": (
        remove_padding_model(), {"input": X, "attention_mask": MASK},
        {"input": X, "attention_mask": np.ones(8, np.int64)},
        ["input 'attention_mask' must have rank 2 ([B, S])", "its shape is [8]"],
    ),
    "float mask": (
        remove_padding_model(op_models.FLOAT), None,  # this model has no valid input
        {"input": X, "attention_mask": MASK.astype(np.float32)},
        ["input 'attention_mask' must be int64 or int32, but it is float32"],
    ),
    "input not rank 3": (
        remove_padding_model(), {"input": X, "attention_mask": MASK},
        {"input": X.reshape(8, 8), "attention_mask": MASK},
        ["RemovePadding: input 'input' must have rank 3 ([B, S, H])"],
    ),
    "cu_seqlens decreasing": (
        lambda: op_models.fused_mha_model(NUM_HEADS), ATTENTION,
        {
            **ATTENTION,
            "cu_seqlens": np.array([0, 4, 3, 8], np.int32),
            "token_offset": np.zeros((3, 5), np.int32),
        },
        ["FusedMHA: input 'cu_seqlens' must be non-decreasing, but cu_seqlens[2]=3 < cu_seqlens[1]=4"],
    ),
    "cu_seqlens[0] not 0": (
        lambda: op_models.fused_mha_model(NUM_HEADS), ATTENTION,
        {**ATTENTION, "cu_seqlens": np.array([1, 4, 8], np.int32)},
        ["input 'cu_seqlens' must start at 0, but cu_seqlens[0]=1"],
    ),
    "cu_seqlens[B] not T": (
        lambda: op_models.fused_mha_model(NUM_HEADS), ATTENTION,
        {**ATTENTION, "cu_seqlens": np.array([0, 4, 7], np.int32)},
        ["input 'cu_seqlens' must end at the number of packed tokens T=8, but cu_seqlens[2]=7"],
    ),
    "length above S": (
        lambda: op_models.fused_mha_model(NUM_HEADS), ATTENTION,
        {**ATTENTION, "cu_seqlens": np.array([0, 5, 8], np.int32)},
        ["input 'cu_seqlens' gives sequence 0 length 5", "more than the padded length S=4"],
    ),
    "cu_seqlens not [B + 1]": (
        lambda: op_models.fused_mha_model(NUM_HEADS), ATTENTION,
        {**ATTENTION, "cu_seqlens": np.array([0, 8], np.int32)},
        ["input 'cu_seqlens' must have shape [B + 1] = [3]", "its shape is [2]"],
    ),
    "qkv width not divisible by 3 * num_heads": (
        lambda: op_models.fused_mha_model(NUM_HEADS), ATTENTION,
        {**ATTENTION, "qkv": QKV[:, :45], "qkv_bias": BIAS[:45]},
        ["FusedMHA: input 'qkv' must have width 3 * H with H a multiple of num_heads=2", "[8, 45]"],
    ),
    "bias of wrong size": (
        lambda: op_models.fused_mha_model(NUM_HEADS), ATTENTION,
        {**ATTENTION, "qkv_bias": BIAS[:16]},
        ["input 'qkv_bias' must have shape [3 * H] = [48]", "its shape is [16]"],
    ),
    "qkv not rank 2": (
        lambda: op_models.fused_mha_model(NUM_HEADS), ATTENTION,
        {**ATTENTION, "qkv": QKV.reshape(2, 4, 48)},
        ["input 'qkv' must have rank 2 ([T, 3 * H])"],
    ),
    "token_offset not rank 2 (FusedMHA)": (
        lambda: op_models.fused_mha_model(NUM_HEADS), ATTENTION,
        {**ATTENTION, "token_offset": TOKEN_OFFSET.reshape(-1)},
        ["FusedMHA: input 'token_offset' must have rank 2 ([B, S])"],
    ),
    "token_offset out of range": (
        op_models.rebuild_padding_model, REBUILD,
        {**REBUILD, "token_offset": np.array([[0, 8, 3, 5], [6, 7, 2, 4]], np.int32)},
        ["RebuildPadding: input 'token_offset' entries t < T must lie in [0, B * S=8)", "token_offset[1]=8"],
    ),
    "token_offset negative": (
        op_models.rebuild_padding_model, REBUILD,
        {**REBUILD, "token_offset": np.array([[0, 1, 3, 5], [6, -1, 2, 4]], np.int32)},
        ["input 'token_offset' entries t < T must lie in [0, B * S=8)", "token_offset[5]=-1"],
    ),
    "token_offset repeated": (
        op_models.rebuild_padding_model, REBUILD,
        {**REBUILD, "token_offset": np.array([[0, 1, 3, 5], [1, 7, 2, 4]], np.int32)},
        ["input 'token_offset' entries t < T must be distinct, but token_offset[4]=token_offset[1]=1"],
    ),
    "more tokens than slots": (
        op_models.rebuild_padding_model, REBUILD,
        {**REBUILD, "packed": np.zeros((9, 8), np.float32)},
        ["more packed tokens (T=9) than padded slots in 'token_offset' (B * S=8)"],
    ),
    "packed not rank 2": (
        op_models.rebuild_padding_model, REBUILD,
        {**REBUILD, "packed": PACKED.reshape(-1)},
        ["RebuildPadding: input 'packed' must have rank 2 ([T, H])"],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_fails_the_run_and_session_survives(make_session, case):
    model, good, bad, expected = CASES[case]
    session = make_session(model())
    before = session.run(None, good) if good else []
    with pytest.raises(Exception) as error:
        session.run(None, bad)
    for text in expected:
        assert text in str(error.value)
    after = session.run(None, good) if good else []
    for x, y in zip(before, after):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(
    "num_heads, scale, expected",
    [
        (None, None, "FusedMHA: attribute 'num_heads' (int) is required"),
        (0, None, "FusedMHA: attribute 'num_heads' must be >= 1, but it is 0"),
        (-3, None, "attribute 'num_heads' must be >= 1, but it is -3"),
        (2, 1, "FusedMHA: attribute 'scale' must be a float, but it is the int 1"),
    ],
)
def test_bad_attributes_fail_session_creation(make_session, num_heads, scale, expected):
    with pytest.raises(Exception) as error:
        make_session(op_models.fused_mha_model(num_heads, scale=scale))
    assert expected in str(error.value)


@pytest.mark.parametrize("mask_type", [op_models.INT64, op_models.INT32])
def test_nonzero_mask_values_are_tokens(make_session, mask_type):
    """As transformers reads a mask (it casts it to bool): any nonzero value is a token, on every back end,
    also an int64 value whose low 32 bits are zero."""
    session = make_session(op_models.remove_padding_model(mask_type))
    dtype = np.int64 if mask_type == op_models.INT64 else np.int32
    extreme = 2**32 if dtype == np.int64 else -(2**31)
    others = np.where(MASK == 1, np.array([[2, -1, 7, 1], [1, 3, extreme, 1]]), 0).astype(dtype)
    expected = session.run(None, {"input": X, "attention_mask": MASK.astype(dtype)})
    for got, want in zip(session.run(None, {"input": X, "attention_mask": others}), expected):
        np.testing.assert_array_equal(got, want)
