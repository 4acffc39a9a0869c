"""The TensorRT flavour of a rewritten model, and the ``trtexec`` command that builds its engine.

TensorRT's ONNX parser imports a node whose op type it does not know as a plugin: it looks up the
creator named like ``op_type``, at the version and namespace of the node's string attributes
``plugin_version`` (default "1") and ``plugin_namespace`` (default ""), and passes the attributes the
creator lists as plugin fields (INT as int32, FLOAT as float32). The node's domain is not read. The
plugins of ``libbytetx_trt.so`` (plugins/trt/README.md) are named like the ops, at version "1" in the
namespace "com.bytetx"; :func:`to_tensorrt` gives each bytetx node those two attributes and the
plugins' exact inputs and outputs (docs/ops.md, "TensorRT").
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .hf_export import ExportError

OP_DOMAIN = "com.bytetx"
PLUGIN_NAMESPACE = "com.bytetx"
PLUGIN_VERSION = "1"
PLUGIN_OPS = ("RemovePadding", "FusedMHA", "RebuildPadding")
# RemovePadding's fourth output in TensorRT: the size tensor T (int64 scalar) that declares the
# data-dependent first dimension of the packed tokens.
NUM_TOKENS_OUTPUT = "bytetx_num_tokens"
METADATA_KEY = "bytetx_target"
METADATA_VALUE = "tensorrt"

LIBRARY_ENV = "BYTETX_TRT_LIBRARY"
LIBRARY_NAME = "libbytetx_trt.so"

PluginLoading = Literal["dynamic", "static"]


def to_tensorrt(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of a bytetx-rewritten model (float32 or float16) that TensorRT's ONNX parser maps onto the
    plugins of libbytetx_trt.so. Every ``com.bytetx`` node gets ``plugin_version`` and
    ``plugin_namespace``; ``RemovePadding`` gets its fourth output, the size tensor ``num_tokens``
    (int64 scalar, named ``bytetx_num_tokens``, one per node); a ``FusedMHA`` without ``qkv_bias`` gets
    a zero bias, as the plugin takes four inputs. Everything else is unchanged. The result is for
    TensorRT only (ONNX Runtime's RemovePadding has three outputs); converting it again changes nothing.

    Raises ExportError for a model without bytetx ops (not rewritten) or with ops the plugins lack.
    """
    converted = onnx.ModelProto()
    converted.CopyFrom(model)
    graph = converted.graph
    nodes = [node for node in graph.node if node.domain == OP_DOMAIN]
    if not nodes:
        raise ExportError(
            f"the model has no {OP_DOMAIN} ops: rewrite it for padding-free inference first "
            "(bytetx-export, or bytetx.graph_rewrite.rewrite_padding_free)"
        )
    unknown = sorted({node.op_type for node in nodes} - set(PLUGIN_OPS))
    if unknown:
        raise ExportError(
            f"{OP_DOMAIN} op(s) {', '.join(unknown)} have no TensorRT plugin "
            f"(the plugins are {', '.join(PLUGIN_OPS)})"
        )

    names = _tensor_names(graph)
    producers = {output: node for node in graph.node for output in node.output}
    initializers = {init.name: init for init in graph.initializer}
    num_remove_padding = 0
    for node in nodes:
        _set_string_attribute(node, "plugin_version", PLUGIN_VERSION)
        _set_string_attribute(node, "plugin_namespace", PLUGIN_NAMESPACE)
        if node.op_type == "RemovePadding":
            num_remove_padding += 1
            _add_num_tokens_output(graph, node, names, num_remove_padding)
        elif node.op_type == "FusedMHA":
            _ensure_qkv_bias(graph, node, producers, initializers, names)

    _set_metadata(converted)
    try:
        onnx.checker.check_model(converted)
    except (onnx.checker.ValidationError, ValueError) as error:
        raise ExportError(
            f"the TensorRT flavour is not a valid ONNX model: {str(error).splitlines()[0]}"
        ) from None
    return converted


