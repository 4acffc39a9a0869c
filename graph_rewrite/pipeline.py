"""The padding-free rewrite: FuseAttention, then PackTokens, committed once and checked."""

from __future__ import annotations

import logging

import onnx
import onnx_graphsurgeon as gs

from bytetx import ops

from .base import PassReport, RewriteError
from .fuse_attention import FuseAttention
from .pack_tokens import PackTokens
from .packed_inputs import CU_SEQLENS_INPUT, PackedInputs, Pooling

# ReduceSum with its axes as an input.
_MIN_PACKED_OPSET = 13
# Metadata of the packed flavour.
INTERFACE_KEY = "bytetx_interface"
POOLING_KEY = "bytetx_pooling"
NORMALIZE_KEY = "bytetx_normalize"
MAX_LENGTH_KEY = "bytetx_max_length"
VOCAB_SIZE_KEY = "bytetx_vocab_size"
TYPE_VOCAB_SIZE_KEY = "bytetx_type_vocab_size"

def infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with every intermediate tensor's dtype and (symbolic) shape filled in.

    ONNX Runtime's symbolic inference follows the Shape/Concat arithmetic of exported attention
    blocks, so it finds the head count; ONNX's own inference is the fallback.
    """
    stripped = onnx.ModelProto()
    stripped.CopyFrom(model)
    del stripped.graph.value_info[:]
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        # It logs every op it cannot handle; the fallback covers those models.
        logging.getLogger("onnxruntime.tools.symbolic_shape_infer").setLevel(logging.CRITICAL)
        return SymbolicShapeInference.infer_shapes(stripped, auto_merge=True)
    except Exception:  # noqa: BLE001 - any failure of the optional inference falls back
        return onnx.shape_inference.infer_shapes(stripped, strict_mode=False)


def heads_per_softmax(inferred: onnx.ModelProto, num_heads: int | None = None) -> dict[str, int]:
    """Each Softmax's head count, read from the shape [B, heads, S, S] of its input.

    ``num_heads`` is used where shape inference cannot tell (and checked against it where it can).
    """
    shapes = {
        info.name: [d.dim_value if d.HasField("dim_value") else None for d in info.type.tensor_type.shape.dim]
        for info in inferred.graph.value_info
    }
    heads = {}
    for softmax in (n for n in inferred.graph.node if n.op_type == "Softmax"):
        dims = shapes.get(softmax.input[0])
        found = dims[1] if dims and len(dims) == 4 and dims[1] else None
        if found and num_heads and found != num_heads:
            raise RewriteError(f"{softmax.name}: the graph has {found} heads, but num_heads={num_heads} was given")
        if found or num_heads:
            heads[softmax.name] = found or num_heads
    return heads


def rewrite_padding_free(
    model: onnx.ModelProto, num_heads: int | None = None, mask_input: str = "attention_mask"
) -> tuple[onnx.ModelProto, list[PassReport]]:
    """Rewrite a BERT-family encoder to run padding-free with the bytetx ops.

    Inputs and outputs keep their names, dtypes and shapes. A model rewritten before is returned
    unchanged (every pass reports 0 changes). Raises RewriteError when the graph is not a
    BERT-family encoder, naming the block and node where matching stopped.
    """
    if any(n.domain == ops.DOMAIN for n in model.graph.node):
        return model, [PassReport(FuseAttention.name), PassReport(PackTokens.name)]
    if not any(n.op_type == "Softmax" for n in model.graph.node):
        raise RewriteError(
            "no self-attention block (Softmax over Q.K^T) found: this is not a BERT-family encoder"
        )
    inferred = infer_shapes(model)
    graph = _fold_constants(gs.import_onnx(inferred))
    passes = [FuseAttention(heads_per_softmax(inferred, num_heads)), PackTokens(mask_input)]
    reports = []
    for graph_pass in passes:
        reports.append(graph_pass.run(graph))
        graph.cleanup().toposort()
    return _export_checked(graph), reports


def to_packed_inputs(
    model: onnx.ModelProto, pooling: Pooling = "mean", normalize: bool = False, num_heads: int | None = None
) -> tuple[onnx.ModelProto, list[PassReport]]:
    """The packed-input flavour of a BERT-family encoder (docs/ops.md, "Packed inputs").

    Inputs ``input_ids`` [T], ``token_type_ids`` [T] (where the model has them), ``cu_seqlens`` int32
    [B + 1], ``max_seqlen`` int32 [S] (only its length is read); outputs ``last_hidden_state`` [T, H] and
    ``sentence_embedding`` [B, H] (``pooling`` "mean" or "cls", then L2 ``normalize``). Takes the original
    model or its padding-free rewrite; a packed model is returned unchanged. The model's metadata records
    the interface, the pooling, ``bytetx_max_length`` (the longest sequence its positions allow) and the
    sizes of its id and token-type vocabularies.
    """
    if model.graph.input and any(i.name == CU_SEQLENS_INPUT for i in model.graph.input):
        return model, [PassReport(PackedInputs.name)]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < _MIN_PACKED_OPSET:
        raise RewriteError(f"the packed flavour needs ONNX opset {_MIN_PACKED_OPSET} or newer, the model has {opset}")
    rewritten, reports = rewrite_padding_free(model, num_heads=num_heads)
    graph = gs.import_onnx(rewritten)
    packed_pass = PackedInputs(pooling, normalize)
    reports.append(packed_pass.run(graph))
    graph.cleanup().toposort()
    packed = _export_checked(graph)
    packed.metadata_props.extend(rewritten.metadata_props)
    metadata = {INTERFACE_KEY: "packed", POOLING_KEY: pooling, NORMALIZE_KEY: str(normalize).lower()}
    found = {MAX_LENGTH_KEY: packed_pass.max_length, VOCAB_SIZE_KEY: packed_pass.vocab_size,
             TYPE_VOCAB_SIZE_KEY: packed_pass.type_vocab_size}
    metadata.update({key: str(value) for key, value in found.items() if value is not None})
    for key, value in metadata.items():
        packed.metadata_props.add(key=key, value=value)
    return packed, reports


def _export_checked(graph: gs.Graph) -> onnx.ModelProto:
    rewritten = gs.export_onnx(graph)
    _set_opset(rewritten)
    # ONNX cannot infer through the bytetx ops: keep the types and shapes the passes gave their
    # outputs, and infer the rest anew from them.
    custom_outputs = {name for node in rewritten.graph.node if node.domain == ops.DOMAIN for name in node.output}
    kept = [info for info in rewritten.graph.value_info if info.name in custom_outputs]
    del rewritten.graph.value_info[:]
    rewritten.graph.value_info.extend(kept)
    rewritten = onnx.shape_inference.infer_shapes(rewritten, strict_mode=False)
    onnx.checker.check_model(rewritten)
    return rewritten


def _fold_constants(graph: gs.Graph) -> gs.Graph:
    """Fold constant expressions, such as SDPA's Sqrt(1/sqrt(head size)) computed from shapes, into
    initializers that the patterns read.

    Folding runs ONNX Runtime sessions whose optimizer warns about the unfoldable remainder; those
    warnings say nothing about the user's model, so they are silenced for the duration (severity 2,
    warning, is ONNX Runtime's default).
    """
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)
    try:
        # Identity of an initializer stays: folding it would copy ALBERT's shared weights per layer.
        return graph.fold_constants(should_exclude_node=lambda node: node.op == "Identity").cleanup()
    finally:
        onnxruntime.set_default_logger_severity(2)


def _set_opset(model: onnx.ModelProto) -> None:
    for opset in model.opset_import:
        if opset.domain == ops.DOMAIN:
            opset.version = ops.OP_SET_VERSION
            return
    model.opset_import.append(onnx.helper.make_opsetid(ops.DOMAIN, ops.OP_SET_VERSION))
