"""PackTokens: run the encoder on packed tokens.

Pattern: the input ``X0`` of the first ``FusedMHA`` block's QKV MatMul (the embeddings' output).
Replacement: ``RemovePadding(X0, attention_mask)`` gives the packed tokens ``[T, H]``, ``cu_seqlens``
and ``token_offset``. Packing then follows the data in graph order: a node whose data inputs are all
packed and whose work is per token (MatMul by a weight, elementwise ops with per-feature constants,
LayerNormalization and reductions over the last axis, FusedMHA) runs on the packed tensors. Where a
packed tensor meets a node that needs positions (a pooler's Gather, a Shape, a graph output),
``RebuildPadding`` restores it under its original name, with zeros at the padding. Blocks with a
relative position bias, rotary embeddings or a sliding window read ``positions``, each packed token's
slot in its padded row (``token_offset[t] mod S``), computed once with standard ops.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs
from onnx import TensorProto

from bytetx import ops

from .base import GraphPass, PassReport, RewriteError, constant_value, describe, is_bytetx

_UNARY = {
    "Abs", "Cast", "Ceil", "Cos", "Elu", "Erf", "Exp", "FastGelu", "Floor", "Gelu", "HardSigmoid",
    "Identity", "LeakyRelu", "Log", "Neg", "Reciprocal", "Relu", "Round", "Selu", "Sigmoid", "Sin",
    "Softplus", "Sqrt", "Tanh",
}
_ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"}
_REDUCTIONS = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL2", "ReduceSumSquare"}
_LAST_AXIS = {"Softmax", "LogSoftmax", "LayerNormalization"}
# Rank of the padded hidden states [B, S, H] that the packed [T, H] tensors stand for.
_PADDED_RANK = 3


class PackTokens(GraphPass):
    name = "PackTokens"

    def __init__(self, mask_input: str = "attention_mask"):
        self.mask_input = mask_input

    def run(self, graph: gs.Graph) -> PassReport:
        report = PassReport(self.name)
        if any(is_bytetx(n, ops.REMOVE_PADDING) for n in graph.nodes):
            return report
        blocks = _blocks(graph)
        if not blocks:
            return report
        mask = self._mask(graph)
        tensors = graph.tensors()
        cu_seqlens, token_offset = tensors[ops.CU_SEQLENS], tensors[ops.TOKEN_OFFSET]
        cu_seqlens.dtype = token_offset.dtype = np.int32

        graph.toposort()
        embeddings = _qkv_source(_blocks(graph)[0])
        hidden = embeddings.shape[-1] if embeddings.shape else None
        packed_embeddings = gs.Variable("bytetx/packed_embeddings", embeddings.dtype, [ops.TOKENS_DIM, hidden])
        token_offset.shape = mask.shape
        cu_seqlens.shape = [None]
        graph.nodes.append(
            gs.Node(
                ops.REMOVE_PADDING,
                f"bytetx/{ops.REMOVE_PADDING}",
                inputs=[embeddings, mask],
                outputs=[packed_embeddings, cu_seqlens, token_offset],
                domain=ops.DOMAIN,
            )
        )
        report.add(f"RemovePadding after '{embeddings.name}' (mask '{mask.name}')")
        positions = tensors.get(ops.POSITIONS)
        if positions is not None:
            _add_positions(graph, packed_embeddings, token_offset, positions)
            report.add(f"'{ops.POSITIONS}' for the blocks with position features")

        packed: dict[str, gs.Variable] = {embeddings.name: packed_embeddings}
        stops: list[str] = []
        for node in list(graph.nodes):
            if is_bytetx(node, ops.REMOVE_PADDING) or not any(t.name in packed for t in node.inputs):
                continue
            inputs = _packed_inputs(node, packed)
            if inputs is None:
                stops.append(describe(node))
                continue
            for index, tensor in enumerate(inputs):
                if tensor is not node.inputs[index]:
                    node.inputs[index] = tensor
            _normalize_axes(node)
            for index, output in enumerate(list(node.outputs)):
                if index > 0 and node.op in ("LayerNormalization", "Dropout"):
                    continue  # statistics and dropout masks are never packed
                shape = [ops.TOKENS_DIM, *output.shape[_PADDED_RANK - 1:]] if output.shape else None
                packed_output = gs.Variable(f"{output.name}/packed", output.dtype, shape)
                node.outputs[index] = packed_output
                packed[output.name] = packed_output

        unpacked_blocks = [b.name for b in blocks if b.inputs[0].name not in {v.name for v in packed.values()}]
        if unpacked_blocks:
            raise RewriteError(
                f"{unpacked_blocks[0]} does not read packed tokens: packing stopped at "
                + (", ".join(stops[:3]) or "the embeddings")
            )

        rebuilt = 0
        for name, packed_tensor in packed.items():
            original = graph.tensors().get(name)
            if name == embeddings.name or original is None:
                continue
            if original.outputs or original in graph.outputs:
                graph.nodes.append(
                    gs.Node(
                        ops.REBUILD_PADDING,
                        f"bytetx/{ops.REBUILD_PADDING}_{rebuilt}",
                        inputs=[packed_tensor, token_offset],
                        outputs=[original],
                        domain=ops.DOMAIN,
                    )
                )
                rebuilt += 1
                report.add(f"RebuildPadding for '{name}'")
        report.add(f"{len(packed) - 1} tensor(s) computed packed")
        return report

    def _mask(self, graph: gs.Graph) -> gs.Variable:
        by_name = {t.name: t for t in graph.inputs}
        mask = by_name.get(self.mask_input)
        if mask is None:
            candidates = [t for t in graph.inputs if "mask" in t.name.lower()]
            if len(candidates) != 1:
                raise RewriteError(
                    f"the model has no attention mask input (inputs: {', '.join(by_name) or 'none'}); "
                    "padding-free inference needs it to know which tokens are padding"
                )
            mask = candidates[0]
        if mask.dtype not in (np.int64, np.int32) or (mask.shape is not None and len(mask.shape) != 2):
            raise RewriteError(
                f"attention mask input '{mask.name}' must be int64 or int32 of shape [batch, sequence], "
                f"got {mask.dtype} {mask.shape}"
            )
        return mask


def _add_positions(graph: gs.Graph, packed: gs.Variable, token_offset: gs.Variable, positions: gs.Variable) -> None:
    """``positions = token_offset.flat[:T] mod S``: token t sits at flat position b * S + s."""
    prefix = "bytetx/positions"

    def node(op: str, inputs: list[gs.Tensor], dtype, **attrs) -> gs.Variable:
        output = gs.Variable(f"{prefix}/{op}_{len(graph.nodes)}", dtype)
        graph.nodes.append(gs.Node(op, f"{prefix}/{op}_{len(graph.nodes)}", attrs=attrs, inputs=inputs, outputs=[output]))
        return output

    zero, one, two, flat_shape = (gs.Constant(f"{prefix}/{value}", np.array([value], np.int64)) for value in (0, 1, 2, -1))
    flat = node("Reshape", [token_offset, flat_shape], np.int32)
    tokens = node("Slice", [node("Shape", [packed], np.int64), zero, one], np.int64)
    first = node("Slice", [flat, zero, tokens], np.int32)
    length = node("Slice", [node("Shape", [token_offset], np.int64), one, two], np.int64)
    graph.nodes.append(gs.Node("Mod", f"{prefix}/Mod", inputs=[first, node("Cast", [length], np.int32, to=TensorProto.INT32)],
                               outputs=[positions]))
    positions.dtype, positions.shape = np.int32, [ops.TOKENS_DIM]


def _blocks(graph: gs.Graph) -> list[gs.Node]:
    return [n for n in graph.nodes if is_bytetx(n, ops.FUSED_MHA)]


def _qkv_source(block: gs.Node) -> gs.Tensor:
    """The hidden states that a FusedMHA block's QKV MatMul projects."""
    matmul = block.inputs[0].inputs[0] if block.inputs[0].inputs else None
    if matmul is None or matmul.op != "MatMul":
        raise RewriteError(f"{describe(block)} does not read a QKV MatMul")
    return matmul.inputs[0]


