"""AttentionPlaceholder: the TensorRT flavour with a stand-in where each FusedMHA was, for a TensorRT
network edit to put TensorRT's own attention there (the GPU benchmark's ``trt-native-packed`` peer:
bytetx's padding removal with TensorRT's attention).

Pattern: every ``FusedMHA`` node. Replacement: ``Add(qkv, qkv_bias)``, the biased packed QKV
``[T, 3H]``, and a ``Slice`` of its first H columns under the context's name: a placeholder of the
context's shape ``[T, H]``. The edit replaces the placeholder's uses in the network (the unused
placeholder is then dead and the builder removes it); each replaced node leaves an
:class:`AttentionSite` naming the tensors the edit needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from bytetx import ops

from .base import GraphPass, PassReport, RewriteError, constant_value, describe, is_bytetx, run_on_model


@dataclass(frozen=True)
class AttentionSite:
    """Where a FusedMHA was, by tensor name: its biased packed QKV [T, 3H], cu_seqlens [B + 1], and the
    placeholder standing in for its context output [T, H]."""

    qkv: str
    cu_seqlens: str
    context: str
    heads: int
    scale: float


class AttentionPlaceholder(GraphPass):
    """Replace every FusedMHA by the biased QKV and a placeholder context (module docstring); the
    sites of the last run are in ``sites``. A graph without FusedMHA is left unchanged."""

    name = "AttentionPlaceholder"

    def __init__(self) -> None:
        self.sites: list[AttentionSite] = []

    def run(self, graph: gs.Graph) -> PassReport:
        report = PassReport(self.name)
        self.sites = []
        for node in [n for n in graph.nodes if is_bytetx(n, ops.FUSED_MHA)]:
            qkv, bias, cu_seqlens = node.inputs[:3]
            bias_value = constant_value(bias)
            if bias_value is None or bias_value.ndim != 1:
                raise RewriteError(
                    f"{describe(node)}: qkv_bias is not a constant vector; cannot size the attention"
                )
            width = bias_value.shape[0] // 3
            heads = int(node.attrs["num_heads"])
            scale = float(node.attrs.get("scale", (width // heads) ** -0.5))
            context = node.outputs[0]
            biased = gs.Variable(f"{node.name}/native/qkv_biased", dtype=qkv.dtype)
            bounds = [
                gs.Constant(f"{node.name}/native/{what}", np.array([value], dtype=np.int64))
                for what, value in (("starts", 0), ("ends", width), ("axes", 1))
            ]
            node.inputs.clear()
            node.outputs.clear()
            index = graph.nodes.index(node)
            graph.nodes[index : index + 1] = [
                gs.Node("Add", f"{node.name}/native/bias", inputs=[qkv, bias], outputs=[biased]),
                gs.Node(
                    "Slice", f"{node.name}/native/placeholder", inputs=[biased, *bounds], outputs=[context]
                ),
            ]
            self.sites.append(AttentionSite(biased.name, cu_seqlens.name, context.name, heads, scale))
            report.add(
                f"{describe(node)}: placeholder for '{context.name}' ({heads} heads, scale {scale:.6g})"
            )
        return report


def without_fused_mha(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[AttentionSite]]:
    """A copy of ``model`` (a TensorRT flavour) after :class:`AttentionPlaceholder`, and its sites."""
    placeholder = AttentionPlaceholder()
    converted, _ = run_on_model(placeholder, model)
    return converted, placeholder.sites
