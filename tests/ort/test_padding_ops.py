"""RemovePadding and RebuildPadding against the NumPy reference: exact, for every mask shape."""

from __future__ import annotations

import numpy as np
import pytest

import op_models
from fixtures import reference
from fixtures.masks import MASK_KINDS, make_mask

SHAPES = [(1, 1), (1, 97), (3, 63), (3, 64), (3, 65), (32, 97), (3, 512)]


@pytest.mark.parametrize("mask_dtype", [np.int64, np.int32])
@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("batch, seq_len", SHAPES)
def test_remove_padding_matches_reference(make_session, batch, seq_len, kind, mask_dtype):
    rng = np.random.default_rng(batch * 1000 + seq_len)
    x = rng.standard_normal((batch, seq_len, 24)).astype(np.float32)
    mask = make_mask(batch, seq_len, kind, seed=seq_len, dtype=mask_dtype)
    mask_type = op_models.INT64 if mask_dtype == np.int64 else op_models.INT32
    session = make_session(op_models.remove_padding_model(mask_type))

    packed, cu_seqlens, token_offset = session.run(None, {"input": x, "attention_mask": mask})

    expected = reference.remove_padding(x, mask)
    for got, want in zip((packed, cu_seqlens, token_offset), expected):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("batch, seq_len", SHAPES)
def test_rebuild_padding_matches_reference(make_session, batch, seq_len, kind):
    mask = make_mask(batch, seq_len, kind, seed=batch + seq_len)
    _, _, token_offset = reference.remove_padding(np.zeros((batch, seq_len, 1), np.float32), mask)
    packed = np.random.default_rng(seq_len).standard_normal((int(mask.sum()), 40)).astype(np.float32)
    session = make_session(op_models.rebuild_padding_model())

    (output,) = session.run(None, {"packed": packed, "token_offset": token_offset})

    np.testing.assert_array_equal(output, reference.rebuild_padding(packed, token_offset))


@pytest.mark.parametrize("mask_dtype", [np.int64, np.int32])
@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("batch, seq_len, hidden", [(1, 97, 32), (3, 65, 768), (32, 64, 40)])
def test_round_trip_restores_valid_tokens_and_zeroes_padding(
    make_session, batch, seq_len, hidden, kind, mask_dtype
):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((batch, seq_len, hidden)).astype(np.float32)
    mask = make_mask(batch, seq_len, kind, seed=3, dtype=mask_dtype)
    x[mask == 0] = np.nan  # padding values must never be read
    mask_type = op_models.INT64 if mask_dtype == np.int64 else op_models.INT32

    session = make_session(op_models.round_trip_model(mask_type))
    (output,) = session.run(None, {"input": x, "attention_mask": mask})

    valid = mask.astype(bool)
    np.testing.assert_array_equal(output[valid], x[valid])
    assert not output[~valid].view(np.uint32).any(), "padding must be exactly +0.0"


@pytest.mark.parametrize("batch, seq_len", [(0, 5), (0, 0), (3, 0), (2, 4)])
def test_empty_batches(make_session, batch, seq_len):
    """B = 0, S = 0 and an all-zero mask all give T = 0."""
    x = np.ones((batch, seq_len, 8), np.float32)
    mask = np.zeros((batch, seq_len), np.int64)

    packed, cu_seqlens, token_offset = make_session(op_models.remove_padding_model()).run(
        None, {"input": x, "attention_mask": mask}
    )
    assert packed.shape == (0, 8)
    np.testing.assert_array_equal(cu_seqlens, np.zeros(batch + 1, np.int32))
    np.testing.assert_array_equal(token_offset.reshape(-1), np.arange(batch * seq_len, dtype=np.int32))

    (output,) = make_session(op_models.rebuild_padding_model()).run(
        None, {"packed": packed, "token_offset": token_offset}
    )
    assert output.shape == (batch, seq_len, 8) and not output.any()
