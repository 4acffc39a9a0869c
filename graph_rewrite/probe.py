"""Evaluate tensors of a graph for one unpadded row of a chosen length.

Position features (MPNet's bias, ModernBERT's rotary cos/sin and sliding window) are written by the
exports as chains of Range, arithmetic and comparison ops that differ between exporters. Rather than
matching those nodes, the passes evaluate the tensors with ONNX Runtime at a few sequence lengths and
check what they compute.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from .base import constant_value, producer


class ProbeError(ValueError):
    """The tensors cannot be evaluated on their own; the message says why."""


class RowProbe:
    """``tensors`` of ``graph`` for one row of length ``L``: every tensor whose shape they read
    becomes an input fed with zeros of its shape at batch 1 and that length (so the embeddings, whose
    position table may be shorter, do not run), and the model inputs they read (the attention mask)
    are fed with ones: every token valid. The tensors named in ``cuts`` become inputs too, which each
    call feeds."""

    def __init__(self, graph: gs.Graph, tensors: list[gs.Tensor], cuts: tuple[str, ...] = ()):
        import onnxruntime

        subgraph = graph.copy()
        by_name = subgraph.tensors()
        outputs = []
        for tensor in tensors:
            output = by_name[tensor.name]
            output.dtype, output.shape = tensor.dtype or np.float32, None
            outputs.append(output)
        cut_inputs = []
        for name in cuts:
            cut = by_name[name]
            cut.inputs.clear()
            cut.shape = None
            cut_inputs.append(cut)
        subgraph.outputs = outputs
        subgraph.inputs = subgraph.inputs + cut_inputs
        subgraph.cleanup(remove_unused_graph_inputs=True)
        # batch -> 0, sequence -> 1, from the inputs' symbolic shapes
        self.dims = {d: i for t in graph.inputs if t.shape is not None and len(t.shape) == 2
                     for i, d in enumerate(t.shape)}
        self.probes: dict[str, gs.Variable] = {}
        self.cuts = cuts
        for node in [n for n in subgraph.nodes if n.op == "Shape"]:
            shaped = node.inputs[0]
            if shaped.name in cuts:
                continue  # the shape of what the call feeds
            name = f"{shaped.name}/shape_probe"
            if name not in self.probes:
                if shaped.shape is None or any(self._size(d, (1, 1)) is None for d in shaped.shape):
                    raise ProbeError(f"it reads the shape of '{shaped.name}', whose dimensions {shaped.shape} "
                                     "are not products of the inputs' batch and sequence")
                self.probes[name] = gs.Variable(name, shaped.dtype or np.float32, shaped.shape)
            node.inputs[0] = self.probes[name]
        model_inputs = [t for t in subgraph.inputs if t.shape is not None and len(t.shape) == 2
                        and all(d in self.dims for d in t.shape) and t.name not in cuts]
        subgraph.inputs = list(self.probes.values()) + model_inputs + [t for t in cut_inputs if t.outputs]
        subgraph.cleanup()
        self.ones = [t for t in subgraph.inputs if t.name not in self.probes and t.name not in cuts]
        fed = set(self.probes) | {t.name for t in self.ones} | set(cuts)
        for node in subgraph.nodes:
            for t in node.inputs:
                if t.name and not t.inputs and not isinstance(t, gs.Constant) and t.name not in fed:
                    raise ProbeError(f"it reads '{t.name}', which is neither a model input nor a shape")
        self.fed_cuts = {t.name for t in subgraph.inputs if t.name in cuts}
        try:
            self.session = onnxruntime.InferenceSession(gs.export_onnx(subgraph).SerializeToString(),
                                                        providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - ONNX Runtime raises its own types; the message says enough
            raise ProbeError(f"ONNX Runtime could not load it: {error}") from None

    def _size(self, dim: int | str, sizes: tuple[int, int]) -> int | None:
        """A dimension at the given (batch, sequence): an int, a dimension of the inputs, or a product of
        those as symbolic shape inference writes it ('4*batch'); None for any other."""
        if isinstance(dim, int):
            return dim
        size = 1
        for factor in str(dim).split("*"):
            if factor.isdigit():
                size *= int(factor)
            elif factor in self.dims:
                size *= sizes[self.dims[factor]]
            else:
                return None
        return size

    def __call__(self, length: int, cut_values: dict[str, np.ndarray] | None = None) -> list[np.ndarray]:
        sizes = (1, length)

        def shape(tensor: gs.Tensor) -> list[int]:
            return [self._size(d, sizes) for d in tensor.shape]

        feeds = {name: np.zeros(shape(probe), probe.dtype) for name, probe in self.probes.items()}
        feeds.update({t.name: np.ones(shape(t), t.dtype) for t in self.ones})
        feeds.update({name: value for name, value in (cut_values or {}).items() if name in self.fed_cuts})
        try:
            return self.session.run(None, feeds)
        except Exception as error:  # noqa: BLE001 - as above
            raise ProbeError(f"ONNX Runtime could not evaluate it at sequence length {length}: {error}") from None


def squeeze_leading(value: np.ndarray, rank: int) -> np.ndarray:
    """``value`` without its leading dimensions of size 1, down to ``rank`` dimensions."""
    while value.ndim > rank and value.shape[0] == 1:
        value = value[0]
    return value


def ancestor_constants(tensor: gs.Tensor) -> list[np.ndarray]:
    """The values of the constants ``tensor`` is computed from (itself, if it is one)."""
    found, seen, stack = [], set(), [tensor]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        value = constant_value(t)
        if value is not None:
            found.append(value)
            continue
        node = producer(t)
        if node is not None:
            stack.extend(node.inputs)
    return found


def length_beyond_constants(tensor: gs.Tensor, floor: int, bound: int) -> int:
    """A probe length past twice the largest integer scalar below ``bound`` that ``tensor`` is computed
    from (a window or a bucket bound, say, shows only at lengths beyond it), and at least ``floor``."""
    scalars = [abs(int(v.item())) for v in ancestor_constants(tensor) if v.dtype.kind in "iu" and v.size == 1]
    return max(floor, 2 * max([s for s in scalars if s < bound], default=0) + 2)
