"""FuseAttention: each self-attention block becomes one QKV MatMul and a ``FusedMHA`` node.

Pattern (anchored on Softmax), as torch.onnx (TorchScript and dynamo, eager and SDPA attention) and
Optimum write it:

    X -> MatMul(Wq) -> Add(bq) -> Reshape/Transpose [-> Mul(c)] --\
    X -> MatMul(Wk) -> Add(bk) -> Reshape/Transpose [-> Mul(c)] --> MatMul -> [Mul/Div(c)] [-> Add(bias)]
                                                    -> Add(mask) -> Softmax -> MatMul -> Transpose/Reshape -> C
    X -> MatMul(Wv) -> Add(bv) -> Reshape/Transpose -------------------------------/

Q, K and V may also come from one projection unflattened to [B, S, 3, heads, d] and split (ModernBERT's
Wqkv), and Q and K may be rotated ``x * cos + rotate_half(x) * sin`` after it (rotary.py).

An Add (or Where) between the scores and Softmax whose other operand depends on an input's values
applies the attention mask; evaluated with every token valid, it must mask nothing or a sliding
window (sliding_window.py). One whose other operand reads only shapes must be a relative position
bias that position_bias.py recognizes (MPNet's, computed once and added in every layer); any other
additive term is refused rather than dropped.

Replacement: ``C = FusedMHA(MatMul(X, [Wq|Wk|Wv]), [bq|bk|bv], cu_seqlens, token_offset)``, plus
``positions`` and the bias table (scaled by any factor applied after the bias) where the block has a
position bias, ``positions`` and the ``rotary_frequencies`` / ``sliding_window`` attributes where it
has those. The mask and bias subgraphs and the per-head reshapes become dead; the pipeline's
cleanup drops them. ``cu_seqlens``, ``token_offset`` and ``positions`` are produced by the PackTokens
pass.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import onnx_graphsurgeon as gs

from bytetx import ops

from .base import GraphPass, PassReport, RewriteError, constant_value, describe, producer, scalar_value
from .disentangled import DisentangledTerms, NotDisentangled, depends_on, find_disentangled_terms
from .position_bias import NotAPositionBias, RelativePositionBias, find_relative_position_bias
from .rotary import NotARotary, Rotation, match_rotation, rotary_frequencies
from .sliding_window import MaskForm, NotAWindow, find_sliding_window

# Ops that only move a head's data around between the projection and the score MatMul.
_LAYOUT_OPS = {"Reshape", "Transpose", "Cast", "Identity", "Squeeze", "Unsqueeze"}
# Ops between Softmax and the context MatMul that leave the probabilities unchanged at inference.
_PROBABILITY_PASSTHROUGH = {"Cast", "Identity", "Dropout", "Reshape"}
# At most this many nodes between a Softmax and its score MatMul (scale, mask add, casts).
_MAX_SCORE_PATH = 8


@dataclass
class Projection:
    """``x @ weight + bias``, one of Q, K, V."""

    x: gs.Tensor
    weight: np.ndarray
    bias: np.ndarray | None


@dataclass
class Traced:
    """A Q/K/V operand of an attention MatMul, traced to its projection."""

    projection: Projection
    scale: float  # the product of the constant factors met on the way
    rotation: Rotation | None  # rotary embeddings applied on the way


@dataclass
class AttentionMatch:
    layer: int
    softmax: gs.Node
    q: Projection
    k: Projection
    v: Projection
    context: gs.Tensor  # [B, S, H] input of the output projection
    scale: float
    num_heads: int
    position_bias: RelativePositionBias | None  # its table already scaled like the scores after it
    rotary_frequencies: np.ndarray | None = None
    sliding_window: int | None = None
    disentangled: DisentangledTerms | None = None


def _fail(layer: int, node: gs.Node, why: str) -> RewriteError:
    return RewriteError(f"attention block {layer}: matching stopped at {describe(node)}: {why}")


def _split_constant(node: gs.Node) -> tuple[float | None, gs.Tensor | None, int]:
    """For a binary node with one scalar-constant input: (constant, other input, index of constant)."""
    for index in (1, 0):
        value = scalar_value(node.inputs[index])
        if value is not None:
            return value, node.inputs[1 - index], index
    return None, None, -1


def _trace_projection(tensor: gs.Tensor, layer: int, what: str) -> Traced:
    """Walk up from a Q/K/V operand of an attention MatMul to its projection, past the layout ops,
    constant factors (SDPA exports scale Q and K by sqrt(scale) each) and rotary embeddings."""
    scale, rotation = 1.0, None
    while True:
        node = producer(tensor)
        if node is None:
            raise RewriteError(
                f"attention block {layer}: the {what} path reaches graph input '{tensor.name}' "
                "without a projection MatMul"
            )
        if node.op in _LAYOUT_OPS:
            tensor = node.inputs[0]
            continue
        if node.op in ("Mul", "Div"):
            value, other, index = _split_constant(node)
            if value is None or (node.op == "Div" and index != 1):
                raise _fail(layer, node, f"the {what} path is scaled by a non-constant")
            scale *= value if node.op == "Mul" else 1.0 / value
            tensor = other
            continue
        if node.op in ("Split", "Slice", "Gather"):
            chunk = _qkv_chunk(node, tensor)
            if chunk is None:
                raise _fail(layer, node, f"the {what} path selects something other than one of Q, K, V "
                                         "from a [batch, sequence, 3, heads, head size] projection")
            fused, index = chunk
            traced = _trace_projection(fused, layer, what)
            return Traced(_column_chunk(traced.projection, index, fused.shape, layer, node, what),
                          scale * traced.scale, rotation or traced.rotation)
        if node.op == "Add":
            found = match_rotation(node)
            if found is not None:
                if rotation is not None:
                    raise _fail(layer, node, f"the {what} path has a second rotary embedding")
                rotation, tensor = found, found.x
                continue
            for bias_index in (1, 0):
                bias = constant_value(node.inputs[bias_index])
                matmul = producer(node.inputs[1 - bias_index])
                if bias is not None and bias.ndim == 1 and matmul is not None and matmul.op == "MatMul":
                    projection = _projection_from_matmul(matmul, bias, layer, what)
                    return Traced(projection, scale, rotation)
            raise _fail(layer, node, f"the {what} path has an Add that is neither a projection bias nor "
                                     "rotary embeddings (x * cos + rotate_half(x) * sin)")
        if node.op == "MatMul":
            return Traced(_projection_from_matmul(node, None, layer, what), scale, rotation)
        raise _fail(layer, node, f"unexpected op on the {what} path")


def _qkv_chunk(node: gs.Node, tensor: gs.Tensor) -> tuple[gs.Tensor, int] | None:
    """For ``node`` taking ``tensor`` as one of three (a Split, a Slice of one, or a Gather) along the
    axis that is axis 2 of a [B, S, 3, heads, d] tensor, before any Transpose (transformers 4 moves it):
    that tensor and the index, else None."""
    if node.op == "Split":
        axis, index = node.attrs.get("axis", 0), node.outputs.index(tensor)
        sizes = constant_value(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1].name else None
        if len(node.outputs) != 3 or (sizes is not None and list(sizes.reshape(-1)) != [1, 1, 1]):
            return None
    elif node.op == "Slice":
        bounds = [constant_value(t) for t in node.inputs[1:4]]
        steps = constant_value(node.inputs[4]) if len(node.inputs) > 4 and node.inputs[4].name else np.ones(1)
        if any(v is None or v.size != 1 for v in (*bounds, steps)) or int(steps.item()) != 1:
            return None
        start, end = (_clamp_to_three(int(v.item())) for v in bounds[:2])
        axis, index = int(bounds[2].item()), start
        if end - start != 1:
            return None
    else:
        indices = constant_value(node.inputs[1])
        if indices is None or indices.ndim != 0:
            return None
        axis, index = node.attrs.get("axis", 0), int(indices) % 3
    fused, axis = node.inputs[0], axis % 5
    while (transpose := producer(fused)) is not None and transpose.op == "Transpose":
        perm = transpose.attrs.get("perm")
        if perm is None or len(perm) != 5:
            return None
        fused, axis = transpose.inputs[0], perm[axis]
    shape = fused.shape
    if shape is None or len(shape) != 5 or shape[2] != 3 or axis != 2:
        return None
    return fused, index


def _clamp_to_three(bound: int) -> int:
    """A Slice bound on an axis of size 3, as ONNX resolves it."""
    return min(max(bound + 3 if bound < 0 else bound, 0), 3)


def _column_chunk(projection: Projection, index: int, shape: list, layer: int, node: gs.Node,
                  what: str) -> Projection:
    """Chunk ``index`` of three of a projection's columns, which the shape [B, S, 3, heads, d] unflattens."""
    columns = projection.weight.shape[1]
    width = columns // 3
    if columns % 3 or not all(isinstance(d, int) for d in shape[3:]) or shape[3] * shape[4] != width:
        raise _fail(layer, node, f"the {what} path selects one of {shape[2:]} from a projection of {columns} columns")
    part = slice(index * width, (index + 1) * width)
    bias = None if projection.bias is None else projection.bias[part]
    return Projection(projection.x, np.ascontiguousarray(projection.weight[:, part]), bias)


