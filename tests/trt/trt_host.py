"""Build and drive the stand-in TensorRT host of ``host/trt_host.cc`` (no TensorRT runtime, no GPU).

The plugins of ``plugins/trt/`` are compiled with g++ against real TensorRT headers (``TENSORRT_ROOT``,
or the standard install places) and the host CUDA emulation of ``tests/emulation`` (the kernels of
``plugins/kernels/`` run on the CPU), together with ``host/trt_host.cc``, which calls them through
TensorRT's interfaces only. ``host/fake_nvinfer.cc`` stands in for libnvinfer's ``getPluginRegistry``
and ``getLogger``; it is loaded first with ``RTLD_GLOBAL``, so the plugin library's static registration
registers with it while the library loads.

Kernel objects and the emulation runtime come from the emulation's object cache (shared with
``tests/kernels``); the plugin sources and the host are rebuilt when any source or header they may
include changes (one digest over them), under ``build/emulation/trt-<digest>/``.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import hashlib
import os
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from emulation import harness

ROOT = Path(__file__).resolve().parents[2]
HOST = Path(__file__).resolve().parent / "host"
PLUGINS = ROOT / "plugins"
MAX_DIMS = 8  # per-tensor dimension slots of the C ABI (trt_host.cc kMaxDims)

# nvinfer1::DataType and TensorFormat values (stable across TensorRT 10 and 11).
FLOAT, HALF, INT8, INT32, BOOL, UINT8, FP8, BF16, INT64 = 0, 1, 2, 3, 4, 5, 6, 7, 8
LINEAR, HWC8, CHW32 = 0, 2, 5
TRT_TYPES = {"float32": FLOAT, "float16": HALF, "bfloat16": BF16}
EXPORTED = ["host_*", "getCreators", "setLoggerFinder"]


def tensorrt_include_dir() -> Path | None:
    """The folder with TensorRT's NvInferRuntime.h, found as the CMake build finds it."""
    root = os.environ.get("TENSORRT_ROOT")
    if root:
        candidates = [Path(root) / "include", Path(root)]
    else:
        candidates = [
            Path(p)
            for p in (
                "/usr/include/x86_64-linux-gnu",
                "/usr/include/aarch64-linux-gnu",
                "/usr/local/tensorrt/include",
                "/usr/include",
            )
        ]
    for candidate in candidates:
        if (candidate / "NvInferRuntime.h").is_file() and (candidate / "NvInferVersion.h").is_file():
            return candidate
    return None


def tensorrt_header_version(include: Path) -> str:
    text = (include / "NvInferVersion.h").read_text()
    parts = []
    for part in ("MAJOR", "MINOR", "PATCH"):
        for prefix in (f"TRT_{part}_ENTERPRISE ", f"NV_TENSORRT_{part} "):
            line = next((x for x in text.splitlines() if x.startswith(f"#define {prefix}")), None)
            if line and line.split()[2].isdigit():
                parts.append(line.split()[2])
                break
    return ".".join(parts)


def _flags(include: Path) -> list[str]:
    return [
        *harness.CXXFLAGS,
        f"-I{HOST / 'include'}",
        f"-I{harness.EMULATION / 'include'}",
        "-isystem",
        str(include),
        f"-I{PLUGINS}",
    ]


def _digest(include: Path) -> str:
    files = sorted(
        [
            *PLUGINS.rglob("*"),
            *HOST.rglob("*"),
            *(harness.EMULATION / "include").rglob("*"),
            include / "NvInferVersion.h",
            include / "NvInferRuntime.h",
            include / "NvInferRuntimePlugin.h",
        ]
    )
    h = hashlib.sha256()
    for part in [harness._compiler_id(), " ".join(_flags(include))]:
        h.update(part.encode())
    for path in files:
        if path.is_file():
            h.update(str(path).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:20]


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{' '.join(cmd)}\n{result.stderr}")


