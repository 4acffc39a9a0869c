"""PackedInputs: the packed-input flavour of a padding-free model, for servers that batch without padding.

Pattern: the ``RemovePadding`` that PackTokens put after the embeddings, fed by embedding-table Gathers
whose indices are the token ids, the token types, or computed from them (positions, default types).
Replacement (docs/ops.md, "Packed inputs"):

- inputs ``input_ids`` int64 ``[T]`` (the sequences concatenated), ``token_type_ids`` int64 ``[T]``
  where the model takes token types, ``cu_seqlens`` int32 ``[B + 1]`` and ``max_seqlen`` int32 ``[S]``
  (only its length is read: it bounds every sequence length, as ``token_offset``'s ``S`` does);
- every embedding Gather reads ``[1, T]`` indices: the ids, the types, or, for a computed index, what
  the original subgraph gives a right-padded batch, found by evaluating it on a probe batch: positions
  that restart in every sequence plus the architecture's offset (0 for BERT, ``padding_idx + 1`` for
  RoBERTa), or a constant (RoBERTa's default token type);
- where the embeddings read the attention mask (DeBERTa multiplies them by it), they read ones instead;
- ``RemovePadding`` disappears: the embeddings are already ``[1, T, H]`` (one squeeze), ``cu_seqlens`` is
  the input, the ``[B, S]`` shape that ``FusedMHA`` reads comes from the inputs' shapes, and the
  positions of a relative position bias count from each sequence's start;
- outputs ``last_hidden_state`` ``[T, H]`` (packed) and ``sentence_embedding`` ``[B, H]``: mean or
  first-token pooling per sequence with one MatMul by a ``[B, T]`` weight matrix, then optionally L2
  normalization. Other outputs (a pooler) are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import onnx_graphsurgeon as gs
from onnx import TensorProto
from onnx.helper import np_dtype_to_tensor_dtype

from bytetx import ops

from .base import GraphPass, PassReport, RewriteError, ancestor_nodes, constant_value, describe, producer

Pooling = Literal["mean", "cls"]
POOLINGS = ("mean", "cls")

INPUT_IDS = "input_ids"
TOKEN_TYPE_IDS = "token_type_ids"
CU_SEQLENS_INPUT = "cu_seqlens"
MAX_SEQLEN_INPUT = "max_seqlen"
HIDDEN_OUTPUT = "last_hidden_state"
SENTENCE_OUTPUT = "sentence_embedding"
# Symbolic dimensions of the packed interface.
TOTAL_TOKENS, BATCH_PLUS_ONE, MAX_LENGTH, BATCH = "total_tokens", "batch_plus_one", "max_length", "batch"
# torch.nn.functional.normalize's floor on the norm.
NORMALIZE_EPSILON = 1e-12

_PROBE_LENGTHS = (7, 4, 1)


@dataclass
class EmbeddingIndex:
    """What one embedding-table Gather reads in a right-padded batch."""

    gather: gs.Node
    kind: Literal["ids", "types", "positions", "constant"]
    value: int = 0  # the positions' offset, or the constant

    @property
    def table_rows(self) -> int:
        return int(constant_value(self.gather.inputs[0]).shape[0])


class PackedInputs(GraphPass):
    """Turn a padding-free model (after FuseAttention and PackTokens) into its packed-input flavour."""

    name = "PackedInputs"

    def __init__(self, pooling: Pooling = "mean", normalize: bool = False):
        if pooling not in POOLINGS:
            raise RewriteError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.pooling = pooling
        self.normalize = normalize
        # Found by run(): the longest sequence the positions allow, and the rows of the id and type tables.
        self.max_length: int | None = None
        self.vocab_size: int | None = None
        self.type_vocab_size: int | None = None

    def run(self, graph: gs.Graph) -> PassReport:
        report = PassReport(self.name)
        removers = [n for n in graph.nodes if n.op == ops.REMOVE_PADDING and n.domain == ops.DOMAIN]
        if not removers and any(t.name == CU_SEQLENS_INPUT for t in graph.inputs):
            return report
        if len(removers) != 1:
            raise RewriteError(f"expected one RemovePadding (run rewrite_padding_free first), found {len(removers)}")
        remover = removers[0]
        outputs = {t.name: t for t in graph.outputs}
        if HIDDEN_OUTPUT not in outputs:
            raise RewriteError(f"the model has no '{HIDDEN_OUTPUT}' output (outputs: {', '.join(outputs)})")
        rebuild = producer(outputs[HIDDEN_OUTPUT])
        if rebuild is None or rebuild.op != ops.REBUILD_PADDING:
            raise RewriteError(f"'{HIDDEN_OUTPUT}' is not rebuilt from packed tokens")
        packed_hidden = rebuild.inputs[0]

        old_inputs = {t.name: t for t in graph.inputs}
        indices = classify_embedding_indices(graph, remover.inputs[0])
        positions = [i for i in indices if i.kind == "positions"]
        self.max_length = min(i.table_rows - i.value for i in positions) if positions else None
        self.vocab_size = next(i.table_rows for i in indices if i.kind == "ids")
        self.type_vocab_size = next((i.table_rows for i in indices if i.kind == "types"), None)

        ids = gs.Variable(INPUT_IDS, np.int64, [TOTAL_TOKENS])
        for tensor in old_inputs.values():
            tensor.name = f"{tensor.name}/padded"
        new_inputs = [ids]
        types = None
        if any(i.kind == "types" for i in indices):
            types = gs.Variable(TOKEN_TYPE_IDS, np.int64, [TOTAL_TOKENS])
            new_inputs.append(types)
        cu_seqlens = gs.Variable(CU_SEQLENS_INPUT, np.int32, [BATCH_PLUS_ONE])
        max_seqlen = gs.Variable(MAX_SEQLEN_INPUT, np.int32, [MAX_LENGTH])
        new_inputs += [cu_seqlens, max_seqlen]

        build = _Builder(graph, "bytetx/packed_inputs")
        layout = build.layout(ids, cu_seqlens)
        for index in indices:
            source = {"ids": ids, "types": types}.get(index.kind)
            if index.kind == "positions":
                source = build.op("Add", [layout.positions, build.const(np.array(index.value, np.int64))])
            elif index.kind == "constant":
                source = build.op("Add", [build.op("Mul", [ids, build.const(np.array(0, np.int64))]),
                                          build.const(np.array(index.value, np.int64))])
            index.gather.inputs[1] = build.op("Unsqueeze", [source, build.const(np.array([0], np.int64))])
            report.add(f"{describe(index.gather)} reads the packed {index.kind}"
                       + (f" (+{index.value})" if index.kind in ("positions", "constant") and index.value else ""))

        embeddings, mask = remover.inputs[0], remover.inputs[1]
        # Every packed token is valid: where the embeddings read the mask (DeBERTa multiplies by it), ones.
        ones = None
        for node in ancestor_nodes(embeddings):
            for index, tensor in enumerate(node.inputs):
                if tensor is mask:
                    if ones is None:
                        ones = build.op("Unsqueeze", [build.op("Cast", [build.op("Add", [
                            build.op("Mul", [ids, build.const(np.array(0, np.int64))]),
                            build.const(np.array(1, np.int64))])], to=np_dtype_to_tensor_dtype(np.dtype(mask.dtype))),
                            build.const(np.array([0], np.int64))])
                        report.add(f"the embeddings read ones for the mask '{mask.name.removesuffix('/padded')}' (every packed "
                                   "token is valid)")
                    node.inputs[index] = ones
        leaks = _readers_of(embeddings, {id(t) for t in old_inputs.values()})
        if leaks:
            raise RewriteError(f"the embeddings still read the padded inputs at {leaks[0]}: only token ids, token "
                               "types and positions can be packed")
        packed_embeddings, remover_cu_seqlens, token_offset = remover.outputs
        remover.inputs.clear()
        remover.outputs.clear()
        graph.nodes.append(gs.Node("Squeeze", f"{build.prefix}/SqueezeEmbeddings",
                                   inputs=[embeddings, build.const(np.array([0], np.int64))],
                                   outputs=[packed_embeddings]))
        for node in list(remover_cu_seqlens.outputs):
            node.inputs[node.inputs.index(remover_cu_seqlens)] = cu_seqlens
        positions = graph.tensors().get(ops.POSITIONS)
        if positions is not None:
            # Padded positions came from token_offset; packed ones restart in every sequence.
            positions.inputs.clear()
            graph.nodes.append(gs.Node("Cast", f"{build.prefix}/Positions", attrs={"to": TensorProto.INT32},
                                       inputs=[layout.positions], outputs=[positions]))
            report.add("relative position bias: positions within each sequence")
        batch_by_length = build.op("Concat", [layout.batch, build.op("Shape", [max_seqlen])], axis=0)
        graph.nodes.append(gs.Node("ConstantOfShape", f"{build.prefix}/TokenOffsetShape", inputs=[batch_by_length],
                                   outputs=[token_offset], attrs={"value": gs.Constant("zero", np.zeros(1, np.int32))}))
        report.add(f"RemovePadding replaced: embeddings packed from the inputs (mask '{mask.name}' no longer read)")

        rebuild.outputs.clear()
        for tensor in outputs.values():
            tensor.name = f"{tensor.name}/padded"
        hidden = build.op("Identity", [packed_hidden], name=HIDDEN_OUTPUT)
        hidden.dtype, hidden.shape = packed_hidden.dtype, [TOTAL_TOKENS, packed_hidden.shape[-1] if packed_hidden.shape
                                                           else None]
        sentence = build.pooled(layout, hidden, self.pooling, self.normalize)
        dropped = [name for name in outputs if name != HIDDEN_OUTPUT]
        graph.inputs = new_inputs
        graph.outputs = [hidden, sentence]
        report.add(f"outputs: packed {HIDDEN_OUTPUT} [T, H], {SENTENCE_OUTPUT} [B, H] ({self.pooling} pooling"
                   + (", L2-normalized)" if self.normalize else ")")
                   + (f"; dropped {', '.join(dropped)}" if dropped else ""))
        graph.cleanup()
        rebuilds = [n for n in graph.nodes if n.op == ops.REBUILD_PADDING]
        if rebuilds:
            raise RewriteError(f"{describe(rebuilds[0])} still needs padded positions in the packed flavour")
        return report


def classify_embedding_indices(graph: gs.Graph, embeddings: gs.Tensor) -> list[EmbeddingIndex]:
    """The embedding-table Gathers above ``embeddings`` and what each reads (evaluating computed indices)."""
    inputs = {t.name: t for t in graph.inputs}
    gathers = [n for n in ancestor_nodes(embeddings) if n.op == "Gather" and n.attrs.get("axis", 0) == 0
               and (table := constant_value(n.inputs[0])) is not None and table.ndim == 2]
    found, computed = [], []
    for gather in gathers:
        index = gather.inputs[1]
        if index is inputs.get(INPUT_IDS):
            found.append(EmbeddingIndex(gather, "ids"))
        elif index is inputs.get(TOKEN_TYPE_IDS):
            found.append(EmbeddingIndex(gather, "types"))
        elif index in graph.inputs:
            raise RewriteError(f"{describe(gather)} reads graph input '{index.name}', which has no packed form")
        else:
            computed.append(gather)
    words = [i for i in found if i.kind == "ids"]
    if len(words) != 1:
        raise RewriteError(f"expected one word-embedding Gather of '{INPUT_IDS}' above the embeddings, "
                           f"found {len(words)}")
    if computed:
        found += _classify_by_probe(graph, computed, words[0].table_rows)
    return found


def _classify_by_probe(graph: gs.Graph, gathers: list[gs.Node], vocab_size: int) -> list[EmbeddingIndex]:
    """Evaluate the computed indices on right-padded probe batches.

    Two probes draw their ids from disjoint halves of the vocabulary, so that at least one avoids the
    padding id (RoBERTa's positions count only tokens other than it); both must agree where both match.
    """
    import onnxruntime as ort

    probe = graph.copy()
    tensors = probe.tensors()
    probe.outputs = [tensors[g.inputs[1].name] for g in gathers]
    for tensor in probe.outputs:
        tensor.dtype = tensor.dtype or np.int64
    probe.cleanup()
    session = ort.InferenceSession(gs.export_onnx(probe).SerializeToString(), providers=["CPUExecutionProvider"])
    lengths = np.array(_PROBE_LENGTHS)
    width = int(lengths.max())
    mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
    halves = [(vocab_size // 2, vocab_size), (min(2, vocab_size // 2), vocab_size // 2)]
    verdicts: list[list[tuple[str, int] | None]] = []
    for seed, (low, high) in enumerate(halves):
        rng = np.random.default_rng(seed)
        ids = np.where(mask == 1, rng.integers(low, max(high, low + 1), size=mask.shape), 0)
        feeds = {}
        for tensor in probe.inputs:
            by_name = {INPUT_IDS: ids, TOKEN_TYPE_IDS: np.zeros_like(ids)}
            value = by_name.get(tensor.name, mask)
            feeds[tensor.name] = value.astype(tensor.dtype or np.int64)
        values = session.run(None, feeds)
        verdicts.append([_pattern(np.broadcast_to(v, mask.shape) if v.ndim in (1, 2) else None, lengths)
                         for v in values])
    result = []
    for gather, *found in zip(gathers, *verdicts):
        matched = {verdict for verdict in found if verdict is not None}
        if len(matched) != 1:
            why = "the probes disagree" if matched else "they are neither positions nor a constant"
            raise RewriteError(f"{describe(gather)}: cannot tell what its computed indices are ({why})")
        kind, value = matched.pop()
        result.append(EmbeddingIndex(gather, kind, value))
    return result


def _pattern(values: np.ndarray | None, lengths: np.ndarray) -> tuple[str, int] | None:
    """("positions", offset) if each row's valid entries are offset + 0, 1, ..; ("constant", k); else None."""
    if values is None:
        return None
    rows = [values[b, :n] for b, n in enumerate(lengths)]
    valid = np.concatenate(rows)
    if np.all(valid == valid[0]):
        return "constant", int(valid[0])
    offsets = {int(v) for row in rows for v in row - np.arange(len(row))}
    return ("positions", offsets.pop()) if len(offsets) == 1 else None


def _readers_of(tensor: gs.Tensor, forbidden: set[int]) -> list[str]:
    """Nodes above ``tensor`` that read one of the ``forbidden`` tensors (by id)."""
    return [describe(n) for n in ancestor_nodes(tensor) if any(id(t) in forbidden for t in n.inputs)]


@dataclass
class _Layout:
    """Per-token views of ``cu_seqlens``: ``inside`` [B, T] (token t belongs to sequence b), ``positions``
    [T] (t minus its sequence's start), ``starts``/``lengths`` [B, 1], ``batch`` [1] (B as a shape)."""

    inside: gs.Variable
    positions: gs.Variable
    starts: gs.Variable
    lengths: gs.Variable
    token_index: gs.Variable
    batch: gs.Variable


class _Builder:
    """Appends standard-op nodes with unique names under one prefix."""

    def __init__(self, graph: gs.Graph, prefix: str):
        self.graph, self.prefix, self.count = graph, prefix, 0

    def const(self, value: np.ndarray) -> gs.Constant:
        self.count += 1
        return gs.Constant(f"{self.prefix}/const_{self.count}", value)

    def op(self, op: str, inputs: list[gs.Tensor], name: str | None = None, **attrs) -> gs.Variable:
        self.count += 1
        output = gs.Variable(name or f"{self.prefix}/{op}_{self.count}")
        self.graph.nodes.append(gs.Node(op, f"{self.prefix}/{op}_{self.count}", attrs=attrs, inputs=inputs,
                                        outputs=[output]))
        return output

    def layout(self, ids: gs.Variable, cu_seqlens: gs.Variable) -> _Layout:
        i64 = np.int64
        total = self.op("Squeeze", [self.op("Shape", [ids]), self.const(np.array([0], i64))])
        token_index = self.op("Range", [self.const(np.array(0, i64)), total, self.const(np.array(1, i64))])
        bounds = self.op("Cast", [cu_seqlens], to=TensorProto.INT64)
        column = self.const(np.array([1], i64))
        starts = self.op("Unsqueeze", [self.op("Slice", [bounds, self.const(np.array([0], i64)),
                                                         self.const(np.array([-1], i64))]), column])
        ends = self.op("Unsqueeze", [self.op("Slice", [bounds, self.const(np.array([1], i64)),
                                                       self.const(np.array([np.iinfo(i64).max], i64))]), column])
        inside = self.op("And", [self.op("GreaterOrEqual", [token_index, starts]), self.op("Less", [token_index, ends])])
        start_of_token = self.op("ReduceSum", [self.op("Mul", [self.op("Cast", [inside], to=TensorProto.INT64), starts]),
                                               self.const(np.array([0], i64))], keepdims=0)
        positions = self.op("Sub", [token_index, start_of_token])
        batch = self.op("Sub", [self.op("Shape", [cu_seqlens]), self.const(np.array([1], i64))])
        return _Layout(inside, positions, starts, self.op("Sub", [ends, starts]), token_index, batch)

    def pooled(self, layout: _Layout, hidden: gs.Variable, pooling: Pooling, normalize: bool) -> gs.Variable:
        f32 = np.float32
        float_type = TensorProto.FLOAT
        if pooling == "mean":
            count = self.op("Max", [self.op("Cast", [layout.lengths], to=float_type), self.const(np.array(1, f32))])
            weights = self.op("Div", [self.op("Cast", [layout.inside], to=float_type), count])
        else:
            first = self.op("And", [self.op("Equal", [layout.token_index, layout.starts]),
                                    self.op("Greater", [layout.lengths, self.const(np.array(0, np.int64))])])
            weights = self.op("Cast", [first], to=float_type)
        pooled = self.op("MatMul", [weights, hidden], name=None if normalize else SENTENCE_OUTPUT)
        if normalize:
            squares = self.op("ReduceSum", [self.op("Mul", [pooled, pooled]), self.const(np.array([-1], np.int64))],
                              keepdims=1)
            norm = self.op("Max", [self.op("Sqrt", [squares]), self.const(np.array(NORMALIZE_EPSILON, f32))])
            pooled = self.op("Div", [pooled, norm], name=SENTENCE_OUTPUT)
        pooled.dtype, pooled.shape = f32, [BATCH, hidden.shape[-1] if hidden.shape else None]
        return pooled
