"""FusedMHA's disentangled position terms (DeBERTa-v2/v3's content-to-position and position-to-content
attention) against the float64 NumPy reference, whose buckets and terms are checked here against
transformers' make_log_bucket_position and DisentangledSelfAttention.

Tolerance for the float32 kernel: atol 1e-5, rtol 1e-4, as for FusedMHA without them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import op_models
from fixtures import reference
from fixtures.masks import make_mask

ATOL = 1e-5
RTOL = 1e-4
# DeBERTa-v3's bucketing, and smaller ones whose logarithmic buckets short sequences reach.
V3 = (256, 512)
BUCKETINGS = [V3, (32, 64), (16, 40), (0, 24)]


def case(batch, seq_len, num_heads, head_size, kind, span, seed, c2p=True, p2c=True):
    rng = np.random.default_rng(seed)
    feeds = reference.packed_attention_inputs(rng, make_mask(batch, seq_len, kind, seed), num_heads, head_size)
    hidden = num_heads * head_size
    for name, wanted in (("position_key", c2p), ("position_query", p2c)):
        if wanted:
            feeds[name] = rng.standard_normal((2 * span, hidden)).astype(np.float32)
    return feeds


def expected(feeds, num_heads, buckets, max_positions, scale=None):
    return reference.fused_mha(feeds["qkv"], feeds["qkv_bias"], feeds["cu_seqlens"], num_heads, scale=scale,
                               positions=feeds["positions"], position_key=feeds.get("position_key"),
                               position_query=feeds.get("position_query"), position_buckets=buckets,
                               max_relative_positions=max_positions)


@pytest.mark.parametrize("buckets, max_positions", BUCKETINGS[:3])
def test_buckets_follow_transformers(buckets, max_positions):
    from transformers.models.deberta_v2.modeling_deberta_v2 import make_log_bucket_position

    n = np.arange(-3 * max_positions, 3 * max_positions)
    theirs = make_log_bucket_position(torch.from_numpy(n), buckets, max_positions).to(torch.long).numpy()
    np.testing.assert_array_equal(reference.disentangled_bucket(n, buckets, max_positions), theirs)


@pytest.mark.parametrize("buckets, max_positions", BUCKETINGS)
@pytest.mark.parametrize("terms", [("c2p", "p2c"), ("c2p",), ("p2c",)])
def test_reference_follows_transformers(buckets, max_positions, terms):
    """The reference's attention probabilities against DisentangledSelfAttention's, one sequence of 300."""
    from transformers import DebertaV2Config
    from transformers.models.deberta_v2.modeling_deberta_v2 import DisentangledSelfAttention, build_relative_position

    torch.manual_seed(0)
    heads, head_size, length = 4, 8, 300
    config = DebertaV2Config(hidden_size=heads * head_size, num_attention_heads=heads, relative_attention=True,
                             position_buckets=buckets, max_relative_positions=max_positions, pos_att_type=list(terms),
                             share_att_key=buckets == 16)
    attention = DisentangledSelfAttention(config).eval()
    with torch.no_grad():
        for parameter in attention.parameters():
            parameter.normal_(std=0.3)
        span = buckets if buckets > 0 else max_positions
        x, rel_embeddings = torch.randn(1, length, heads * head_size), torch.randn(2 * span, heads * head_size)
        relative = build_relative_position(x, x, bucket_size=buckets, max_position=max_positions)
        _, probabilities = attention(x, torch.ones(1, 1, length, length, dtype=torch.bool), output_attentions=True,
                                     relative_pos=relative, rel_embeddings=rel_embeddings)
        key_proj = attention.key_proj if attention.share_att_key else getattr(attention, "pos_key_proj", None)
        query_proj = attention.query_proj if attention.share_att_key else getattr(attention, "pos_query_proj", None)
        qkv = torch.cat([attention.query_proj(x), attention.key_proj(x), attention.value_proj(x)], -1)[0].numpy()
        position_key = key_proj(rel_embeddings).numpy() if "c2p" in terms else None
        position_query = query_proj(rel_embeddings).numpy() if "p2c" in terms else None
    q, k = (qkv[:, i * 32:(i + 1) * 32].reshape(length, heads, head_size).transpose(1, 0, 2).astype(np.float64)
            for i in (0, 1))
    scores = (q @ k.transpose(0, 2, 1) + reference.disentangled_terms(
        q, k, np.arange(length), position_key, position_query, buckets, max_positions)) / np.sqrt(
        head_size * (1 + len(terms)))
    ours = np.exp(scores - scores.max(-1, keepdims=True))
    ours /= ours.sum(-1, keepdims=True)
    np.testing.assert_allclose(ours, probabilities[0].numpy(), atol=2e-6, rtol=0)


@pytest.mark.parametrize(
    "batch, seq_len, num_heads, head_size, kind, bucketing, terms",
    [
        (1, 1, 1, 32, "full", V3, ("c2p", "p2c")),
        (1, 300, 2, 64, "full", V3, ("c2p", "p2c")),          # DeBERTa-v3: beyond the exact distances
        (3, 130, 4, 32, "right", (32, 64), ("c2p", "p2c")),   # beyond max_relative_positions
        (3, 65, 4, 40, "left", (16, 40), ("c2p",)),           # left padding shifts every position alike
        (4, 90, 2, 64, "holes", (16, 40), ("p2c",)),          # gaps widen the distances across them
        (32, 33, 2, 32, "mixed", (0, 24), ("c2p", "p2c")),    # no buckets: distances clamped to the span
    ],
)
def test_matches_reference(make_session, batch, seq_len, num_heads, head_size, kind, bucketing, terms):
    buckets, max_positions = bucketing
    span = buckets if buckets > 0 else max_positions
    feeds = case(batch, seq_len, num_heads, head_size, kind, span, seed=seq_len + batch,
                 c2p="c2p" in terms, p2c="p2c" in terms)
    scale = 1.0 / np.sqrt(head_size * (1 + len(terms)))
    session = make_session(op_models.disentangled_model(num_heads, buckets, max_positions, "c2p" in terms,
                                                        "p2c" in terms, scale=scale))
    context = session.run(None, feeds)[0]
    np.testing.assert_allclose(context, expected(feeds, num_heads, buckets, max_positions, scale), atol=ATOL,
                               rtol=RTOL)


def test_the_terms_change_the_result(make_session):
    """Far beyond the tolerance on these inputs, so the comparisons above would catch a kernel that
    skipped a term or took the other one's bucket."""
    feeds = case(3, 120, 2, 32, "mixed", 256, seed=5)
    plain = reference.fused_mha(feeds["qkv"], feeds["qkv_bias"], feeds["cu_seqlens"], 2)
    for term in ("position_key", "position_query"):
        alone = {**feeds, term: np.zeros_like(feeds[term])}
        assert np.abs(expected(alone, 2, *V3) - expected(feeds, 2, *V3)).max() > 0.05
    assert np.abs(expected(feeds, 2, *V3) - plain).max() > 0.05