def _projection_from_matmul(node: gs.Node, bias: np.ndarray | None, layer: int, what: str) -> Projection:
    weight = constant_value(node.inputs[1])
    if weight is None or weight.ndim != 2:
        raise _fail(layer, node, f"the {what} projection weight is not a constant matrix")
    if bias is not None and bias.shape != (weight.shape[1],):
        raise _fail(layer, node, f"the {what} bias has shape {bias.shape}, expected ({weight.shape[1]},)")
    return Projection(node.inputs[0], weight, bias)


def _leads_to_score_matmul(tensor: gs.Tensor, depth: int) -> bool:
    node = producer(tensor)
    if node is None or depth == 0:
        return False
    if node.op == "MatMul":
        return constant_value(node.inputs[1]) is None
    if node.op in ("Mul", "Div", "Cast", "Identity", "Reshape"):
        return any(_leads_to_score_matmul(t, depth - 1) for t in node.inputs[:1 if node.op == "Reshape" else 2]
                   if constant_value(t) is None)
    if node.op in ("Add", "Where"):
        return any(_leads_to_score_matmul(t, depth - 1) for t in node.inputs)
    return False


def _reads_input_values(tensor: gs.Tensor, seen: set[int]) -> bool:
    """Whether ``tensor`` depends on the values of a graph input, not only on shapes: the attention
    mask does, a position bias computed from the sequence length (MPNet's) does not."""
    if id(tensor) in seen:
        return False
    seen.add(id(tensor))
    node = producer(tensor)
    if node is None:
        return not isinstance(tensor, gs.Constant)
    return node.op != "Shape" and any(_reads_input_values(t, seen) for t in node.inputs)


