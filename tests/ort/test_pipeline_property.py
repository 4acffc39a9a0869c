"""Property: RemovePadding -> FusedMHA -> RebuildPadding equals padded attention in NumPy for random
shapes, head counts and masks (tolerance atol 1e-5, rtol 1e-4 against the float64 reference)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import op_models
from fixtures import reference


@settings(max_examples=30, deadline=None)
@given(
    batch=st.integers(0, 5),
    seq_len=st.integers(0, 70),
    num_heads=st.integers(1, 4),
    head_size=st.sampled_from([1, 7, 16, 32, 40]),
    seed=st.integers(0, 2**32 - 1),
)
def test_pipeline_matches_reference(make_session, batch, seq_len, num_heads, head_size, seed):
    rng = np.random.default_rng(seed)
    hidden = num_heads * head_size
    keep = rng.uniform(0.0, 1.0, size=(batch, 1))  # per-row density, from empty to full rows
    mask = (rng.random((batch, seq_len)) < keep).astype(np.int64)
    qkv = rng.standard_normal((batch, seq_len, 3 * hidden)).astype(np.float32)
    bias = rng.standard_normal(3 * hidden).astype(np.float32)
    feeds = {"qkv": qkv, "qkv_bias": bias, "attention_mask": mask}

    (output,) = make_session(op_models.pipeline_model(num_heads)).run(None, feeds)

    expected = reference.padded_attention(qkv, bias, mask, num_heads)
    assert output.shape == (batch, seq_len, hidden)
    np.testing.assert_allclose(output, expected, atol=1e-5, rtol=1e-4)
    assert not output[mask == 0].any()
