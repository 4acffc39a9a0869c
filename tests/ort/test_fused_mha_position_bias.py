"""FusedMHA's relative position bias (MPNet's bucketed T5 bias) against the float64 NumPy reference,
whose buckets follow transformers' MPNetEncoder.relative_position_bucket.

Tolerance for the float32 kernel: atol 1e-5, rtol 1e-4, as for FusedMHA without the bias.
"""

from __future__ import annotations

import numpy as np
import pytest

import op_models
from fixtures import reference
from fixtures.masks import make_mask

ATOL = 1e-5
RTOL = 1e-4
NUM_BUCKETS = 32
MAX_DISTANCE = 128


def case(batch, seq_len, num_heads, head_size, kind, seed, num_buckets=NUM_BUCKETS):
    rng = np.random.default_rng(seed)
    feeds = reference.packed_attention_inputs(rng, make_mask(batch, seq_len, kind, seed), num_heads, head_size)
    feeds["relative_position_bias"] = (2.0 * rng.standard_normal((num_buckets, num_heads))).astype(np.float32)
    return feeds


def expected(feeds, num_heads, max_distance=MAX_DISTANCE):
    return reference.fused_mha(feeds["qkv"], feeds["qkv_bias"], feeds["cu_seqlens"], num_heads,
                               positions=feeds["positions"], relative_position_bias=feeds["relative_position_bias"],
                               max_distance=max_distance)


def test_buckets_follow_transformers():
    torch = pytest.importorskip("torch")
    from transformers.models.mpnet.modeling_mpnet import MPNetEncoder

    n = np.arange(-600, 601)
    theirs = MPNetEncoder.relative_position_bucket(-torch.tensor(n), num_buckets=NUM_BUCKETS,
                                                   max_distance=MAX_DISTANCE)
    # transformers passes key - query; ours takes query - key.
    np.testing.assert_array_equal(reference.relative_position_bucket(n, NUM_BUCKETS, MAX_DISTANCE), theirs.numpy())


@pytest.mark.parametrize(
    "batch, seq_len, num_heads, head_size, kind",
    [
        (1, 1, 1, 32, "full"),
        (1, 300, 2, 64, "full"),     # distances past max_distance and every bucket boundary
        (3, 130, 12, 32, "right"),
        (3, 65, 4, 40, "left"),
        (4, 40, 2, 64, "holes"),     # positions with gaps: the general (non-consecutive) path
        (32, 33, 2, 32, "mixed"),
    ],
)
def test_matches_reference(make_session, batch, seq_len, num_heads, head_size, kind):
    feeds = case(batch, seq_len, num_heads, head_size, kind, seed=seq_len + batch)
    session = make_session(op_models.position_bias_model(num_heads, MAX_DISTANCE))
    context = session.run(None, feeds)[0]
    np.testing.assert_allclose(context, expected(feeds, num_heads), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("num_buckets, max_distance", [(4, 2), (8, 20), (64, 40)])
def test_other_bucketings(make_session, num_buckets, max_distance):
    feeds = case(2, 90, 2, 32, "mixed", seed=num_buckets, num_buckets=num_buckets)
    session = make_session(op_models.position_bias_model(2, max_distance))
    np.testing.assert_allclose(session.run(None, feeds)[0], expected(feeds, 2, max_distance), atol=ATOL, rtol=RTOL)


def test_widely_spread_positions_with_a_huge_max_distance(make_session):
    """Positions spread further than any table the kernel builds: each pair's bucket is computed."""
    feeds = case(2, 20, 2, 32, "full", seed=7)
    feeds["positions"] = (np.arange(40, dtype=np.int64) * 300_001 - 2_000_000_000).astype(np.int32)
    max_distance = 2**31 - 1
    session = make_session(op_models.position_bias_model(2, max_distance))
    np.testing.assert_allclose(session.run(None, feeds)[0], expected(feeds, 2, max_distance), atol=ATOL, rtol=RTOL)


def test_a_sequence_is_the_same_alone_and_in_a_batch(make_session):
    feeds = case(5, 70, 2, 32, "holes", seed=3)
    session = make_session(op_models.position_bias_model(2, MAX_DISTANCE))
    batched = session.run(None, feeds)[0]
    begin, end = int(feeds["cu_seqlens"][2]), int(feeds["cu_seqlens"][3])
    alone = {**feeds, "qkv": feeds["qkv"][begin:end], "positions": feeds["positions"][begin:end],
             "cu_seqlens": np.array([0, end - begin], np.int32), "token_offset": feeds["token_offset"][2:3]}
    np.testing.assert_array_equal(session.run(None, alone)[0], batched[begin:end])


def test_zero_table_changes_nothing(make_session):
    feeds = case(3, 50, 2, 32, "mixed", seed=11)
    feeds["relative_position_bias"][:] = 0
    with_bias = make_session(op_models.position_bias_model(2, MAX_DISTANCE)).run(None, feeds)[0]
    plain = make_session(op_models.fused_mha_model(2)).run(
        None, {name: feeds[name] for name in ("qkv", "qkv_bias", "cu_seqlens", "token_offset")})[0]
    np.testing.assert_array_equal(with_bias, plain)


FEEDS = case(2, 8, 2, 32, "full", seed=0)


@pytest.mark.parametrize(
    "model_args, feeds, message",
    [
        ((2, MAX_DISTANCE, True, False), {k: v for k, v in FEEDS.items() if k != "relative_position_bias"},
         "input 'positions' is given without what reads it: 'relative_position_bias' (with which it goes together)"),
        ((2, None), FEEDS, "input 'relative_position_bias' needs the attribute 'relative_position_max_distance'"),
        ((2, MAX_DISTANCE), {**FEEDS, "relative_position_bias": FEEDS["relative_position_bias"][:31]},
         "must have an even number of buckets >= 4 (rows), but its shape is [31, 2]"),
        ((2, MAX_DISTANCE), {**FEEDS, "relative_position_bias": FEEDS["relative_position_bias"][:, :1]},
         "must have shape [num_buckets, num_heads] with num_heads=2, but its shape is [32, 1]"),
        ((2, MAX_DISTANCE), {**FEEDS, "positions": FEEDS["positions"][:-1]},
         "input 'positions' must have shape [T] = [16] (the rows of 'qkv'), but its shape is [15]"),
        ((2, 8), FEEDS, "attribute 'relative_position_max_distance' must exceed the 8 exact distances of 32 buckets"),
    ],
)
def test_bad_inputs_are_refused_naming_the_rule(make_session, model_args, feeds, message):
    session = make_session(op_models.position_bias_model(*model_args))
    with pytest.raises(Exception, match="FusedMHA") as error:
        session.run(None, feeds)
    assert message in str(error.value)


@pytest.mark.parametrize("max_distance, message", [
    (1, "attribute 'relative_position_max_distance' must be in [2, 2^31 - 1], but it is 1"),
    (128.0, "attribute 'relative_position_max_distance' must be an int, but it is the float 128"),
])
def test_bad_max_distance_fails_at_session_creation(make_session, max_distance, message):
    with pytest.raises(Exception) as error:
        make_session(op_models.position_bias_model(2, max_distance))
    assert message in str(error.value)