@dataclass
class ScorePath:
    """What lies between ``Q @ K^T`` and Softmax: the product of the scale factors, and the additive
    term that reads no input values (a position bias) with the factor applied after it."""

    matmul: gs.Node
    scale: float
    bias_term: gs.Tensor | None = None
    bias_add: gs.Node | None = None
    bias_scale: float = 1.0
    # Terms that read input values: attention masks, or DeBERTa's disentangled terms (which read Q and K),
    # each with its node, how it applies, and the factor applied after it.
    masks: list[tuple[gs.Tensor, gs.Node, MaskForm, float]] = field(default_factory=list)


def _find_score_path(softmax: gs.Node, layer: int) -> ScorePath:
    """From Softmax up to ``Q @ K^T``, past the scale, the additive mask and a position bias."""
    tensor, scale = softmax.inputs[0], 1.0
    bias: tuple[gs.Tensor, gs.Node, float] | None = None
    masks: list[tuple[gs.Tensor, gs.Node, MaskForm, float]] = []
    for _ in range(_MAX_SCORE_PATH):
        node = producer(tensor)
        if node is None:
            break
        if node.op == "MatMul" and constant_value(node.inputs[1]) is None:
            return ScorePath(node, scale, *(bias or (None, None, 1.0)), masks)
        if node.op in ("Mul", "Div"):
            value, other, index = _split_constant(node)
            if value is not None and not (node.op == "Div" and index != 1):
                scale *= value if node.op == "Mul" else 1.0 / value
                tensor = other
                continue
        if node.op in ("Cast", "Identity", "Reshape"):  # Reshape: [B * heads, S, S] <-> [B, heads, S, S]
            tensor = node.inputs[0]
            continue
        if node.op in ("Add", "Where"):
            data = [t for t in node.inputs if _leads_to_score_matmul(t, _MAX_SCORE_PATH)]
            if len(data) == 1:
                terms = [node.inputs[0]] if node.op == "Where" else [t for t in node.inputs if t is not data[0]]
                if not all(_reads_input_values(t, set()) for t in terms):
                    if node.op != "Add" or len(terms) != 1 or bias is not None:
                        raise _fail(layer, node, "the scores get an additive term that is neither the attention "
                                                 "mask nor one relative position bias")
                    bias = (terms[0], node, scale)
                elif node.op == "Add":
                    masks.append((terms[0], node, "additive", scale))
                else:
                    masks.append((terms[0], node, "keep_where_true" if data[0] is node.inputs[1] else "keep_where_false",
                                  scale))
                tensor = data[0]
                continue
        raise _fail(layer, node, "expected the scale, a position bias or the attention mask between scores and Softmax")
    raise _fail(layer, softmax, "no Q.K^T MatMul above this Softmax")