def _per_feature_constant(tensor: gs.Tensor) -> gs.Tensor | None:
    """A constant that broadcasts the same way against [B, S, H] and [T, H], as a tensor of rank <= 1."""
    value = constant_value(tensor)
    if value is None or value.ndim > _PADDED_RANK or any(d != 1 for d in value.shape[:-1]):
        return None
    if value.ndim <= 1:
        return tensor
    return gs.Constant(f"{tensor.name}/per_feature", np.ascontiguousarray(value.reshape(value.shape[-1:])))


def _packed_inputs(node: gs.Node, packed: dict[str, gs.Variable]) -> list[gs.Tensor] | None:
    """The node's inputs with packed tensors substituted, or None if the node cannot run packed."""
    ins = node.inputs
    is_packed = [t.name in packed for t in ins]
    if is_bytetx(node, ops.FUSED_MHA):
        return [packed[ins[0].name], *ins[1:]] if is_packed[0] else None
    if node.op == "MatMul":
        weight = constant_value(ins[1])
        if is_packed[0] and weight is not None and weight.ndim == 2:
            return [packed[ins[0].name], ins[1]]
        return None
    if node.op in _UNARY or node.op == "Dropout":
        return [packed[ins[0].name], *ins[1:]] if is_packed[0] and not any(is_packed[1:]) else None
    if node.op == "Clip":
        if is_packed[0] and all(constant_value(t) is not None for t in ins[1:] if t.name):
            return [packed[ins[0].name], *ins[1:]]
        return None
    if node.op in _ELEMENTWISE:
        out = []
        for tensor, was_packed in zip(ins, is_packed):
            replacement = packed[tensor.name] if was_packed else _per_feature_constant(tensor)
            if replacement is None:
                return None
            out.append(replacement)
        return out
    if node.op in ("Split", "Slice"):
        # GeGLU's chunk of the up-projection into input and gate.
        constant_bounds = all(constant_value(t) is not None for t in ins[1:] if t.name)
        if not is_packed[0] or not constant_bounds or not _over_last_axis(node):
            return None
        return [packed[ins[0].name], *ins[1:]]
    if node.op in _LAST_AXIS or node.op in _REDUCTIONS:
        if not is_packed[0] or any(is_packed[1:]) or not _over_last_axis(node):
            return None
        extra = [_per_feature_constant(t) if t.name and node.op == "LayerNormalization" else t for t in ins[1:]]
        return None if any(t is None for t in extra) else [packed[ins[0].name], *extra]
    return None