def build(include: Path) -> tuple[Path, Path]:
    """Paths of (the fake libnvinfer, the host library with the plugins), built if not cached."""
    work = harness._build_dir()
    work.mkdir(parents=True, exist_ok=True)
    out = work / f"trt-{_digest(include)}"
    fake, host = out / "libfake_nvinfer.so", out / "libbytetx_trt_host.so"
    with open(work / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if fake.exists() and host.exists():
            return fake, host
        out.mkdir(exist_ok=True)
        flags = _flags(include)
        cache = harness._ObjectCache(work, PLUGINS)
        kernel_sources = [*harness.kernel_sources(PLUGINS), harness.EMULATION / "runtime.cc"]
        own_sources = [*sorted((PLUGINS / "trt").rglob("*.cc")), HOST / "trt_host.cc"]

        def own_object(source: Path) -> Path:
            target = out / (source.relative_to(ROOT).as_posix().replace("/", "_") + ".o")
            _run([harness.compiler(), *flags, "-c", str(source), "-o", str(target)], f"compiling {source}")
            return target

        workers = max(1, min(2, os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            objects = list(pool.map(lambda s: cache.object_for(s, PLUGINS), kernel_sources))
            objects += list(pool.map(own_object, own_sources))
        exports = out / "exports.map"
        exports.write_text("{ global: " + " ".join(f"{e};" for e in EXPORTED) + " local: *; };\n")
        _run(
            [
                harness.compiler(),
                "-shared",
                *flags,
                str(HOST / "fake_nvinfer.cc"),
                "-o",
                str(fake),
                "-Wl,--no-undefined",
            ],
            "building the fake libnvinfer",
        )
        _run(
            [
                harness.compiler(),
                "-shared",
                *harness.CXXFLAGS,
                *map(str, objects),
                "-o",
                str(host),
                f"-Wl,--version-script={exports}",
                "-Wl,--no-undefined",
                "-ldl",
            ],
            "linking the TensorRT host",
        )
        return fake, host


_TEXT = 1 << 16


def _text(function, *args) -> str:
    buffer = ctypes.create_string_buffer(_TEXT)
    function(*args, buffer, _TEXT)
    return buffer.value.decode()


@dataclass
class Tensor:
    """A plugin input or output: TensorRT type, dimensions, and the emulated device memory."""

    trt_type: int
    dims: tuple[int, ...]
    buffer: harness.DeviceBuffer | None = None


class Plugin:
    """An IPluginV3 made by the library's creator, destroyed with the object."""

    def __init__(self, host: Host, handle: int) -> None:
        self.host = host
        self.handle = ctypes.c_void_p(handle)

    def __del__(self) -> None:
        if self.handle:
            self.host.lib.host_destroy(self.handle)

    def describe(self) -> str:
        return _text(self.host.lib.host_describe, self.handle)

    def clone(self) -> Plugin | None:
        return self.host._wrap(self.host.lib.host_clone(self.handle))

    def attach_to_context(self) -> Plugin | None:
        return self.host._wrap(self.host.lib.host_attach_to_context(self.handle))

    def serialize_roundtrip(self) -> tuple[Plugin | None, str]:
        buffer = ctypes.create_string_buffer(_TEXT)
        handle = self.host.lib.host_serialize_roundtrip(self.handle, buffer, _TEXT)
        return self.host._wrap(handle), buffer.value.decode()

    def output_types(self, input_types: Sequence[int], num_outputs: int) -> tuple[int, list[int]]:
        ins = (ctypes.c_int32 * len(input_types))(*input_types)
        outs = (ctypes.c_int32 * num_outputs)()
        status = self.host.lib.host_output_types(self.handle, len(input_types), ins, num_outputs, outs)
        return status, list(outs)

    def output_shapes(
        self,
        input_dims: Sequence[Sequence[int]],
        num_outputs: int,
        runtime: Sequence[Sequence[bool]] | None = None,
    ) -> tuple[int, list[dict]]:
        """getOutputShapes; ``runtime`` marks input dimensions TensorRT would not know at build time.
        Returns the status and per output a dict: ``dims`` (values, -1 for a size tensor), ``kinds``
        ('const', 'runtime', 'size'), ``size_tensor`` (output index, opt, upper) where one is used."""
        n = len(input_dims)
        ranks = (ctypes.c_int32 * n)(*[len(d) for d in input_dims])
        dims = (ctypes.c_int64 * (n * MAX_DIMS))()
        constant = (ctypes.c_int32 * (n * MAX_DIMS))()
        for i, shape in enumerate(input_dims):
            for j, value in enumerate(shape):
                dims[i * MAX_DIMS + j] = value
                constant[i * MAX_DIMS + j] = 0 if runtime and runtime[i][j] else 1
        out_ranks = (ctypes.c_int32 * num_outputs)()
        out_values = (ctypes.c_int64 * (num_outputs * MAX_DIMS))()
        out_kinds = (ctypes.c_int32 * (num_outputs * MAX_DIMS))()
        size_info = (ctypes.c_int64 * 3)(-1, -1, -1)
        status = self.host.lib.host_output_shapes(
            self.handle, n, ranks, dims, constant, num_outputs, out_ranks, out_values, out_kinds, size_info
        )
        kinds = {0: "const", 1: "runtime", 2: "size"}
        outputs = []
        for i in range(num_outputs):
            rank = out_ranks[i]
            entry = {
                "dims": tuple(out_values[i * MAX_DIMS + j] for j in range(rank)),
                "kinds": tuple(kinds[out_kinds[i * MAX_DIMS + j]] for j in range(rank)),
            }
            if "size" in entry["kinds"]:
                entry["size_tensor"] = tuple(size_info)
            outputs.append(entry)
        return status, outputs

    def supports(
        self, pos: int, num_inputs: int, types: Sequence[int], formats: Sequence[int] | None = None
    ) -> bool:
        n = len(types)
        formats = formats or [LINEAR] * n
        return bool(
            self.host.lib.host_supports(
                self.handle,
                pos,
                num_inputs,
                n - num_inputs,
                (ctypes.c_int32 * n)(*types),
                (ctypes.c_int32 * n)(*formats),
            )
        )

    def configure(self, inputs: Sequence[Tensor], num_outputs: int) -> int:
        types, ranks, dims = _desc_arrays(inputs)
        return self.host.lib.host_configure(self.handle, len(inputs), types, ranks, dims, num_outputs)

    def enqueue(self, inputs: Sequence[Tensor], outputs: Sequence[Tensor]) -> int:
        in_types, in_ranks, in_dims = _desc_arrays(inputs)
        out_types, out_ranks, out_dims = _desc_arrays(outputs)
        in_ptrs = (ctypes.c_void_p * len(inputs))(*[t.buffer.ptr if t.buffer else None for t in inputs])
        out_ptrs = (ctypes.c_void_p * len(outputs))(*[t.buffer.ptr if t.buffer else None for t in outputs])
        status = self.host.lib.host_enqueue(
            self.handle,
            len(inputs),
            in_types,
            in_ranks,
            in_dims,
            in_ptrs,
            len(outputs),
            out_types,
            out_ranks,
            out_dims,
            out_ptrs,
        )
        harness.check_guards(*[t.buffer for t in (*inputs, *outputs)])
        return status


def _desc_arrays(tensors: Sequence[Tensor]):
    n = len(tensors)
    types = (ctypes.c_int32 * n)(*[t.trt_type for t in tensors])
    ranks = (ctypes.c_int32 * n)(*[len(t.dims) for t in tensors])
    dims = (ctypes.c_int64 * (n * MAX_DIMS))()
    for i, t in enumerate(tensors):
        for j, value in enumerate(t.dims):
            dims[i * MAX_DIMS + j] = value
    return types, ranks, dims


class Host:
    """The loaded host library (and the fake libnvinfer before it)."""

    def __init__(self, fake: Path, host: Path) -> None:
        self.fake = ctypes.CDLL(str(fake), mode=ctypes.RTLD_GLOBAL)
        self.lib = ctypes.CDLL(str(host))
        # What the static registration did while the library loaded, before anything calls getCreators.
        self.registry_after_load = self.registry_state()
        lib = self.lib
        for name in ("host_create", "host_clone", "host_attach_to_context", "host_serialize_roundtrip"):
            getattr(lib, name).restype = ctypes.c_void_p
        lib.host_create.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int32]
        lib.host_destroy.argtypes = [ctypes.c_void_p]
        lib.host_clone.argtypes = [ctypes.c_void_p]
        lib.host_attach_to_context.argtypes = [ctypes.c_void_p]
        lib.host_serialize_roundtrip.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32]
        lib.host_install_logger()

    def _wrap(self, handle: int | None) -> Plugin | None:
        return Plugin(self, handle) if handle else None

    def registry_state(self) -> str:
        return _text(self.fake.fake_registry_state)

    def take_log(self) -> str:
        return _text(self.lib.host_take_log)

    def creators(self) -> list[str]:
        return _text(self.lib.host_creators).splitlines()

    def create(self, name: str, fields: str = "", runtime: bool = False) -> Plugin | None:
        return self._wrap(self.lib.host_create(name.encode(), fields.encode(), int(runtime)))


@functools.cache
def load(include: Path) -> Host:
    return Host(*build(include))


def buffer_of(name: str, array: np.ndarray) -> harness.DeviceBuffer:
    return harness.DeviceBuffer.of(name, np.ascontiguousarray(array))


def empty_buffer(name: str, shape: tuple[int, ...], dtype) -> harness.DeviceBuffer:
    return harness.DeviceBuffer.empty(name, shape, dtype)