def _find_context_matmul(softmax: gs.Node, layer: int) -> gs.Node:
    """From Softmax down to ``P @ V``, past casts, dropout and the NaN guard that SDPA exports add."""
    tensor = softmax.outputs[0]
    for _ in range(_MAX_SCORE_PATH):
        step = None
        for consumer in tensor.outputs:
            if consumer.op == "MatMul" and consumer.inputs[0] is tensor:
                return consumer
            if consumer.op in _PROBABILITY_PASSTHROUGH and consumer.inputs[0] is tensor:
                step = consumer
            elif consumer.op == "Where" and tensor in consumer.inputs[1:]:
                step = consumer
        if step is None:
            break
        tensor = step.outputs[0]
    raise _fail(layer, softmax, "no probabilities @ V MatMul below this Softmax")


def _find_context_output(context_matmul: gs.Node, layer: int) -> gs.Tensor:
    """From ``P @ V`` down through the head merge to the [B, S, H] input of the output projection."""
    tensor = context_matmul.outputs[0]
    while True:
        users = [c for c in tensor.outputs if c.op != "Shape"]
        if len(users) != 1:
            raise _fail(layer, context_matmul, f"the context '{tensor.name}' has {len(users)} data users")
        user = users[0]
        if user.op in _LAYOUT_OPS and user.inputs[0] is tensor:
            tensor = user.outputs[0]
            continue
        if user.op == "MatMul" and user.inputs[0] is tensor and constant_value(user.inputs[1]) is not None:
            return tensor
        raise _fail(layer, user, "expected the head merge and the output projection after P @ V")


@dataclass
class _Block:
    """One attention block's structure, before its position features are evaluated."""

    layer: int
    softmax: gs.Node
    path: ScorePath
    q: Traced
    k: Traced
    v: Traced
    context: gs.Tensor
    num_heads: int
    masks: list[tuple[gs.Tensor, gs.Node, MaskForm, float]]
    disentangled: tuple[gs.Tensor, gs.Node, MaskForm, float] | None  # DeBERTa's term on the scores
    query_heads: set[str]  # the tensors between the projections and Q K^T
    key_heads: set[str]