def _reduction_axes(node: gs.Node) -> list[int] | None:
    if "axes" in node.attrs:
        return list(node.attrs["axes"])
    if len(node.inputs) > 1 and node.inputs[1].name:
        value = constant_value(node.inputs[1])
        return None if value is None else [int(a) for a in value.reshape(-1)]
    return None  # all axes


def _over_last_axis(node: gs.Node) -> bool:
    last = (-1, _PADDED_RANK - 1)
    if node.op == "Slice":
        axes = constant_value(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3].name else None
        return axes is not None and axes.size == 1 and int(axes.item()) in last
    if node.op == "Split":
        return node.attrs.get("axis", 0) in last
    if node.op in _REDUCTIONS:
        axes = _reduction_axes(node)
        return axes is not None and len(axes) == 1 and axes[0] in last and node.attrs.get("keepdims", 1) == 1
    return node.attrs.get("axis", -1) in last


def _normalize_axes(node: gs.Node) -> None:
    """Axes counted from the front shift when [B, S, H] becomes [T, H]; count them from the back."""
    if node.op in _LAST_AXIS or node.op == "Split":
        node.attrs["axis"] = -1
    elif node.op == "Slice":
        node.inputs[3] = gs.Constant(f"{node.name}/axes_last", np.array([-1], dtype=np.int64))
    elif node.op in _REDUCTIONS:
        if "axes" in node.attrs:
            node.attrs["axes"] = [-1]
        else:
            node.inputs[1] = gs.Constant(f"{node.name}/axes_last", np.array([-1], dtype=np.int64))
