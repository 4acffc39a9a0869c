"""Request validation, packing and splitting of the serving path (bytetx.serving.requests), with no server."""

from __future__ import annotations

import numpy as np
import pytest

from bytetx.serving.requests import ModelLimits, RequestError, Sequence, check_sequence, pack, split

LIMITS = ModelLimits(vocab_size=100, max_length=16, type_vocab_size=2)


def ids(*values, dtype=np.int64):
    return np.array([values], dtype=dtype)


@pytest.mark.parametrize("tensor,types,message", [
    (None, None, "'input_ids' is missing"),
    (ids(1, 2, dtype=np.int32), None, "must be INT64, got int32"),
    (np.arange(3, dtype=np.int64), None, r"shape \[1, L\].*got \[3\]"),
    (np.ones((2, 3), np.int64), None, r"one sequence per request\), got \[2, 3\]"),
    (np.zeros((1, 0), np.int64), None, "empty \\(length 0\\)"),
    (np.ones((1, 17), np.int64), None, "17 tokens; the model's positions allow at most 16"),
    (ids(5, 100, 7), None, r"'input_ids'\[0, 1\] = 100 is outside the vocabulary \(size 100\)"),
    (ids(5, -1, -2), None, r"'input_ids'\[0, 1\] = -1 is negative; 2 such tokens"),
    (ids(5, 6), ids(0), r"'token_type_ids' has shape \[1, 1\], input_ids has \[1, 2\]"),
    (ids(5, 6), ids(0, 2), r"'token_type_ids'\[0, 1\] = 2 is outside the token types"),
])
def test_malformed_requests_are_named(tensor, types, message):
    with pytest.raises(RequestError, match=message):
        check_sequence(tensor, types, LIMITS)


def test_token_types_to_a_model_without_them():
    with pytest.raises(RequestError, match="takes no token types"):
        check_sequence(ids(1, 2), ids(0, 0), ModelLimits(vocab_size=10))


def test_longest_and_shortest_sequences_are_accepted():
    for length in (1, 16):
        sequence = check_sequence(np.full((1, length), 99, np.int64), None, LIMITS)
        assert sequence.ids.shape == (length,) and sequence.types is None


def test_pack_concatenates_and_split_returns_each_sequence():
    sequences = [Sequence(np.array([1, 2, 3]), np.array([0, 1, 1])), Sequence(np.array([4]), None),
                 Sequence(np.array([5, 6]), None)]
    feeds = pack(sequences, with_types=True)
    np.testing.assert_array_equal(feeds["input_ids"], [1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(feeds["token_type_ids"], [0, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(feeds["cu_seqlens"], [0, 3, 4, 6])
    assert feeds["cu_seqlens"].dtype == np.int32 and feeds["max_seqlen"].shape == (3,)
    hidden = np.arange(12, dtype=np.float32).reshape(6, 2)
    sentence = np.arange(6, dtype=np.float32).reshape(3, 2)
    parts = split(hidden, sentence, feeds["cu_seqlens"])
    assert [p[0].shape for p in parts] == [(1, 3, 2), (1, 1, 2), (1, 2, 2)]
    np.testing.assert_array_equal(parts[2][0][0], hidden[4:6])
    np.testing.assert_array_equal(parts[1][1], sentence[1:2])
    assert "token_type_ids" not in pack(sequences, with_types=False)


def test_limits_from_metadata():
    limits = ModelLimits.from_metadata({"bytetx_vocab_size": "30522", "bytetx_max_length": "512"})
    assert limits == ModelLimits(30522, 512, None)
    with pytest.raises(ValueError, match="not a bytetx packed-input model"):
        ModelLimits.from_metadata({})
