"""Property-based fuzzing of the three ops through ONNX Runtime: random shapes, masks, dtypes,
cu_seqlens and token_offset contents, valid and invalid alike.

For every example the test predicts, from docs/ops.md alone, whether the op must accept it and, if
not, the first rule (in the shell's checking order) it breaks. Accepted inputs must match the NumPy
reference of tests/fixtures/reference.py (exactly for the padding ops; atol 1e-5, rtol 1e-4 for FusedMHA);
refused ones must fail with INVALID_ARGUMENT naming the op, the input and that rule. Sessions are
shared across examples, so every example also checks that earlier failures left the session serving.
The number of examples is bounded (CI: a few seconds per test).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

import op_models
from fixtures import reference

EXAMPLES = 300
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INT32_MAX = 2**31 - 1

# Mask dtypes a client may send: the op takes int64 and int32, and must refuse the rest by name.
MASK_DTYPES = {
    np.int64: "int64", np.int32: "int32", np.int16: "int16", np.int8: "int8", np.uint8: "uint8",
    np.bool_: "bool", np.float32: "float32", np.float64: "float64",
}


def remove_padding_model(mask_dtype) -> bytes:
    """RemovePadding with the mask input declared as ``mask_dtype`` (the op declares it open)."""
    mask_type = helper.np_dtype_to_tensor_dtype(np.dtype(mask_dtype))
    node = helper.make_node("RemovePadding", ["input", "attention_mask"], ["packed", "cu_seqlens", "token_offset"],
                            domain=op_models.DOMAIN)
    graph = helper.make_graph(
        [node], "remove_padding",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("attention_mask", mask_type, None)],
        [helper.make_tensor_value_info(name, t, None)
         for name, t in [("packed", TensorProto.FLOAT), ("cu_seqlens", TensorProto.INT32),
                         ("token_offset", TensorProto.INT32)]],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(op_models.DOMAIN, 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=10).SerializeToString()


def assert_refused(session, feeds, op: str, expected: str) -> None:
    event("refused: " + re.sub(r"\d+", "N", expected.split(", but")[0]))
    with pytest.raises(InvalidArgument) as error:
        session.run(None, feeds)
    message = str(error.value)
    assert f"{op}: " in message and expected in message, message


# ---- RemovePadding ------------------------------------------------------------------------------------

# Values other than 0 and 1, which count as tokens (nonzero), as transformers reads a mask.
OTHER_MASK_VALUES = [2, -1, 3, 255, 2**31 - 1, -(2**31), 2**32 + 1, -(2**63)]


@st.composite
def remove_padding_inputs(draw):
    batch = draw(st.integers(0, 6))
    seq_len = draw(st.integers(0, 40))
    hidden = draw(st.integers(0, 12))
    dtype = draw(st.sampled_from([np.int64, np.int32]) if draw(st.integers(0, 4)) else st.sampled_from(list(MASK_DTYPES)))
    mask_shape = (batch, seq_len)
    if draw(st.integers(0, 9)) == 0:  # sometimes a mask of another shape or rank
        mask_shape = draw(st.sampled_from([(batch, seq_len + 1), (batch + 1, seq_len), (batch * seq_len,),
                                           (batch, seq_len, 1)]))
    size = int(np.prod(mask_shape))
    density = draw(st.floats(0.0, 1.0))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    values = (rng.random(size) < density).astype(np.int64)
    if size and draw(st.integers(0, 2)) == 0:  # sometimes values other than 0 and 1
        for _ in range(draw(st.integers(1, 3))):
            values[draw(st.integers(0, size - 1))] = draw(st.sampled_from(OTHER_MASK_VALUES))
    with np.errstate(over="ignore"):
        mask = values.astype(dtype).reshape(mask_shape)  # wraps out-of-range values, as a client's cast would
    x = rng.standard_normal((batch, seq_len, hidden)).astype(np.float32)
    return x, mask


def remove_padding_verdict(x: np.ndarray, mask: np.ndarray) -> str | None:
    """None if RemovePadding must accept, else the start of the message it must give."""
    batch, seq_len, _ = x.shape
    if mask.ndim != 2:
        return "input 'attention_mask' must have rank 2 ([B, S])"
    if mask.dtype not in (np.int64, np.int32):
        return f"input 'attention_mask' must be int64 or int32, but it is {MASK_DTYPES[mask.dtype.type]}"
    if mask.shape != (batch, seq_len):
        return f"input 'attention_mask' must have shape [B, S] = [{batch}, {seq_len}]"
    return None


@SETTINGS
@given(remove_padding_inputs())
def test_remove_padding_accepts_exactly_the_valid_masks(op_session, inputs):
    x, mask = inputs
    session = op_session(remove_padding_model(mask.dtype.type))
    verdict = remove_padding_verdict(x, mask)
    if verdict is not None:
        assert_refused(session, {"input": x, "attention_mask": mask}, "RemovePadding", verdict)
        return
    event("accepted")
    got = session.run(None, {"input": x, "attention_mask": mask})
    for g, want in zip(got, reference.remove_padding(x, mask)):
        assert g.dtype == want.dtype and g.shape == want.shape
        np.testing.assert_array_equal(g, want)


# ---- FusedMHA ------------------------------------------------------------------------------------------

CU_SEQLENS_EXTREMES = [-1, -(2**31), INT32_MAX, 2**16]


@st.composite
def fused_mha_inputs(draw):
    num_heads = draw(st.integers(1, 4))
    head_size = draw(st.sampled_from([0, 1, 3, 8, 16]))
    hidden = num_heads * head_size
    width = 3 * hidden
    if draw(st.integers(0, 9)) == 0:
        width = draw(st.integers(0, 3 * hidden + 7))  # often not 3 * a multiple of num_heads
    batch = draw(st.integers(0, 5))
    seq_len = draw(st.integers(0, 20))
    lengths = [draw(st.integers(0, seq_len)) for _ in range(batch)]
    cu_seqlens = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    num_tokens = int(cu_seqlens[-1])
    corruption = draw(st.integers(0, 5))
    if corruption == 0:  # one entry anything
        i = draw(st.integers(0, batch))
        cu_seqlens[i] = draw(st.one_of(st.integers(-3, num_tokens + 3), st.sampled_from(CU_SEQLENS_EXTREMES)))
    elif corruption == 1:  # another length
        cu_seqlens = cu_seqlens[: draw(st.integers(0, batch))] if batch else np.array([0, 0])
    elif corruption == 2:  # T disagrees
        num_tokens = max(0, num_tokens + draw(st.sampled_from([-1, 1, 5])))
    bias_size = width if draw(st.integers(0, 9)) else draw(st.integers(0, width + 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    qkv = rng.standard_normal((num_tokens, width)).astype(np.float32)
    bias = (0.5 * rng.standard_normal(bias_size)).astype(np.float32)
    token_offset = rng.integers(-(2**31), 2**31, size=(batch, seq_len), dtype=np.int64).astype(np.int32)
    return num_heads, qkv, bias, cu_seqlens.astype(np.int32), token_offset


def fused_mha_verdict(num_heads, qkv, bias, cu_seqlens, token_offset) -> str | None:
    num_tokens, width = qkv.shape
    batch, seq_len = token_offset.shape
    if width % 3 or (width // 3) % num_heads:
        return f"input 'qkv' must have width 3 * H with H a multiple of num_heads={num_heads}"
    if bias.shape != (width,):
        return f"input 'qkv_bias' must have shape [3 * H] = [{width}]"
    if cu_seqlens.shape != (batch + 1,):
        return f"input 'cu_seqlens' must have shape [B + 1] = [{batch + 1}]"
    cu = cu_seqlens.astype(np.int64)
    if cu[0] != 0:
        return f"input 'cu_seqlens' must start at 0, but cu_seqlens[0]={cu[0]}"
    for b in range(batch):
        if cu[b + 1] < cu[b]:
            return f"input 'cu_seqlens' must be non-decreasing, but cu_seqlens[{b + 1}]={cu[b + 1]}"
        if cu[b + 1] - cu[b] > seq_len:
            return f"input 'cu_seqlens' gives sequence {b} length {cu[b + 1] - cu[b]}"
    if cu[batch] != num_tokens:
        return f"input 'cu_seqlens' must end at the number of packed tokens T={num_tokens}"
    return None


@SETTINGS
@given(fused_mha_inputs())
def test_fused_mha_accepts_exactly_the_valid_cu_seqlens(op_session, inputs):
    num_heads, qkv, bias, cu_seqlens, token_offset = inputs
    session = op_session(op_models.fused_mha_model(num_heads))
    feeds = {"qkv": qkv, "qkv_bias": bias, "cu_seqlens": cu_seqlens, "token_offset": token_offset}
    verdict = fused_mha_verdict(*inputs)
    if verdict is not None:
        assert_refused(session, feeds, "FusedMHA", verdict)
        return
    event("accepted")
    (context,) = session.run(None, feeds)
    assert context.shape == (qkv.shape[0], qkv.shape[1] // 3)
    if context.size == 0:
        return
    expected = reference.fused_mha(qkv, bias, cu_seqlens, num_heads)
    np.testing.assert_allclose(context, expected, atol=1e-5, rtol=1e-4)


# ---- RebuildPadding ------------------------------------------------------------------------------------


@st.composite
def rebuild_padding_inputs(draw):
    batch = draw(st.integers(0, 6))
    seq_len = draw(st.integers(0, 12))
    hidden = draw(st.integers(0, 8))
    slots = batch * seq_len
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    mask = rng.random((batch, seq_len)) < draw(st.floats(0.0, 1.0))
    _, _, token_offset = reference.remove_padding(np.zeros((batch, seq_len, 1), np.float32), mask)
    flat = token_offset.reshape(-1).astype(np.int64)
    num_tokens = int(mask.sum())
    corruption = draw(st.integers(0, 3))
    if corruption == 0 and slots:  # one entry out of range, negative, or a copy of another
        i = draw(st.integers(0, slots - 1))
        flat[i] = draw(st.sampled_from([-1, slots, slots + 9, INT32_MAX, -(2**31), int(flat[(i + 1) % slots])]))
    elif corruption == 1:  # T disagrees with the mask (maybe beyond B * S)
        num_tokens = draw(st.integers(0, slots + 2))
    elif corruption == 2 and slots:  # raw entries
        flat = rng.integers(-2, slots + 2, size=slots)
    packed = rng.standard_normal((num_tokens, hidden)).astype(np.float32)
    return packed, flat.astype(np.int32).reshape(batch, seq_len)


def rebuild_padding_verdict(packed, token_offset) -> str | None:
    num_tokens = packed.shape[0]
    slots = token_offset.size
    if num_tokens > slots:
        return f"there are more packed tokens (T={num_tokens}) than padded slots in 'token_offset' (B * S={slots})"
    seen = set()
    for t, slot in enumerate(token_offset.reshape(-1)[:num_tokens].tolist()):
        if not 0 <= slot < slots:
            return f"input 'token_offset' entries t < T must lie in [0, B * S={slots}), but token_offset[{t}]={slot}"
        if slot in seen:
            return f"input 'token_offset' entries t < T must be distinct, but token_offset[{t}]="
        seen.add(slot)
    return None


@SETTINGS
@given(rebuild_padding_inputs())
def test_rebuild_padding_accepts_exactly_the_valid_offsets(op_session, inputs):
    packed, token_offset = inputs
    session = op_session(op_models.rebuild_padding_model())
    feeds = {"packed": packed, "token_offset": token_offset}
    verdict = rebuild_padding_verdict(packed, token_offset)
    if verdict is not None:
        assert_refused(session, feeds, "RebuildPadding", verdict)
        return
    event("accepted")
    (output,) = session.run(None, feeds)
    expected = reference.rebuild_padding(packed, token_offset)
    np.testing.assert_array_equal(output, expected)
    assert not np.signbit(output[expected == 0]).any(), "padding must be +0.0"
