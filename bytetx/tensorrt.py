"""TensorRT engines of bytetx models, built with the bytetx plugins: the one builder of the samples and
the benchmarks.

Needs the ``tensorrt`` Python package (TensorRT 10 or newer) and libbytetx_trt.so
(:func:`bytetx.exporter.tensorrt.plugin_library_path`). ``import bytetx`` does not import this module,
and this module imports tensorrt only when called.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import onnx

from bytetx import ops
from bytetx.exporter.tensorrt import ShapeProfile, profile_inputs

# TensorRT 11 networks are always strongly typed; TensorRT 10 needs the flag for float16 models to
# run in float16 (the model's types, not TensorRT's choice).
_STRONGLY_TYPED_FLAG_MAJOR = 10


class EngineBuildError(RuntimeError):
    """TensorRT could not load the plugins, parse the model or build the engine; the message says which."""


def plugins_registered(registry: Any) -> bool:
    """Whether every bytetx plugin, at its version, is in the TensorRT plugin ``registry``."""
    return all(
        registry.get_creator(name, version, ops.PLUGIN_NAMESPACE) is not None
        for name, version in ops.PLUGIN_VERSIONS.items()
    )


def load_plugins(registry: Any, library: str | os.PathLike) -> Any:
    """Registers the bytetx plugins with ``registry`` through IPluginRegistry::loadLibrary (the library's
    getCreators); returns the library's handle, or None where they were registered already (TensorRT's
    builder and runtime share one registry)."""
    if plugins_registered(registry):
        return None
    handle = registry.load_library(os.fspath(library))
    if handle is None or not plugins_registered(registry):
        raise EngineBuildError(
            f"TensorRT could not load the bytetx plugins from {library} (see its log above)"
        )
    return handle


def build_engine(
    model: onnx.ModelProto,
    library: str | os.PathLike,
    profile: ShapeProfile,
    *,
    logger: Any = None,
    tf32: bool = False,
    serialize_plugin: bool = False,
    edit_network: Callable[[Any], None] | None = None,
) -> bytes:
    """The serialized engine of ``model``: its TensorRT flavour (bytetx.graph_rewrite.to_tensorrt) or any
    model TensorRT parses, with the plugins of ``library`` loaded.

    The network is strongly typed (a float16 model runs in float16). ``profile`` sizes every
    [batch, sequence] input (:func:`bytetx.exporter.tensorrt.profile_inputs`). ``tf32`` lets float32
    matrix products use TF32 (off: float32 computes in float32, as on the other back ends).
    ``serialize_plugin`` embeds the library in a version-compatible engine, whose runtime then needs no
    plugin path but must allow host code. ``edit_network``, if given, changes the parsed network before
    the build. ``logger`` is a ``tensorrt.Logger`` (default: warnings and errors).
    """
    import tensorrt as trt

    logger = logger if logger is not None else trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    load_plugins(builder.get_plugin_registry(), library)
    flags = 0
    if int(trt.__version__.split(".")[0]) == _STRONGLY_TYPED_FLAG_MAJOR:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model.SerializeToString()):
        errors = "\n  ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT's ONNX parser failed:\n  {errors}")
    if edit_network is not None:
        edit_network(network)
    config = builder.create_builder_config()
    if not tf32:
        config.clear_flag(trt.BuilderFlag.TF32)
    if serialize_plugin:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        config.plugins_to_serialize = [os.fspath(library)]
    shapes = builder.create_optimization_profile()
    for name in profile_inputs(model):
        shapes.set_shape(name, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(shapes)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError("TensorRT could not build the engine (see its log above)")
    return bytes(serialized)
