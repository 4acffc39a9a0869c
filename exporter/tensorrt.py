"""The ``trtexec`` command that builds the TensorRT engine of a model's TensorRT flavour
(bytetx.graph_rewrite.to_tensorrt), its optimization profile, and where libbytetx_trt.so is.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import onnx

from bytetx import library_locations

from .hf_export import ExportError

LIBRARY_ENV = "BYTETX_TRT_LIBRARY"
LIBRARY_NAME = "libbytetx_trt.so"

PluginLoading = Literal["dynamic", "static"]


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
    """Where libbytetx_trt.so is: ``BYTETX_TRT_LIBRARY`` if set, else the first of
    :func:`bytetx.library_locations` that holds it (beside the ONNX Runtime libraries), else the first
    of them. The library is built only where TensorRT's headers and CUDA were found, so the path may
    not exist on this machine."""
    override = os.environ.get(LIBRARY_ENV)
    if override:
        return Path(override)
    locations = library_locations(LIBRARY_NAME)
    return next((path for path in locations if path.is_file()), locations[0])
