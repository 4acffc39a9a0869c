"""TensorRTFlavour: a rewritten model as TensorRT's ONNX parser maps it onto the plugins of libbytetx_trt.so.

TensorRT's ONNX parser imports a node whose op type it does not know as a plugin: it looks up the
creator named like ``op_type``, at the version and namespace of the node's string attributes
``plugin_version`` (default "1") and ``plugin_namespace`` (default ""), and passes the attributes the
creator lists as plugin fields (INT as int32, FLOAT as float32). The node's domain is not read. The
plugins (plugins/trt/README.md) are named like the ops, each at its version of
``bytetx.ops.PLUGIN_VERSIONS``, in the namespace ``bytetx.ops.PLUGIN_NAMESPACE``.

Pattern: every ``com.bytetx`` node. Replacement: the same node with ``plugin_version`` and
``plugin_namespace``; ``RemovePadding`` also gets its fourth output, the size tensor ``num_tokens``
(int64 scalar, ``bytetx_num_tokens``, one per node) that declares the data-dependent first dimension
of the packed tokens. A ``FusedMHA`` with DeBERTa's disentangled terms drops its empty inputs (the
parser hands a plugin no empty input) and gets the string attribute ``pos_att_type`` that names the
tables it keeps ("c2p" position_key, "p2c" position_query, or "c2p|p2c"). Everything else is
unchanged (docs/ops.md, "TensorRT"). The result is for TensorRT only: ONNX Runtime's RemovePadding
has three outputs.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from bytetx import ops

from .base import GraphPass, PassReport, RewriteError, describe, is_bytetx, run_on_model

METADATA_KEY = "bytetx_target"
METADATA_VALUE = "tensorrt"
# ONNX Runtime's RemovePadding outputs (packed, cu_seqlens, token_offset); TensorRT's add num_tokens.
_REMOVE_PADDING_OUTPUTS = 3
_FUSED_MHA_INPUTS = ("qkv", "qkv_bias", "cu_seqlens", "token_offset")
_FUSED_MHA_BIAS_INPUTS = ("positions", "relative_position_bias")
# The attributes of FusedMHA's position features besides the bias: each reads positions.
_POSITION_ATTRIBUTES = ("rotary_frequencies", "sliding_window")
# The disentangled terms: the op's tables (inputs 6 and 7) and the plugin's names for them.
_POSITION_TERMS_ATTRIBUTE = "pos_att_type"
_POSITION_TABLES = (("c2p", "position_key"), ("p2c", "position_query"))
_FIRST_POSITION_TABLE = 6


class TensorRTFlavour(GraphPass):
    """Give every bytetx node what TensorRT's ONNX parser needs to find its plugin (module docstring).

    Raises RewriteError for a graph without bytetx ops (not rewritten), with ops that have no plugin,
    or with a node that breaks its op's contract (a FusedMHA without ``qkv_bias``).
    """

    name = "TensorRTFlavour"

    def run(self, graph: gs.Graph) -> PassReport:
        report = PassReport(self.name)
        nodes = [node for node in graph.nodes if node.domain == ops.DOMAIN]
        if not nodes:
            raise RewriteError(
                f"the model has no {ops.DOMAIN} ops: rewrite it for padding-free inference first "
                "(bytetx-export, or bytetx.graph_rewrite.rewrite_padding_free)"
            )
        unknown = sorted({node.op for node in nodes} - set(ops.PLUGIN_VERSIONS))
        if unknown:
            raise RewriteError(
                f"{ops.DOMAIN} op(s) {', '.join(unknown)} have no TensorRT plugin "
                f"(the plugins are {', '.join(ops.PLUGIN_VERSIONS)})"
            )
        names = set(graph.tensors())
        remove_padding_count = 0
        for node in nodes:
            changes = [
                f"{attribute} {value}"
                for attribute, value in (
                    ("plugin_version", ops.PLUGIN_VERSIONS[node.op]),
                    ("plugin_namespace", ops.PLUGIN_NAMESPACE),
                )
                if _set_string_attribute(node, attribute, value)
            ]
            if is_bytetx(node, ops.REMOVE_PADDING):
                remove_padding_count += 1
                added = _add_num_tokens_output(node, names, remove_padding_count)
                if added:
                    changes.append(f"size tensor output '{added}'")
            elif is_bytetx(node, ops.FUSED_MHA):
                if "position_buckets" in node.attrs:
                    terms = _gap_free_position_tables(node)
                    if terms:
                        changes.append(f"{_POSITION_TERMS_ATTRIBUTE} {terms}")
                else:
                    _check_fused_mha_inputs(node)
                if not node.inputs[1].name:
                    raise RewriteError(
                        f"{describe(node)} has no qkv_bias; the op requires it (docs/ops.md): rewrite the model "
                        "again with this version of bytetx"
                    )
            if changes:
                report.add(f"{describe(node)}: {', '.join(changes)}")
        return report


def to_tensorrt(model: onnx.ModelProto) -> tuple[onnx.ModelProto, PassReport]:
    """A copy of a bytetx-rewritten model (float32 or float16) made by :class:`TensorRTFlavour`, marked
    as the TensorRT flavour in its metadata, and the pass's report. Converting it again changes nothing.

    Raises RewriteError as the pass does.
    """
    converted, report = run_on_model(TensorRTFlavour(), model)
    _set_metadata(converted)
    try:
        onnx.checker.check_model(converted)
    except (onnx.checker.ValidationError, ValueError) as error:
        raise RewriteError(
            f"the TensorRT flavour is not a valid ONNX model: {str(error).splitlines()[0]}"
        ) from None
    return converted, report


def is_tensorrt_flavour(model: onnx.ModelProto) -> bool:
    """Whether :func:`to_tensorrt` made ``model``."""
    return any(p.key == METADATA_KEY and p.value == METADATA_VALUE for p in model.metadata_props)


def _set_string_attribute(node: gs.Node, name: str, value: str) -> bool:
    """Sets the attribute; whether that changed it."""
    current = node.attrs.get(name)
    if current is not None and not isinstance(current, str):
        raise RewriteError(f"{describe(node)} has an attribute '{name}' that is not a string")
    node.attrs[name] = value
    return current != value


def _unique(base: str, names: set[str]) -> str:
    name, index = base, 1
    while name in names:
        name = f"{base}_{index}"
        index += 1
    names.add(name)
    return name


def _add_num_tokens_output(node: gs.Node, names: set[str], index: int) -> str | None:
    """Appends the size tensor output unless the node has it; its name, or None."""
    if len(node.outputs) == _REMOVE_PADDING_OUTPUTS + 1:
        return None
    if len(node.outputs) != _REMOVE_PADDING_OUTPUTS:
        raise RewriteError(
            f"{describe(node)} has {len(node.outputs)} outputs; the op has {_REMOVE_PADDING_OUTPUTS} "
            "(packed, cu_seqlens, token_offset)"
        )
    name = _unique(ops.NUM_TOKENS if index == 1 else f"{ops.NUM_TOKENS}_{index}", names)
    node.outputs.append(gs.Variable(name, dtype=np.int64, shape=[]))
    return name


def _gap_free_position_tables(node: gs.Node) -> str | None:
    """A FusedMHA with the disentangled terms as the plugin takes it: the four required inputs,
    positions, then the tables ``pos_att_type`` names. Sets both unless the node has them; what it set,
    or None."""
    given = [t.name for t in node.inputs]
    terms = node.attrs.get(_POSITION_TERMS_ATTRIBUTE)
    if terms is not None:  # converted before: check it is what a conversion makes
        names = terms.split("|") if isinstance(terms, str) else []
        tables = [table for term, table in _POSITION_TABLES if term in names]
        expected = _FUSED_MHA_INPUTS + ("positions", *tables)
        if not tables or len(names) != len(tables) or len(given) != len(expected) or not all(given):
            raise RewriteError(
                f"{describe(node)} has {_POSITION_TERMS_ATTRIBUTE} {terms!r} and inputs "
                f"{', '.join(repr(name) for name in given)}; the plugin takes {', '.join(expected)}"
            )
        return None
    tables = given[_FIRST_POSITION_TABLE:]
    present = [(term, name) for (term, _), name in zip(_POSITION_TABLES, tables) if name]
    if (len(given) <= 4 or not given[4] or any(given[5:_FIRST_POSITION_TABLE]) or not present
            or len(given) > _FIRST_POSITION_TABLE + len(_POSITION_TABLES)):
        raise RewriteError(
            f"{describe(node)} has the attribute position_buckets and inputs "
            f"{', '.join(repr(name) for name in given)}; the op takes positions, no relative_position_bias, and "
            "position_key, position_query or both with it (docs/ops.md)"
        )
    terms = "|".join(term for term, _ in present)
    for index in reversed(range(5, len(node.inputs))):  # in place: the list keeps the tensors' consumers
        if not node.inputs[index].name:
            del node.inputs[index]
    node.attrs[_POSITION_TERMS_ATTRIBUTE] = terms
    return terms


def _check_fused_mha_inputs(node: gs.Node) -> None:
    """The plugin takes the four required inputs, plus positions with any position feature and
    relative_position_bias with the bias: its fields (the node's attributes) say which."""
    with_bias = "relative_position_max_distance" in node.attrs
    reads_positions = with_bias or any(name in node.attrs for name in _POSITION_ATTRIBUTES)
    expected = _FUSED_MHA_INPUTS + _FUSED_MHA_BIAS_INPUTS[: int(reads_positions) + int(with_bias)]
    given = [t.name for t in node.inputs]
    if len(given) != len(expected) or not all(given[4:]):
        if len(given) == 6 and all(given[4:]) and not with_bias:
            raise RewriteError(
                f"{describe(node)} has a relative position bias without the attribute "
                "relative_position_max_distance (docs/ops.md)"
            )
        raise RewriteError(
            f"{describe(node)} has inputs {', '.join(repr(name) for name in given)}; with its attributes the "
            f"plugin takes {', '.join(expected)} (positions with relative_position_max_distance, "
            "rotary_frequencies or sliding_window; relative_position_bias with the first)"
        )


def _set_metadata(model: onnx.ModelProto) -> None:
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            prop.value = METADATA_VALUE
            return
    model.metadata_props.add(key=METADATA_KEY, value=METADATA_VALUE)
