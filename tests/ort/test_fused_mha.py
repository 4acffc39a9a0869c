"""FusedMHA against a float64 NumPy reference.

Tolerance for the float32 kernel: atol 1e-5, rtol 1e-4 against the float64 reference.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import op_models
from fixtures import reference
from fixtures.masks import make_mask

ATOL = 1e-5
RTOL = 1e-4


def random_packed(batch, seq_len, num_heads, head_size, kind, seed):
    """qkv [T, 3H], bias [3H], cu_seqlens, token_offset for a random mask."""
    rng = np.random.default_rng(seed)
    mask = make_mask(batch, seq_len, kind, seed)
    hidden = num_heads * head_size
    _, cu_seqlens, token_offset = reference.remove_padding(np.zeros((batch, seq_len, 1), np.float32), mask)
    qkv = rng.standard_normal((int(cu_seqlens[-1]), 3 * hidden)).astype(np.float32)
    bias = (0.5 * rng.standard_normal(3 * hidden)).astype(np.float32)
    return qkv, bias, cu_seqlens, token_offset


def run(session, qkv, bias, cu_seqlens, token_offset):
    feeds = {"qkv": qkv, "cu_seqlens": cu_seqlens, "token_offset": token_offset}
    if bias is not None:
        feeds["qkv_bias"] = bias
    return session.run(None, feeds)[0]


@pytest.mark.parametrize(
    "batch, seq_len, num_heads, head_size, kind",
    [
        (1, 1, 1, 32, "full"),
        (1, 97, 2, 40, "full"),
        (3, 63, 12, 32, "right"),
        (3, 64, 2, 64, "holes"),
        (3, 65, 16, 40, "left"),
        (1, 512, 12, 64, "full"),
        (3, 512, 1, 128, "mixed"),
        (32, 65, 2, 128, "right"),
        (32, 97, 12, 64, "mixed"),
        (32, 16, 16, 32, "holes"),
        (3, 130, 1, 1, "left"),
        (3, 33, 3, 17, "mixed"),
    ],
)
def test_matches_reference(make_session, batch, seq_len, num_heads, head_size, kind):
    qkv, bias, cu_seqlens, token_offset = random_packed(
        batch, seq_len, num_heads, head_size, kind, seed=seq_len
    )
    context = run(make_session(op_models.fused_mha_model(num_heads)), qkv, bias, cu_seqlens, token_offset)
    assert context.shape == (qkv.shape[0], num_heads * head_size) and context.dtype == np.float32
    expected = reference.fused_mha(qkv, bias, cu_seqlens, num_heads)
    np.testing.assert_allclose(context, expected, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("scale", [0.05, 1.0])
def test_scale_attribute(make_session, scale):
    qkv, bias, cu_seqlens, token_offset = random_packed(3, 40, 4, 16, "mixed", seed=11)
    session = make_session(op_models.fused_mha_model(4, scale=scale))
    context = run(session, qkv, bias, cu_seqlens, token_offset)
    np.testing.assert_allclose(
        context, reference.fused_mha(qkv, bias, cu_seqlens, 4, scale=scale), atol=ATOL, rtol=RTOL
    )


def test_qkv_bias_is_required(make_session):
    """qkv_bias is a required input on every back end (docs/ops.md): a node without one is refused."""
    qkv, _, cu_seqlens, token_offset = random_packed(2, 8, 2, 16, "mixed", seed=3)
    with pytest.raises(Exception, match="qkv_bias|required|input 1"):
        session = make_session(op_models.fused_mha_model(2, with_bias=False))
        session.run(None, {"qkv": qkv, "cu_seqlens": cu_seqlens, "token_offset": token_offset})


def test_length_one_gives_v_plus_bias(make_session):
    qkv, bias, cu_seqlens, token_offset = random_packed(4, 1, 2, 32, "full", seed=5)
    context = run(make_session(op_models.fused_mha_model(2)), qkv, bias, cu_seqlens, token_offset)
    np.testing.assert_array_equal(context, qkv[:, 128:] + bias[128:])


def test_peaked_scores_stay_finite(make_session):
    """Logits in the hundreds overflow a naive exp; the max-subtracted softmax handles them. The
    float32 logits themselves carry ~1e-5 relative error here, hence the looser tolerance."""
    qkv, bias, cu_seqlens, token_offset = random_packed(2, 50, 2, 32, "right", seed=2)
    qkv *= 10.0
    context = run(make_session(op_models.fused_mha_model(2)), qkv, bias, cu_seqlens, token_offset)
    assert np.isfinite(context).all()
    np.testing.assert_allclose(context, reference.fused_mha(qkv, bias, cu_seqlens, 2), atol=1e-3, rtol=1e-3)


def test_sequence_output_does_not_depend_on_batch_or_threads(make_session):
    """Each sequence alone, inside a batch, and with 1 or several threads: bitwise the same."""
    num_heads, head_size = 12, 64
    model = op_models.fused_mha_model(num_heads)
    qkv, bias, cu_seqlens, token_offset = random_packed(32, 97, num_heads, head_size, "mixed", seed=4)
    batched = run(make_session(model), qkv, bias, cu_seqlens, token_offset)
    single_thread = run(make_session(model, threads=1), qkv, bias, cu_seqlens, token_offset)
    np.testing.assert_array_equal(batched, single_thread)
    seq_len = token_offset.shape[1]
    for b in range(0, 32, 3):
        begin, end = int(cu_seqlens[b]), int(cu_seqlens[b + 1])
        alone = run(
            make_session(model),
            qkv[begin:end],
            bias,
            np.array([0, end - begin], np.int32),
            np.zeros((1, seq_len), np.int32),
        )
        np.testing.assert_array_equal(alone, batched[begin:end])


def test_empty_batch(make_session):
    """T = 0 (B = 0, or sequences of length 0) gives an empty output."""
    session = make_session(op_models.fused_mha_model(2))
    bias = np.zeros(3 * 16, np.float32)
    for batch, seq_len in [(0, 8), (3, 8), (3, 0)]:
        context = run(
            session,
            np.zeros((0, 3 * 16), np.float32),
            bias,
            np.zeros(batch + 1, np.int32),
            np.zeros((batch, seq_len), np.int32),
        )
        assert context.shape == (0, 16)


def test_concurrent_runs_agree(make_session):
    """Runs of one session from several threads at once (the kernel keeps per-thread scratch)."""
    session = make_session(op_models.fused_mha_model(4))
    inputs = [random_packed(3, 70, 4, 40, "mixed", seed=seed) for seed in range(4)]
    expected = [run(session, *args) for args in inputs]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda args: run(session, *args), inputs * 3))
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result, expected[i % 4])
