"""FusedMHA's rotary embeddings of Q and K and its sliding window (ModernBERT's) against the float64
NumPy reference, whose rotary angles and window follow transformers' ModernBertRotaryEmbedding,
apply_rotary_pos_emb and bidirectional sliding window mask (checked here against transformers, with
the inverse frequencies transformers computed, as the op takes them).

Tolerance for the float32 kernel: atol 1e-5, rtol 1e-4, as for FusedMHA without them.
"""

from __future__ import annotations

import numpy as np
import pytest

import op_models
from fixtures import reference
from fixtures.masks import make_mask

ATOL = 1e-5
RTOL = 1e-4
# ModernBERT's defaults: global and local rotary bases, half of its 128-token local window.
GLOBAL_THETA = 160000.0
LOCAL_THETA = 10000.0
HALF_WINDOW = 64


def case(batch, seq_len, num_heads, head_size, kind, seed):
    rng = np.random.default_rng(seed)
    return reference.packed_attention_inputs(rng, make_mask(batch, seq_len, kind, seed), num_heads, head_size)


def frequencies(head_size, theta):
    return None if theta is None else reference.rotary_frequencies(head_size, theta)


def expected(feeds, num_heads, rotary_frequencies=None, sliding_window=None):
    return reference.fused_mha(feeds["qkv"], feeds["qkv_bias"], feeds["cu_seqlens"], num_heads,
                               positions=feeds["positions"], rotary_frequencies=rotary_frequencies,
                               sliding_window=sliding_window)


@pytest.mark.parametrize("head_size, theta", [(32, LOCAL_THETA), (64, GLOBAL_THETA), (40, LOCAL_THETA)])
def test_rotary_follows_transformers(head_size, theta):
    torch = pytest.importorskip("torch")
    from transformers import ModernBertConfig
    from transformers.models.modernbert.modeling_modernbert import ModernBertRotaryEmbedding, apply_rotary_pos_emb

    heads = 2
    config = ModernBertConfig(hidden_size=heads * head_size, num_attention_heads=heads, global_rope_theta=theta,
                              local_rope_theta=theta, max_position_embeddings=1024)
    rng = np.random.default_rng(head_size)
    positions = np.arange(700, dtype=np.int32)
    q, k = (rng.standard_normal((1, heads, len(positions), head_size)).astype(np.float32) for _ in range(2))
    rotary = ModernBertRotaryEmbedding(config)
    cos, sin = rotary(torch.from_numpy(q), torch.from_numpy(positions[None].astype(np.int64)), "full_attention")
    theirs = apply_rotary_pos_emb(torch.from_numpy(q), torch.from_numpy(k), cos, sin)
    inv_freq = rotary.full_attention_inv_freq.numpy()
    # The defaults up to the last bits of pow, which the op never computes: it takes inv_freq as given.
    np.testing.assert_allclose(reference.rotary_frequencies(head_size, theta), inv_freq, rtol=1e-6)
    our_cos, our_sin = reference.rotary_cos_sin(positions, inv_freq)
    for x, their in zip((q, k), theirs):
        ours = x * our_cos + reference.rotate_half(x) * our_sin
        np.testing.assert_allclose(ours, their.numpy(), atol=2e-6, rtol=1e-6)


def test_sliding_window_follows_transformers():
    pytest.importorskip("torch")
    from transformers.masking_utils import sliding_window_bidirectional_overlay

    theirs = sliding_window_bidirectional_overlay(HALF_WINDOW)
    n = np.arange(300)
    allowed = np.array([[bool(theirs(0, 0, i, j)) for j in n] for i in n])
    np.testing.assert_array_equal(allowed, np.abs(n[:, None] - n[None, :]) <= HALF_WINDOW)


@pytest.mark.parametrize(
    "batch, seq_len, num_heads, head_size, kind, theta, window",
    [
        (1, 1, 1, 32, "full", LOCAL_THETA, HALF_WINDOW),
        (1, 300, 2, 64, "full", LOCAL_THETA, HALF_WINDOW),    # the window inside long sequences
        (3, 130, 4, 32, "right", GLOBAL_THETA, None),         # rotary alone: ModernBERT's global layers
        (3, 65, 4, 40, "left", LOCAL_THETA, 20),              # left padding shifts every position
        (4, 90, 2, 64, "holes", LOCAL_THETA, 10),             # gaps: the window counts the padded slots
        (32, 33, 2, 32, "mixed", None, 5),                    # the window alone
        (5, 40, 2, 32, "mixed", LOCAL_THETA, 100),            # a window longer than every sequence
        (2, 50, 2, 32, "right", None, 0),                     # each query sees only itself
    ],
)
def test_matches_reference(make_session, batch, seq_len, num_heads, head_size, kind, theta, window):
    feeds = case(batch, seq_len, num_heads, head_size, kind, seed=seq_len + batch)
    rotary = frequencies(head_size, theta)
    session = make_session(op_models.rotary_window_model(num_heads, rotary, window))
    context = session.run(None, feeds)[0]
    np.testing.assert_allclose(context, expected(feeds, num_heads, rotary, window), atol=ATOL, rtol=RTOL)


