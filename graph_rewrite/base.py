"""What every rewrite pass shares: its report, its error, and the constant helpers of matching."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from bytetx import ops


class RewriteError(ValueError):
    """The graph does not have the structure a pass needs; the message says where matching stopped."""


@dataclass
class PassReport:
    """What one pass changed: a count and one line per change."""

    name: str
    changed: int = 0
    details: list[str] = field(default_factory=list)

    def add(self, detail: str) -> None:
        self.changed += 1
        self.details.append(detail)

    def __str__(self) -> str:
        return f"{self.name}: {self.changed} change(s)" + "".join(f"\n  - {d}" for d in self.details)


class GraphPass:
    """A pattern and its replacement over an onnx-graphsurgeon graph. Running it twice changes nothing."""

    name = "pass"

    def run(self, graph: gs.Graph) -> PassReport:
        raise NotImplementedError


def run_on_model(graph_pass: GraphPass, model: onnx.ModelProto) -> tuple[onnx.ModelProto, PassReport]:
    """A copy of ``model`` after ``graph_pass`` (its metadata, opsets and other model fields kept; the
    graph as it was where the pass changed nothing), and the pass's report."""
    graph = gs.import_onnx(model)
    report = graph_pass.run(graph)
    result = onnx.ModelProto()
    result.CopyFrom(model)
    if report.changed:
        result.graph.CopyFrom(gs.export_onnx(graph).graph)
    return result, report


def producer(tensor: gs.Tensor) -> gs.Node | None:
    """The node writing ``tensor``, or None for graph inputs and initializers."""
    return tensor.inputs[0] if tensor.inputs else None


def ancestor_nodes(tensor: gs.Tensor) -> list[gs.Node]:
    """The nodes ``tensor`` is computed by, each once."""
    seen: dict[int, gs.Node] = {}
    stack = [tensor]
    while stack:
        for node in stack.pop().inputs:
            if id(node) not in seen:
                seen[id(node)] = node
                stack.extend(node.inputs)
    return list(seen.values())


def constant_value(tensor: gs.Tensor) -> np.ndarray | None:
    """The value of an initializer, a Constant node or an Identity of one (ALBERT's shared weights);
    None for computed tensors."""
    if isinstance(tensor, gs.Constant):
        return np.asarray(tensor.values)
    node = producer(tensor)
    if node is None:
        return None
    if node.op == "Constant" and "value" in node.attrs:
        value = node.attrs["value"]
        return np.asarray(value.values if isinstance(value, gs.Constant) else value)
    if node.op == "Identity":
        return constant_value(node.inputs[0])
    return None


def scalar_value(tensor: gs.Tensor) -> float | None:
    """The value of a one-element constant, else None."""
    value = constant_value(tensor)
    if value is None or value.size != 1:
        return None
    return float(value.reshape(()))


def describe(node: gs.Node) -> str:
    return f"{node.op} node '{node.name}'"


def is_bytetx(node: gs.Node, op: str) -> bool:
    """Whether ``node`` is the bytetx op ``op`` (one of bytetx.ops.OPS)."""
    return node.op == op and node.domain == ops.DOMAIN