def test_a_sequence_is_the_same_alone_and_in_a_batch(make_session):
    feeds = case(5, 70, 2, 32, "holes", 16, seed=3)
    session = make_session(op_models.disentangled_model(2, 16, 40))
    batched = session.run(None, feeds)[0]
    begin, end = int(feeds["cu_seqlens"][2]), int(feeds["cu_seqlens"][3])
    alone = {**feeds, "qkv": feeds["qkv"][begin:end], "positions": feeds["positions"][begin:end],
             "cu_seqlens": np.array([0, end - begin], np.int32), "token_offset": feeds["token_offset"][2:3]}
    np.testing.assert_array_equal(session.run(None, alone)[0], batched[begin:end])


FEEDS = case(2, 8, 2, 32, "full", 16, seed=0)
WITHOUT_POSITIONS = {name: value for name, value in FEEDS.items() if name != "positions"}


@pytest.mark.parametrize(
    "model_args, feeds, message",
    [
        ((2, 16, 40, True, True, None, False), WITHOUT_POSITIONS, "the input 'position_key' needs the input "
                                                                   "'positions'"),
        ((2, None, None), FEEDS, "the inputs 'position_key' and 'position_query' need the attributes "
                                 "'position_buckets' and 'max_relative_positions'"),
        ((2, 16, 40), {**FEEDS, "position_key": FEEDS["position_key"][:, :32]},
         "input 'position_key' must have shape [2 * span, H] with H=64 (the width of 'qkv' / 3), but its shape "
         "is [32, 32]"),
        ((2, 16, 40), {**FEEDS, "position_query": FEEDS["position_query"][:30]},
         "inputs 'position_key' and 'position_query' must have the same rows (2 * span), but they have 32 and 30"),
        ((2, 16, 40, False), {**FEEDS, "position_query": FEEDS["position_query"][:31]},
         "input 'position_query' must have an even number >= 2 of rows (2 * span), but its shape is [31, 64]"),
    ],
)
def test_bad_inputs_are_refused_naming_the_rule(make_session, model_args, feeds, message):
    session = make_session(op_models.disentangled_model(*model_args))
    names = {i.name for i in session.get_inputs()}
    with pytest.raises(Exception, match="FusedMHA") as error:
        session.run(None, {name: value for name, value in feeds.items() if name in names})
    assert message in str(error.value)


@pytest.mark.parametrize("buckets, max_positions, message", [
    (16, None, "attributes 'position_buckets' and 'max_relative_positions' go together, but only "
               "'position_buckets' is set"),
    (15, 40, "attribute 'position_buckets' must be 0 (no buckets) or even, in [4, 2^31 - 1], but it is 15"),
    (16, 0, "attribute 'max_relative_positions' must be in [1, 2^31 - 1], but it is 0"),
    (16, 9, "attribute 'max_relative_positions' must exceed 'position_buckets' / 2 + 1 = 9, but it is 9"),
])
def test_bad_attributes_fail_at_session_creation(make_session, buckets, max_positions, message):
    with pytest.raises(Exception, match="FusedMHA") as error:
        make_session(op_models.disentangled_model(2, buckets, max_positions))
    assert message in str(error.value)