def test_each_feature_changes_the_result(make_session):
    """The reference with and without each feature differs far beyond the tolerance on these inputs,
    so the comparisons above would catch a kernel that skipped one."""
    feeds = case(3, 120, 2, 32, "mixed", seed=5)
    plain = expected(feeds, 2)
    rotary = frequencies(32, LOCAL_THETA)
    for theta, window in ((rotary, None), (None, 10)):
        assert np.abs(expected(feeds, 2, theta, window) - plain).max() > 0.05
    with_both = make_session(op_models.rotary_window_model(2, rotary, 10)).run(None, feeds)[0]
    np.testing.assert_allclose(with_both, expected(feeds, 2, rotary, 10), atol=ATOL, rtol=RTOL)


def test_with_the_relative_position_bias_too(make_session):
    feeds = case(3, 140, 2, 32, "holes", seed=9)
    table = (2.0 * np.random.default_rng(1).standard_normal((32, 2))).astype(np.float32)
    rotary = frequencies(32, LOCAL_THETA)
    session = make_session(op_models.rotary_window_model(2, rotary, 30, max_distance=128))
    context = session.run(None, {**feeds, "relative_position_bias": table})[0]
    ref = reference.fused_mha(feeds["qkv"], feeds["qkv_bias"], feeds["cu_seqlens"], 2, positions=feeds["positions"],
                              relative_position_bias=table, max_distance=128, rotary_frequencies=rotary,
                              sliding_window=30)
    np.testing.assert_allclose(context, ref, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("kind, window", [("full", 3), ("right", 64), ("left", 20), ("mixed", 130)])
def test_the_keys_within_the_window_give_the_whole_rows_result_bitwise(make_session, kind, window):
    """Without a bias the CPU kernel computes each block of query rows against the keys within the
    window only; a zero bias makes it compute whole rows, adding exactly 0 to every score. Lengths up
    to 300: several row blocks, key ranges starting inside and at the start of the sequence."""
    feeds = case(4, 300, 2, 40, kind, seed=window)
    rotary = frequencies(40, LOCAL_THETA)
    ranged = make_session(op_models.rotary_window_model(2, rotary, window)).run(None, feeds)[0]
    whole = make_session(op_models.rotary_window_model(2, rotary, window, max_distance=128)).run(
        None, {**feeds, "relative_position_bias": np.zeros((32, 2), np.float32)})[0]
    np.testing.assert_array_equal(ranged, whole)
    np.testing.assert_allclose(ranged, expected(feeds, 2, rotary, window), atol=ATOL, rtol=RTOL)


def test_a_sequence_is_the_same_alone_and_in_a_batch(make_session):
    feeds = case(5, 70, 2, 32, "holes", seed=3)
    session = make_session(op_models.rotary_window_model(2, frequencies(32, LOCAL_THETA), 16))
    batched = session.run(None, feeds)[0]
    begin, end = int(feeds["cu_seqlens"][2]), int(feeds["cu_seqlens"][3])
    alone = {**feeds, "qkv": feeds["qkv"][begin:end], "positions": feeds["positions"][begin:end],
             "cu_seqlens": np.array([0, end - begin], np.int32), "token_offset": feeds["token_offset"][2:3]}
    np.testing.assert_array_equal(session.run(None, alone)[0], batched[begin:end])


FEEDS = case(2, 8, 2, 32, "full", seed=0)
ROTARY_32 = reference.rotary_frequencies(32, LOCAL_THETA)
WITHOUT_POSITIONS = {name: value for name, value in FEEDS.items() if name != "positions"}


@pytest.mark.parametrize(
    "model_args, feeds, message",
    [
        ((2, ROTARY_32, None, False), WITHOUT_POSITIONS, "the attribute 'rotary_frequencies' needs the input "
                                                          "'positions'"),
        ((2, None, 4, False), WITHOUT_POSITIONS, "the attribute 'sliding_window' needs the input 'positions'"),
        ((2, ROTARY_32, 4), {**FEEDS, "positions": FEEDS["positions"][:-1]},
         "input 'positions' must have shape [T] = [16] (the rows of 'qkv'), but its shape is [15]"),
        ((2, ROTARY_32[:15]), FEEDS, "the attribute 'rotary_frequencies' must hold head size / 2 floats, one per "
                                     "pair of columns, but it holds 15 for head size H / num_heads = 32"),
    ],
)
def test_bad_inputs_are_refused_naming_the_rule(make_session, model_args, feeds, message):
    session = make_session(op_models.rotary_window_model(*model_args))
    with pytest.raises(Exception, match="FusedMHA") as error:
        session.run(None, feeds)
    assert message in str(error.value)


@pytest.mark.parametrize("rotary, window, message", [
    ([1.0, float("nan")], None, "attribute 'rotary_frequencies' must hold finite floats, but it holds nan"),
    ([1, 2], None, "attribute 'rotary_frequencies' must be a list of floats"),
    (0.5, None, "attribute 'rotary_frequencies' must be a list of floats"),
    (None, -1, "attribute 'sliding_window' must be in [0, 2^31 - 1], but it is -1"),
    (None, 64.0, "attribute 'sliding_window' must be an int, but it is the float 64"),
])
def test_bad_attributes_fail_at_session_creation(make_session, rotary, window, message):
    with pytest.raises(Exception) as error:
        make_session(op_models.rotary_window_model(2, rotary, window))
    assert message in str(error.value)
