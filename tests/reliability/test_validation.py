"""Runtime validation beyond tests/ort/test_bad_inputs.py: dimensions no client tensor should be able
to claim, the rules of docs/ops.md not covered there, and input types that ONNX Runtime itself
enforces before an op runs. Each failure is an INVALID_ARGUMENT naming the op, the input and the rule,
and the session serves the next request as before.

Empty tensors are the interesting case: a tensor with a 0 dimension holds no data whatever its other
dimensions say, so a client can send ``[2**40, 0]`` for free.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

import op_models
from fixtures import reference
from fixtures.masks import make_mask

HUGE = 2**40  # beyond int32, far beyond memory
RNG = np.random.default_rng(0)

X = RNG.standard_normal((3, 5, 8)).astype(np.float32)
MASK = make_mask(3, 5, "mixed", seed=1)
REMOVE = {"input": X, "attention_mask": MASK}

PACKED, CU_SEQLENS, TOKEN_OFFSET = reference.remove_padding(X, MASK)
QKV = RNG.standard_normal((PACKED.shape[0], 3 * 16)).astype(np.float32)
BIAS = RNG.standard_normal(3 * 16).astype(np.float32)
ATTENTION = {"qkv": QKV, "qkv_bias": BIAS, "cu_seqlens": CU_SEQLENS, "token_offset": TOKEN_OFFSET}
REBUILD = {"packed": PACKED, "token_offset": TOKEN_OFFSET}


def _empty(*shape: int, dtype=np.float32) -> np.ndarray:
    return np.zeros(shape, dtype)


CASES = {
    # name: (model, good feeds, bad feeds, substrings of the message)
    "RemovePadding: B beyond int32 with S = 0": (
        op_models.remove_padding_model(), REMOVE,
        {"input": _empty(HUGE, 0, 8), "attention_mask": _empty(HUGE, 0, dtype=np.int64)},
        ["RemovePadding: input 'input' has B=1099511627776, S=0: each must be at most 2147483647"],
    ),
    "RemovePadding: S beyond int32 with B = 0": (
        op_models.remove_padding_model(), REMOVE,
        {"input": _empty(0, HUGE, 8), "attention_mask": _empty(0, HUGE, dtype=np.int64)},
        ["RemovePadding: input 'input' has B=0, S=1099511627776: each must be at most 2147483647"],
    ),
    "FusedMHA: token_offset B beyond int32 (empty)": (
        op_models.fused_mha_model(2), ATTENTION,
        {**ATTENTION, "token_offset": _empty(HUGE, 0, dtype=np.int32)},
        ["FusedMHA: input 'token_offset' has B=1099511627776, S=0: each must be at most 2147483647"],
    ),
    "FusedMHA: token_offset S beyond int32 (empty)": (
        op_models.fused_mha_model(2), ATTENTION,
        {**ATTENTION, "token_offset": _empty(0, HUGE, dtype=np.int32), "cu_seqlens": np.zeros(1, np.int32)},
        ["FusedMHA: input 'token_offset' has B=0, S=1099511627776"],
    ),
    "FusedMHA: width 0 with num_heads 2 but tokens claimed": (
        op_models.fused_mha_model(2), ATTENTION,
        {**ATTENTION, "qkv": _empty(HUGE, 0), "qkv_bias": _empty(0)},
        ["input 'cu_seqlens' must end at the number of packed tokens T=1099511627776"],
    ),
    "FusedMHA: cu_seqlens entries beyond T and negative": (
        op_models.fused_mha_model(2), ATTENTION,
        {**ATTENTION, "cu_seqlens": np.array([0, 2**31 - 1, -(2**31), CU_SEQLENS[-1]], np.int32)},
        ["FusedMHA: input 'cu_seqlens' gives sequence 0 length 2147483647", "more than the padded length S=5"],
    ),
    "FusedMHA: a length above S in the last sequence": (
        op_models.fused_mha_model(2), ATTENTION,
        {
            **ATTENTION,
            "qkv": np.zeros((9, 48), np.float32),
            "cu_seqlens": np.array([0, 1, 3, 9], np.int32),
        },
        ["input 'cu_seqlens' gives sequence 2 length 6 (cu_seqlens[3] - cu_seqlens[2])", "S=5"],
    ),
    "FusedMHA: bias of the right size but rank 2": (
        op_models.fused_mha_model(2), ATTENTION,
        {**ATTENTION, "qkv_bias": BIAS.reshape(3, 16)},
        ["input 'qkv_bias' must have rank 1 ([3 * H])", "its shape is [3, 16]"],
    ),
    "RebuildPadding: token_offset not rank 2": (
        op_models.rebuild_padding_model(), REBUILD,
        {**REBUILD, "token_offset": TOKEN_OFFSET.reshape(-1)},
        ["RebuildPadding: input 'token_offset' must have rank 2 ([B, S])", "its shape is [15]"],
    ),
    "RebuildPadding: token_offset B beyond int32 (empty)": (
        op_models.rebuild_padding_model(), REBUILD,
        {"packed": _empty(0, 8), "token_offset": _empty(HUGE, 0, dtype=np.int32)},
        ["RebuildPadding: input 'token_offset' has B=1099511627776, S=0: each must be at most 2147483647"],
    ),
    "RebuildPadding: an output too large to address (no tokens, H huge)": (
        op_models.rebuild_padding_model(), REBUILD,
        {"packed": _empty(0, 2**60), "token_offset": TOKEN_OFFSET},
        ["RebuildPadding: output [B, S, H] = [3, 5, 1152921504606846976]", "too large to address"],
    ),
    "RebuildPadding: T beyond B * S with all offsets valid": (
        op_models.rebuild_padding_model(), REBUILD,
        {"packed": np.zeros((16, 8), np.float32), "token_offset": np.arange(15, dtype=np.int32).reshape(3, 5)},
        ["more packed tokens (T=16) than padded slots in 'token_offset' (B * S=15)"],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_rule_is_enforced_and_session_keeps_serving(op_session, case):
    model, good, bad, expected = CASES[case]
    session = op_session(model)
    before = session.run(None, good)
    with pytest.raises(InvalidArgument) as error:
        session.run(None, bad)
    for text in expected:
        assert text in str(error.value)
    after = session.run(None, good)
    for x, y in zip(before, after):
        np.testing.assert_array_equal(x, y)


GARBAGE_OFFSETS = np.array([[-5, 2**31 - 1, 7, 7, -(2**31)]] * 3, np.int32)


def test_offsets_beyond_t_are_never_read(op_session):
    """Only token_offset's first T entries are read: RebuildPadding with T = 0 accepts any contents
    and gives zeros; FusedMHA reads only its shape."""
    (output,) = op_session(op_models.rebuild_padding_model()).run(
        None, {"packed": _empty(0, 8), "token_offset": GARBAGE_OFFSETS}
    )
    assert output.shape == (3, 5, 8) and not output.view(np.uint32).any()
    session = op_session(op_models.fused_mha_model(2))
    (expected,) = session.run(None, ATTENTION)
    (got,) = session.run(None, {**ATTENTION, "token_offset": GARBAGE_OFFSETS})
    np.testing.assert_array_equal(got, expected)


def _model(node: str, inputs: dict[str, int], outputs: dict[str, int]) -> bytes:
    graph = helper.make_graph(
        [helper.make_node(node, list(inputs), list(outputs), domain=op_models.DOMAIN, num_heads=2)
         if node == "FusedMHA" else helper.make_node(node, list(inputs), list(outputs), domain=op_models.DOMAIN)],
        "declared_types",
        [helper.make_tensor_value_info(name, dtype, None) for name, dtype in inputs.items()],
        [helper.make_tensor_value_info(name, dtype, None) for name, dtype in outputs.items()],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(op_models.DOMAIN, 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=10).SerializeToString()


F, I32, I64, F64 = TensorProto.FLOAT, TensorProto.INT32, TensorProto.INT64, TensorProto.DOUBLE


@pytest.mark.parametrize(
    "node, inputs, outputs, wrong",
    [
        ("RemovePadding", {"input": F64, "attention_mask": I64}, {"p": F, "c": I32, "t": I32}, "input"),
        ("FusedMHA", {"qkv": F, "qkv_bias": F, "cu_seqlens": I64, "token_offset": I32}, {"o": F}, "cu_seqlens"),
        ("FusedMHA", {"qkv": F, "qkv_bias": F, "cu_seqlens": I32, "token_offset": F}, {"o": F}, "token_offset"),
        ("RebuildPadding", {"packed": F64, "token_offset": I32}, {"o": F}, "packed"),
        ("RebuildPadding", {"packed": F, "token_offset": I64}, {"o": F}, "token_offset"),
    ],
)
def test_fixed_input_types_are_enforced_before_any_run(ort_library, node, inputs, outputs, wrong):
    """Inputs the ops declare with one type are type-checked by ONNX Runtime when the session is
    created: a request can never hand them another type. (The mask, declared open, is checked at
    run time: tests/ort/test_bad_inputs.py and test_property_fuzz.py.)"""
    options = ort.SessionOptions()
    options.register_custom_ops_library(ort_library)
    with pytest.raises(Exception, match=rf"input parameter \({wrong}\) of operator \({node}\)"):
        ort.InferenceSession(_model(node, inputs, outputs), options, providers=["CPUExecutionProvider"])