def _tensor_names(graph: onnx.GraphProto) -> set[str]:
    names = {t.name for t in (*graph.input, *graph.output, *graph.value_info)}
    names |= {init.name for init in graph.initializer}
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
    return names


def _unique(base: str, names: set[str]) -> str:
    name, index = base, 1
    while name in names:
        name = f"{base}_{index}"
        index += 1
    names.add(name)
    return name


def _set_string_attribute(node: onnx.NodeProto, name: str, value: str) -> None:
    for attribute in node.attribute:
        if attribute.name == name:
            if attribute.type != onnx.AttributeProto.STRING:
                raise ExportError(
                    f"{node.op_type} node '{node.name}' has an attribute '{name}' that is not a string"
                )
            attribute.s = value.encode()
            return
    node.attribute.append(helper.make_attribute(name, value))


def _add_num_tokens_output(graph: onnx.GraphProto, node: onnx.NodeProto, names: set[str], index: int) -> None:
    if len(node.output) == 4:
        return
    if len(node.output) != 3:
        raise ExportError(
            f"RemovePadding node '{node.name}' has {len(node.output)} outputs; the op has 3 "
            "(packed, cu_seqlens, token_offset)"
        )
    name = _unique(NUM_TOKENS_OUTPUT if index == 1 else f"{NUM_TOKENS_OUTPUT}_{index}", names)
    node.output.append(name)
    graph.value_info.append(helper.make_tensor_value_info(name, onnx.TensorProto.INT64, []))


def _ensure_qkv_bias(
    graph: onnx.GraphProto,
    node: onnx.NodeProto,
    producers: dict[str, onnx.NodeProto],
    initializers: dict[str, onnx.TensorProto],
    names: set[str],
) -> None:
    if len(node.input) == 4 and node.input[1]:
        return
    if len(node.input) != 4:
        raise ExportError(
            f"FusedMHA node '{node.name}' has {len(node.input)} inputs; the op has 4 "
            "(qkv, qkv_bias, cu_seqlens, token_offset)"
        )
    matmul = producers.get(node.input[0])
    weight = initializers.get(matmul.input[1]) if matmul is not None and matmul.op_type == "MatMul" else None
    if weight is None or len(weight.dims) != 2:
        raise ExportError(
            f"FusedMHA node '{node.name}' has no qkv_bias and its qkv does not come from a MatMul by a "
            "[H, 3H] weight: cannot make the zero bias the TensorRT plugin needs"
        )
    dtype = onnx.helper.tensor_dtype_to_np_dtype(weight.data_type)
    bias = numpy_helper.from_array(
        np.zeros(weight.dims[1], dtype=dtype), _unique(f"{node.name}/zero_qkv_bias", names)
    )
    graph.initializer.append(bias)
    node.input[1] = bias.name


def _set_metadata(model: onnx.ModelProto) -> None:
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            prop.value = METADATA_VALUE
            return
    model.metadata_props.add(key=METADATA_KEY, value=METADATA_VALUE)


def is_tensorrt_flavour(model: onnx.ModelProto) -> bool:
    """Whether :func:`to_tensorrt` made ``model``."""
    return any(p.key == METADATA_KEY and p.value == METADATA_VALUE for p in model.metadata_props)


@dataclass(frozen=True)
class ShapeProfile:
    """The optimization profile of the engine: (batch, sequence length) at its minimum, the shape
    TensorRT tunes for, and the maximum. Every input of a BERT-family model is [batch, sequence]."""

    min: tuple[int, int] = (1, 1)
    opt: tuple[int, int] = (8, 128)
    max: tuple[int, int] = (32, 512)

    def __post_init__(self) -> None:
        for label, shape in (("min", self.min), ("opt", self.opt), ("max", self.max)):
            if len(shape) != 2 or any(int(v) != v or v < 1 for v in shape):
                raise ExportError(
                    f"profile {label} must be (batch, sequence) of positive integers, got {shape}"
                )
        for axis, what in enumerate(("batch", "sequence")):
            if not self.min[axis] <= self.opt[axis] <= self.max[axis]:
                raise ExportError(
                    f"profile {what}: min {self.min[axis]} <= opt {self.opt[axis]} <= max {self.max[axis]} "
                    "does not hold"
                )


