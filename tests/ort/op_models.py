"""Tiny ONNX models around the com.bytetx ops, with unranked graph inputs so that every check at run
time is the op's own (ONNX Runtime would otherwise reject bad shapes before the op sees them)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

DOMAIN = "com.bytetx"
FLOAT = TensorProto.FLOAT
INT32 = TensorProto.INT32
INT64 = TensorProto.INT64


def _model(nodes: list[onnx.NodeProto], inputs: dict[str, int], outputs: dict[str, int]) -> bytes:
    graph = helper.make_graph(
        nodes,
        "bytetx_op_test",
        [helper.make_tensor_value_info(name, dtype, None) for name, dtype in inputs.items()],
        [helper.make_tensor_value_info(name, dtype, None) for name, dtype in outputs.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, 1)], ir_version=10
    )
    return model.SerializeToString()


def _remove_padding(padded: str) -> onnx.NodeProto:
    outputs = ["packed", "cu_seqlens", "token_offset"]
    return helper.make_node("RemovePadding", [padded, "attention_mask"], outputs, domain=DOMAIN)


def _rebuild_padding(packed: str) -> onnx.NodeProto:
    return helper.make_node("RebuildPadding", [packed, "token_offset"], ["output"], domain=DOMAIN)


def _fused_mha(qkv: str, with_bias: bool, num_heads: int | None, scale: float | int | None) -> onnx.NodeProto:
    """``num_heads=None`` or ``scale=None`` leaves the attribute out."""
    attrs = {name: value for name, value in [("num_heads", num_heads), ("scale", scale)] if value is not None}
    inputs = [qkv, "qkv_bias" if with_bias else "", "cu_seqlens", "token_offset"]
    return helper.make_node("FusedMHA", inputs, ["context"], domain=DOMAIN, **attrs)


def remove_padding_model(mask_type: int = INT64) -> bytes:
    return _model(
        [_remove_padding("input")],
        {"input": FLOAT, "attention_mask": mask_type},
        {"packed": FLOAT, "cu_seqlens": INT32, "token_offset": INT32},
    )


def rebuild_padding_model() -> bytes:
    return _model([_rebuild_padding("packed")], {"packed": FLOAT, "token_offset": INT32}, {"output": FLOAT})


def fused_mha_model(num_heads: int | None, scale: float | int | None = None, with_bias: bool = True) -> bytes:
    """``with_bias=False``: a node without its required qkv_bias, which the op refuses."""
    inputs = {"qkv": FLOAT, "qkv_bias": FLOAT, "cu_seqlens": INT32, "token_offset": INT32}
    if not with_bias:
        del inputs["qkv_bias"]
    return _model([_fused_mha("qkv", with_bias, num_heads, scale)], inputs, {"context": FLOAT})


def position_bias_model(num_heads: int, max_distance: int | float | None, positions: bool = True,
                        table: bool = True) -> bytes:
    """FusedMHA with the relative position bias; ``max_distance=None`` leaves the attribute out,
    ``positions`` / ``table`` False leave that input out (as an empty name)."""
    attrs = {"num_heads": num_heads}
    if max_distance is not None:
        attrs["relative_position_max_distance"] = max_distance
    names = ["qkv", "qkv_bias", "cu_seqlens", "token_offset", "positions" if positions else "",
             "relative_position_bias" if table else ""]
    node = helper.make_node("FusedMHA", names, ["context"], domain=DOMAIN, **attrs)
    inputs = {"qkv": FLOAT, "qkv_bias": FLOAT, "cu_seqlens": INT32, "token_offset": INT32}
    if positions:
        inputs["positions"] = INT32
    if table:
        inputs["relative_position_bias"] = FLOAT
    return _model([node], inputs, {"context": FLOAT})


def round_trip_model(mask_type: int = INT64) -> bytes:
    """RemovePadding -> RebuildPadding."""
    nodes = [_remove_padding("input"), _rebuild_padding("packed")]
    return _model(nodes, {"input": FLOAT, "attention_mask": mask_type}, {"output": FLOAT})


def pipeline_model(num_heads: int, scale: float | None = None) -> bytes:
    """RemovePadding -> FusedMHA -> RebuildPadding on a padded ``qkv [B, S, 3H]``."""
    nodes = [
        _remove_padding("qkv"),
        _fused_mha("packed", True, num_heads, scale),
        _rebuild_padding("context"),
    ]
    return _model(nodes, {"qkv": FLOAT, "qkv_bias": FLOAT, "attention_mask": INT64}, {"output": FLOAT})


def rotary_window_model(num_heads: int, rotary_frequencies=None,
                        sliding_window: int | float | None = None, positions: bool = True,
                        max_distance: int | None = None) -> bytes:
    """FusedMHA with rotary embeddings (their frequencies) and/or a sliding window (None leaves the
    attribute out), reading ``positions`` unless False; with ``max_distance``, the relative position
    bias too."""
    attrs = {"num_heads": num_heads}
    for name, value in (("rotary_frequencies", rotary_frequencies), ("sliding_window", sliding_window),
                        ("relative_position_max_distance", max_distance)):
        if value is not None:
            attrs[name] = value.tolist() if isinstance(value, np.ndarray) else value
    names = ["qkv", "qkv_bias", "cu_seqlens", "token_offset", "positions" if positions else ""]
    inputs = {"qkv": FLOAT, "qkv_bias": FLOAT, "cu_seqlens": INT32, "token_offset": INT32}
    if positions:
        inputs["positions"] = INT32
    if max_distance is not None:
        names.append("relative_position_bias")
        inputs["relative_position_bias"] = FLOAT
    node = helper.make_node("FusedMHA", names, ["context"], domain=DOMAIN, **attrs)
    return _model([node], inputs, {"context": FLOAT})


def disentangled_model(num_heads: int, position_buckets: int | None, max_relative_positions: int | None,
                       c2p: bool = True, p2c: bool = True, scale: float | None = None,
                       positions: bool = True) -> bytes:
    """FusedMHA with DeBERTa's disentangled terms: ``position_key`` (``c2p``) and/or ``position_query``
    (``p2c``) inputs, the bucketing attributes (None leaves one out), ``positions`` unless False."""
    attrs = {"num_heads": num_heads}
    for name, value in (("position_buckets", position_buckets), ("max_relative_positions", max_relative_positions),
                        ("scale", scale)):
        if value is not None:
            attrs[name] = value
    names = ["qkv", "qkv_bias", "cu_seqlens", "token_offset", "positions" if positions else "", "",
             "position_key" if c2p else "", "position_query" if p2c else ""]
    inputs = {"qkv": FLOAT, "qkv_bias": FLOAT, "cu_seqlens": INT32, "token_offset": INT32}
    inputs.update({name: INT32 if name == "positions" else FLOAT for name in names[4:] if name})
    while not names[-1]:
        names.pop()
    node = helper.make_node("FusedMHA", names, ["context"], domain=DOMAIN, **attrs)
    return _model([node], inputs, {"context": FLOAT})