def _head_rows(tensor: gs.Tensor) -> set[str]:
    """The names of the tensors from an operand of Q K^T up to its projection: layout ops and constant
    factors, where DeBERTa's disentangled terms read the head rows."""
    names = set()
    while True:
        names.add(tensor.name)
        node = producer(tensor)
        if node is None or not (node.op in _LAYOUT_OPS or (node.op in ("Mul", "Div") and _split_constant(node)[0] is not None)):
            return names
        tensor = node.inputs[0] if node.op in _LAYOUT_OPS else _split_constant(node)[1]


def _content_key(*projections: Projection) -> bytes:
    digest = hashlib.sha1()
    for p in projections:
        for array in (p.weight, p.bias):
            if array is not None:
                digest.update(str(array.shape).encode())
                digest.update(np.ascontiguousarray(array).tobytes())
    return digest.digest()


class FuseAttention(GraphPass):
    """Replace every BERT-style self-attention block by a QKV MatMul and ``FusedMHA``.

    ``num_heads_by_layer`` gives each block's head count in graph order (symbolic shape inference
    of the original model finds it; see pipeline.py).
    """

    name = "FuseAttention"

    def __init__(self, num_heads_by_layer: dict[str, int]):
        self.num_heads_by_softmax = num_heads_by_layer

    def match(self, graph: gs.Graph) -> list[AttentionMatch]:
        # Every block's structure first, so that a broken block is named before any evaluation runs
        # on a graph whose shapes it may have confused.
        blocks = [self._match_structure(layer, softmax)
                  for layer, softmax in enumerate(n for n in graph.nodes if n.op == "Softmax")]
        # Position biases, masks and rotary cos/sin are shared by the layers of one kind: evaluate each once.
        position_biases: dict[str, RelativePositionBias] = {}
        windows: dict[str, int | None] = {}
        frequencies: dict[tuple[str, str], np.ndarray] = {}
        matches = []
        for block in blocks:
            layer, path, num_heads = block.layer, block.path, block.num_heads
            position_bias = None
            if path.bias_term is not None:
                name = path.bias_term.name
                if name not in position_biases:
                    try:
                        position_biases[name] = find_relative_position_bias(graph, path.bias_term, num_heads)
                    except NotAPositionBias as error:
                        raise _fail(layer, path.bias_add, f"the scores get an additive term that is not the "
                                                          f"attention mask, and not a position bias: {error}") from None
                found = position_biases[name]
                position_bias = RelativePositionBias(found.table * np.float32(path.bias_scale), found.max_distance)
            q, k, v = block.q.projection, block.k.projection, block.v.projection
            head_size = q.weight.shape[1] // num_heads
            rotary = self._rotary(graph, block, head_size, frequencies)
            window = self._window(graph, block, windows)
            scale = path.scale * block.q.scale * block.k.scale
            disentangled = None
            if block.disentangled is not None:
                term, node, _, scale_after = block.disentangled
                try:
                    disentangled = find_disentangled_terms(graph, term, block.query_heads, block.key_heads, num_heads,
                                                           head_size, scale / scale_after)
                except NotDisentangled as error:
                    raise _fail(layer, node, "the scores get a term computed from the query or key that is not "
                                             f"DeBERTa's disentangled attention: {error}") from None
            matches.append(AttentionMatch(layer, block.softmax, q, k, v, block.context, scale, num_heads,
                                          position_bias, rotary, window, disentangled))
        return matches

    def _match_structure(self, layer: int, softmax: gs.Node) -> _Block:
        if softmax.attrs.get("axis", -1) not in (-1, 3):
            raise _fail(layer, softmax, "softmax is not over the key axis")
        path = _find_score_path(softmax, layer)
        traced_q = _trace_projection(path.matmul.inputs[0], layer, "query")
        traced_k = _trace_projection(path.matmul.inputs[1], layer, "key")
        context_matmul = _find_context_matmul(softmax, layer)
        traced_v = _trace_projection(context_matmul.inputs[1], layer, "value")
        q, k, v = traced_q.projection, traced_k.projection, traced_v.projection
        if not (q.x is k.x is v.x):
            raise _fail(layer, softmax, "query, key and value are projected from different tensors")
        if not (q.weight.shape == k.weight.shape == v.weight.shape):
            raise _fail(layer, softmax, "query, key and value projections differ in shape")
        num_heads = self.num_heads_by_softmax.get(softmax.name)
        if num_heads is None:
            raise _fail(layer, softmax, "the number of heads is unknown (pass num_heads)")
        if q.weight.shape[1] % num_heads:
            raise _fail(layer, softmax, f"hidden size {q.weight.shape[1]} is not a multiple of {num_heads} heads")
        if traced_v.rotation is not None:
            raise _fail(layer, softmax, "the value path has rotary embeddings")
        if (traced_q.rotation is None) != (traced_k.rotation is None):
            raise _fail(layer, softmax, "rotary embeddings on only one of query and key")
        context = _find_context_output(context_matmul, layer)
        query_heads, key_heads = _head_rows(path.matmul.inputs[0]), _head_rows(path.matmul.inputs[1])
        disentangled = [m for m in path.masks if m[2] == "additive" and depends_on(m[0], query_heads | key_heads)]
        if len(disentangled) > 1:
            raise _fail(layer, disentangled[1][1], "the scores get a second term computed from the query or key")
        masks = [m for m in path.masks if m not in disentangled]
        return _Block(layer, softmax, path, traced_q, traced_k, traced_v, context, num_heads, masks,
                      disentangled[0] if disentangled else None, query_heads, key_heads)

    @staticmethod
    def _rotary(graph: gs.Graph, block: _Block, head_size: int,
                found: dict[tuple[str, str], np.ndarray]) -> np.ndarray | None:
        """The frequencies of the rotary embeddings on Q and K (the same on both), None without."""
        layer, softmax = block.layer, block.softmax
        if block.q.rotation is None:
            return None
        result = []
        for rotation in (block.q.rotation, block.k.rotation):
            key = (rotation.cos.name, rotation.sin.name)
            if key not in found:
                try:
                    found[key] = rotary_frequencies(graph, rotation, head_size)
                except NotARotary as error:
                    raise _fail(layer, softmax, f"the rotary embeddings are not FusedMHA's: {error}") from None
            result.append(found[key])
        if not np.array_equal(*result):
            raise _fail(layer, softmax, "query and key are rotated by different frequencies")
        return result[0]

    @staticmethod
    def _window(graph: gs.Graph, block: _Block, found: dict[str, int | None]) -> int | None:
        """The sliding window the block's masks apply besides padding, None if they mask only padding."""
        layer, windows = block.layer, set()
        for term, node, form, _ in block.masks:
            if term.name not in found:
                try:
                    found[term.name] = find_sliding_window(graph, term, form)
                except NotAWindow as error:
                    raise _fail(layer, node, f"the attention mask masks more than padding: {error}") from None
            if found[term.name] is not None:
                windows.add(found[term.name])
        if len(windows) > 1:
            raise _fail(layer, block.path.matmul, f"the scores get sliding windows of {sorted(windows)}")
        return windows.pop() if windows else None

    def run(self, graph: gs.Graph) -> PassReport:
        report = PassReport(self.name)
        matches = self.match(graph)
        if not matches:
            return report
        tensors = graph.tensors()
        cu_seqlens = tensors.get(ops.CU_SEQLENS) or gs.Variable(ops.CU_SEQLENS, dtype=np.int32)
        token_offset = tensors.get(ops.TOKEN_OFFSET) or gs.Variable(ops.TOKEN_OFFSET, dtype=np.int32)
        positions = tensors.get(ops.POSITIONS) or gs.Variable(ops.POSITIONS, dtype=np.int32)
        merged: dict[bytes, tuple[gs.Constant, gs.Constant]] = {}
        bias_tables: dict[bytes, gs.Constant] = {}
        for m in matches:
            # Layers that share weights (ALBERT) share one merged copy, whatever the export named them.
            key = _content_key(m.q, m.k, m.v)
            if key not in merged:
                weight = np.concatenate([m.q.weight, m.k.weight, m.v.weight], axis=1)
                bias = np.concatenate([p.bias if p.bias is not None else np.zeros(p.weight.shape[1], p.weight.dtype)
                                       for p in (m.q, m.k, m.v)])
                merged[key] = (
                    gs.Constant(f"bytetx_qkv_weight_{len(merged)}", np.ascontiguousarray(weight)),
                    gs.Constant(f"bytetx_qkv_bias_{len(merged)}", np.ascontiguousarray(bias)),
                )
            weight, bias = merged[key]
            prefix = f"bytetx/attention_{m.layer}"
            qkv = gs.Variable(f"{prefix}/qkv", dtype=m.q.weight.dtype)
            inputs = [qkv, bias, cu_seqlens, token_offset]
            attrs = {"num_heads": m.num_heads, "scale": float(m.scale)}
            described = ""
            if m.rotary_frequencies is not None:
                attrs["rotary_frequencies"] = [float(f) for f in m.rotary_frequencies]
                described += f", rotary embeddings ({len(m.rotary_frequencies)} frequencies)"
            if m.sliding_window is not None:
                attrs["sliding_window"] = m.sliding_window
                described += f", sliding window {m.sliding_window}"
            if m.position_bias is not None:
                table = np.ascontiguousarray(m.position_bias.table.astype(m.q.weight.dtype))
                table_key = table.tobytes()
                if table_key not in bias_tables:
                    bias_tables[table_key] = gs.Constant(f"bytetx_relative_position_bias_{len(bias_tables)}", table)
                inputs += [positions, bias_tables[table_key]]
                attrs["relative_position_max_distance"] = m.position_bias.max_distance
                described += (f", relative position bias ({table.shape[0]} buckets, "
                              f"max distance {m.position_bias.max_distance})")
            elif m.rotary_frequencies is not None or m.sliding_window is not None or m.disentangled is not None:
                inputs.append(positions)
            if m.disentangled is not None:
                terms = m.disentangled
                inputs.append(gs.Variable.empty())  # no relative_position_bias
                for name, table in (("position_key", terms.position_key), ("position_query", terms.position_query)):
                    if table is None:
                        inputs.append(gs.Variable.empty())
                        continue
                    table = np.ascontiguousarray(table.astype(m.q.weight.dtype))
                    table_key = table.tobytes()
                    if table_key not in bias_tables:
                        bias_tables[table_key] = gs.Constant(f"bytetx_{name}_{len(bias_tables)}", table)
                    inputs.append(bias_tables[table_key])
                while not inputs[-1].name:
                    inputs.pop()
                attrs["position_buckets"] = terms.position_buckets
                attrs["max_relative_positions"] = terms.max_relative_positions
                described += f", {terms}"
            m.context.inputs.clear()
            graph.nodes.append(gs.Node("MatMul", f"{prefix}/QkvMatMul", inputs=[m.q.x, weight], outputs=[qkv]))
            graph.nodes.append(
                gs.Node(ops.FUSED_MHA, f"{prefix}/{ops.FUSED_MHA}", attrs=attrs, inputs=inputs,
                        outputs=[m.context], domain=ops.DOMAIN)
            )
            report.add(
                f"block {m.layer} ({m.softmax.name}): {m.num_heads} heads, head size "
                f"{m.q.weight.shape[1] // m.num_heads}, scale {m.scale:.6g}{described}"
            )
        return report