def profile_inputs(model: onnx.ModelProto) -> list[str]:
    """The graph inputs the profile sizes (all of them, each [batch, sequence]); ExportError for an
    input of another rank."""
    initializers = {init.name for init in model.graph.initializer}
    names = []
    for graph_input in model.graph.input:
        if graph_input.name in initializers:
            continue
        rank = len(graph_input.type.tensor_type.shape.dim)
        if rank != 2:
            raise ExportError(
                f"input '{graph_input.name}' has rank {rank}; "
                "the TensorRT profile sizes [batch, sequence] inputs"
            )
        names.append(graph_input.name)
    if not names:
        raise ExportError("the model has no inputs to size")
    return names


def trtexec_command(
    onnx_path: str | os.PathLike,
    plugin_library: str | os.PathLike,
    input_names: Sequence[str],
    profile: ShapeProfile | None = None,
    *,
    engine_path: str | os.PathLike | None = None,
    plugin_loading: PluginLoading = "dynamic",
    serialize_plugin: bool = False,
    strongly_typed: bool = True,
    trtexec: str = "trtexec",
) -> list[str]:
    """The ``trtexec`` command line that builds (and times) the engine of a TensorRT-flavour model.

    ``plugin_loading``: ``dynamic`` (``--dynamicPlugins``: IPluginRegistry::loadLibrary, the library's
    getCreators) or ``static`` (``--staticPlugins``: trtexec loads the library, whose static
    registration registers the plugins). ``serialize_plugin`` adds ``--setPluginsToSerialize`` and
    ``--versionCompatible``: TensorRT embeds plugin libraries in version-compatible engines, whose runtime
    then needs no plugin path (but must allow host code); it requires dynamic loading.
    ``strongly_typed`` (default on): the network keeps the model's types, so a float16 model runs in
    float16; TensorRT 11 always does and ignores the flag.
    """
    if plugin_loading not in ("dynamic", "static"):
        raise ExportError(f"plugin_loading must be 'dynamic' or 'static', got {plugin_loading!r}")
    if serialize_plugin and plugin_loading != "dynamic":
        raise ExportError(
            "serializing the plugin library with the engine needs dynamic loading (--dynamicPlugins)"
        )
    if not input_names:
        raise ExportError("no input names to size")
    profile = profile or ShapeProfile()
    library = os.fspath(plugin_library)
    command = [trtexec, f"--onnx={os.fspath(onnx_path)}"]
    if plugin_loading == "dynamic":
        command.append(f"--dynamicPlugins={library}")
        if serialize_plugin:
            command += [f"--setPluginsToSerialize={library}", "--versionCompatible"]
    else:
        command.append(f"--staticPlugins={library}")
    for flag, (batch, sequence) in (("min", profile.min), ("opt", profile.opt), ("max", profile.max)):
        command.append(f"--{flag}Shapes=" + ",".join(f"{name}:{batch}x{sequence}" for name in input_names))
    if strongly_typed:
        command.append("--stronglyTyped")
    if engine_path is not None:
        command.append(f"--saveEngine={os.fspath(engine_path)}")
    return command


def format_command(command: Sequence[str]) -> str:
    """The command as one shell line, quoted where needed."""
    return shlex.join(command)


def plugin_library_path() -> Path:
    """Where libbytetx_trt.so is: ``BYTETX_TRT_LIBRARY`` if set, else beside the installed ONNX Runtime
    libraries (bytetx/lib/). The library is built only where TensorRT's headers and CUDA were found,
    so the path may not exist on this machine."""
    override = os.environ.get(LIBRARY_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1] / "lib" / LIBRARY_NAME
