"""Build and drive the host CUDA emulation (tests/emulation/README.md).

``library()`` compiles the CUDA kernels of ``plugins/kernels/`` (as host C++ with
``-DBYTETX_CUDA_EMULATION`` and the headers of ``tests/emulation/include/``), the CPU ops of
``plugins/cpu/``, the emulation runtime, the C ABI driver and the layer's sample kernels into one
shared library, once per source state: objects are cached under ``build/emulation/`` by a hash of the
compiler, the flags, the source and the headers it includes. ``library(mutation)`` builds the same
from a copy of ``plugins/`` with one text substitution (the known-bad checks).

Kernels read and write ``DeviceBuffer`` memory: host memory between two guard zones of the poison
pattern (a NaN in float32, float16 and bfloat16), so a stray write is caught by ``check_guards`` and a
stray read turns into NaN, which no comparison accepts.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import hashlib
import os
import shutil
import subprocess
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
EMULATION = ROOT / "tests" / "emulation"
PLUGINS = ROOT / "plugins"

# -fno-strict-aliasing: device code reuses shared memory under another type (the attention kernels
# write the softmax weights as 16-bit floats over the float scores), which nvcc tolerates.
CXXFLAGS = [
    "-O2",
    "-std=c++17",
    "-fPIC",
    "-pthread",
    "-fvisibility=hidden",
    "-fno-strict-aliasing",
    "-DBYTETX_CUDA_EMULATION",
    "-Wall",
    "-Wextra",
    # Extra flags for experiments, e.g. -fsanitize=undefined, or -DBYTETX_EMULATION_UCONTEXT (the
    # portable context switch on x86-64 too); part of the cache key like every flag.
    *os.environ.get("BYTETX_EMULATION_CXXFLAGS", "").split(),
]
EXPORTED = ["emu_*", "cpu_*", "sample_*"]

POISON_BYTES = np.array([0xC0, 0x7F, 0xC0, 0x7F], dtype=np.uint8)  # 0x7fc07fc0 at 4-byte aligned addresses
GUARD_BYTES = 4096
ALIGNMENT = 256  # cudaMalloc's


@dataclass(frozen=True)
class Mutation:
    """Replace ``old`` (which must occur exactly once) by ``new`` in ``plugins/<path>``."""

    path: str
    old: str
    new: str


def compiler() -> str:
    return os.environ.get("CXX", "g++")


def have_compiler() -> bool:
    return shutil.which(compiler()) is not None


def _build_dir() -> Path:
    return Path(os.environ.get("BYTETX_EMULATION_BUILD_DIR", ROOT / "build" / "emulation"))


@functools.cache
def _compiler_id() -> str:
    return subprocess.run([compiler(), "--version"], capture_output=True, text=True, check=True).stdout


def kernel_sources(plugins: Path) -> list[Path]:
    """The CUDA kernels' translation units: the .cu files and the host glue beside them."""
    return sorted((plugins / "kernels").rglob("*.cu")) + sorted((plugins / "kernels").rglob("*.cc"))


def _sources(plugins: Path) -> list[Path]:
    kernels = kernel_sources(plugins)
    cpu = sorted((plugins / "cpu").glob("*.cc"))
    return kernels + cpu + [EMULATION / "runtime.cc", EMULATION / "driver.cc", EMULATION / "samples.cu"]


def _digest(parts: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()[:24]


def _mutated_plugins(mutation: Mutation, work: Path) -> Path:
    """A copy of plugins/ with the mutation applied."""
    target = PLUGINS / mutation.path
    text = target.read_text()
    count = text.count(mutation.old)
    if count != 1:
        raise ValueError(
            f"mutation of plugins/{mutation.path}: {mutation.old!r} occurs {count} times, "
            "expected exactly once; update the known-bad check to the current kernel source"
        )
    copy = work / ("plugins-" + _digest([repr(mutation).encode()]))
    shutil.rmtree(copy, ignore_errors=True)  # rebuilt each time: the kernels may have changed since
    shutil.copytree(PLUGINS, copy, ignore=shutil.ignore_patterns("ort", "trt"))
    (copy / mutation.path).write_text(text.replace(mutation.old, mutation.new))
    return copy


class _ObjectCache:
    """Objects keyed by the contents of their source and of every header it includes, found as ccache's
    direct mode does: a manifest per (flags, source) lists the headers of the last compile (-MMD), so
    a change to one header recompiles only the translation units that include it."""

    def __init__(self, work: Path, plugins: Path) -> None:
        self.dir = work / "objects"
        self.dir.mkdir(exist_ok=True)
        self.roots = {"P": plugins, "E": EMULATION}
        self.common = [_compiler_id().encode(), " ".join(CXXFLAGS).encode()]

    def _relative(self, path: Path) -> str | None:
        for tag, root in self.roots.items():
            if path.is_relative_to(root):
                return f"{tag}:{path.relative_to(root)}"
        return None

    def _object_key(self, manifest_key: str, dependencies: list[str]) -> str | None:
        parts = [manifest_key.encode()]
        for dependency in dependencies:
            tag, relative = dependency.split(":", 1)
            path = self.roots[tag] / relative
            if not path.exists():
                return None
            parts += [dependency.encode(), path.read_bytes()]
        return _digest(parts)

    def object_for(self, source: Path, plugins: Path) -> Path:
        relative = self._relative(source)
        manifest_key = _digest(self.common + [relative.encode(), source.read_bytes()])
        name = relative.replace(":", "_").replace("/", "_").rsplit(".", 1)[0]
        manifest = self.dir / f"{name}-{manifest_key}.deps"
        if manifest.exists():
            key = self._object_key(manifest_key, manifest.read_text().split())
            if key is not None and (self.dir / f"{name}-{key}.o").exists():
                return self.dir / f"{name}-{key}.o"
        staging = self.dir / f"{name}.tmp{os.getpid()}-{threading.get_ident()}"
        depfile = staging.with_suffix(".d")
        language = ["-x", "c++"] if source.suffix == ".cu" else []
        cmd = [
            compiler(),
            *CXXFLAGS,
            f"-I{EMULATION / 'include'}",
            f"-I{plugins}",
            *language,
            "-c",
            str(source),
            "-o",
            str(staging.with_suffix(".o")),
            "-MMD",
            "-MF",
            str(depfile),
        ]
        result = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(
                f"compiling {source} for the CUDA emulation failed:\n{' '.join(cmd)}\n{result.stderr}"
            )
        listed = depfile.read_text().replace("\\\n", " ").split(":", 1)[1].split()
        dependencies = sorted(
            {d for d in (self._relative(Path(p).resolve()) for p in listed[1:]) if d is not None}
        )
        depfile.unlink()
        key = self._object_key(manifest_key, dependencies)
        target = self.dir / f"{name}-{key}.o"
        staging.with_suffix(".o").rename(target)
        manifest.write_text("\n".join(dependencies) + "\n")
        return target


def build(mutation: Mutation | None = None) -> Path:
    """Path of the emulation library for the current sources (built if not cached)."""
    work = _build_dir()
    work.mkdir(parents=True, exist_ok=True)
    with open(work / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time (pytest-xdist workers)
        plugins = PLUGINS if mutation is None else _mutated_plugins(mutation, work)
        cache = _ObjectCache(work, plugins)
        with ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool:
            objects = list(pool.map(lambda source: cache.object_for(source, plugins), _sources(plugins)))
        library = work / f"libbytetx_emulation-{_digest([o.name.encode() for o in objects])}.so"
        if not library.exists():
            exports = work / "exports.map"
            exports.write_text("{ global: " + " ".join(f"{e};" for e in EXPORTED) + " local: *; };\n")
            staging = library.with_suffix(f".tmp{os.getpid()}.so")
            cmd = [
                compiler(),
                "-shared",
                *CXXFLAGS,
                *[str(o) for o in objects],
                "-o",
                str(staging),
                f"-Wl,--version-script={exports}",
                "-Wl,--no-undefined",
            ]
            result = subprocess.run(cmd, check=False, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"linking the CUDA emulation failed:\n{' '.join(cmd)}\n{result.stderr}")
            staging.rename(library)
        return library


_I64 = ctypes.c_int64
_INT = ctypes.c_int
_PTR = ctypes.c_void_p
_FLOAT = ctypes.c_float
SIGNATURES = {
    "emu_remove_padding": [_INT, _PTR, _PTR, _INT, _I64, _I64, _I64, _I64, _PTR, _PTR, _PTR],
    "emu_upload_mask_bits": [_PTR, _I64, _PTR],
    "emu_rebuild_padding": [_INT, _PTR, _PTR, _I64, _I64, _I64, _I64, _PTR],
    "emu_fused_mha": [_INT, _PTR, _PTR, _PTR, _I64, _I64, _I64, _I64, _I64, _FLOAT, _PTR, _INT, _PTR, _PTR, _I64, _I64,
                      _PTR, _I64, _PTR, _PTR, _I64, _I64, _I64],
    "emu_fused_mha_selected": [_INT, _I64, _I64, _INT],
    "cpu_remove_padding": [_PTR, _PTR, _INT, _I64, _I64, _I64, _PTR, _PTR, _PTR],
    "cpu_fused_mha": [_PTR, _PTR, _PTR, _I64, _I64, _I64, _I64, _FLOAT, _PTR, _PTR, _PTR, _I64, _I64, _PTR, _I64, _PTR,
                      _PTR, _I64, _I64, _I64],
    "cpu_rebuild_padding": [_PTR, _PTR, _I64, _I64, _I64, _I64, _PTR],
    "sample_shuffles": [_PTR, _INT, _INT],
    "sample_float_shuffles": [_PTR, _PTR, _PTR],
    "sample_builtins": [_PTR, _PTR, _PTR],
    "sample_barriers": [_INT, _INT, _PTR, _PTR],
    "sample_early_exit": [_PTR],
    "sample_static_shared": [_INT, _PTR, _PTR],
    "sample_dynamic_shared": [_PTR, _PTR, _PTR, _PTR, _INT, _INT, _INT],
    "sample_atomics": [_INT, _INT, _PTR, _PTR, _PTR, _PTR, _PTR],
    "sample_wmma": [_INT, _PTR, _PTR, _PTR, _PTR, _FLOAT, _INT, _INT, _INT, _INT],
    "sample_misaligned_wmma": [_PTR, _PTR],
    "sample_neighbours": [_INT, _INT, _PTR],
    "sample_misuse": [_INT, _PTR],
    "sample_bad_launch": [_INT],
    "sample_parameter_copies": [_INT, _PTR],
    "sample_set_device": [_INT, _I64],
    "sample_device_attribute": [_INT],
    "sample_float_to_half": [_PTR, _PTR, _I64],
    "sample_half_to_float": [_PTR, _PTR, _I64],
    "sample_float_to_bfloat16": [_PTR, _PTR, _I64],
    "sample_bfloat16_to_float": [_PTR, _PTR, _I64],
}


class Library:
    """A kernel-test library: ``call(name, *args)`` runs an exported function; ``buffers`` is the kind of
    device memory its kernels take (DeviceBuffer under the emulation, CudaBuffer on a GPU)."""

    def __init__(self, path: Path, buffers: type[DeviceBuffer],
                 prefixes: tuple[str, ...] = ("emu_", "cpu_", "sample_")) -> None:
        self.path = path
        self.buffers = buffers
        self._lib = ctypes.CDLL(str(path))
        for name, argtypes in SIGNATURES.items():
            if name.startswith(prefixes):
                function = getattr(self._lib, name)
                function.argtypes = argtypes
                function.restype = _INT
        for name in ("emu_last_launch_error", "sample_last_launch_error"):
            if name.startswith(prefixes):
                getattr(self._lib, name).restype = ctypes.c_char_p

    def call(self, name: str, *args):
        """Calls an exported function; device buffers and (contiguous) NumPy arrays become pointers, held
        alive by ``args`` for the duration of the call."""
        converted = [
            a.ptr
            if isinstance(a, DeviceBuffer)
            else self._array_pointer(a)
            if isinstance(a, np.ndarray)
            else a
            for a in args
        ]
        return getattr(self._lib, name)(*converted)

    @staticmethod
    def _array_pointer(array: np.ndarray) -> int:
        assert array.flags.c_contiguous, "arrays passed to the emulation library must be C-contiguous"
        return array.ctypes.data

    def launch(self, name: str, *args) -> None:
        """Runs an emu_* launcher and fails the test unless it returns cudaSuccess."""
        status = self.call(name, *args)
        assert status == 0, f"{name} returned cudaError {status}: {self.last_error()}"

    def last_error(self) -> str:
        return self._lib.emu_last_launch_error().decode()

    def raw(self, name: str):
        return getattr(self._lib, name)


@functools.cache
def library(mutation: Mutation | None = None) -> Library:
    """The emulation library (of plugins/, or of a mutated copy)."""
    return Library(build(mutation), DeviceBuffer)


# ---- The GPU backend: the same driver and kernels built by nvcc for the device present ------------------


def _nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    fallback = Path("/usr/local/cuda/bin/nvcc")
    return str(fallback) if fallback.is_file() else None


@functools.cache
def cuda_device_arch() -> str | None:
    """sm_XY of the first CUDA device, or None without a device (or without torch to find it)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(0)
    return f"sm_{major}{minor}"


def cuda_backend_missing() -> str | None:
    """Why the GPU backend cannot run here, or None when it can."""
    if cuda_device_arch() is None:
        return "no CUDA device (through torch)"
    if _nvcc() is None:
        return "no nvcc"
    return None


@functools.cache
def cuda_library() -> Library:
    """The kernels and the driver built by nvcc for the present device: every emu_* case runs for real."""
    arch = cuda_device_arch()
    nvcc = _nvcc()
    sources = [*kernel_sources(PLUGINS), *sorted((PLUGINS / "cpu").glob("*.cc")), EMULATION / "driver.cc"]
    flags = ["-O2", "-std=c++17", f"-arch={arch}", "-Xcompiler", "-fPIC,-fvisibility=hidden,-fno-strict-aliasing",
             f"-I{PLUGINS}"]
    digest = _digest([" ".join(flags).encode()] + [source.read_bytes() for source in sources])
    work = _build_dir().parent / f"gpu-tests-{arch}-{digest}"
    library_path = work / "libbytetx_gpu_tests.so"
    if not library_path.exists():
        work.mkdir(parents=True, exist_ok=True)

        def compile_one(source: Path) -> Path:
            obj = work / (source.relative_to(ROOT).as_posix().replace("/", "_") + ".o")
            # The driver launches the kernel templates itself (the FMA kernel as on sm_75): device code.
            language = ["-x", "cu"] if source.suffix == ".cu" or source.name == "driver.cc" else []
            result = subprocess.run([nvcc, *flags, *language, "-c", str(source), "-o", str(obj)],
                                    capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise RuntimeError(f"nvcc failed on {source}:\n{result.stderr}")
            return obj

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            objects = list(pool.map(compile_one, sources))
        exports = work / "exports.map"
        exports.write_text("{ global: emu_*; cpu_*; local: *; };\n")
        staging = library_path.with_suffix(f".tmp{os.getpid()}.so")
        result = subprocess.run([nvcc, "-shared", f"-arch={arch}", *map(str, objects), "-o", str(staging),
                                 "-Xlinker", f"--version-script={exports}"], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"linking the GPU test library failed:\n{result.stderr}")
        staging.rename(library_path)
    return Library(library_path, CudaBuffer, prefixes=("emu_", "cpu_"))


def _pattern(address: int, nbytes: int) -> np.ndarray:
    return POISON_BYTES[(address + np.arange(nbytes)) % 4]


class DeviceBuffer:
    """``nbytes`` of stand-in device memory at a 256-byte aligned address plus ``offset``, poisoned
    (or holding ``data``), between guard zones of the poison pattern."""

    def __init__(self, name: str, nbytes: int, offset: int = 0, data: np.ndarray | None = None) -> None:
        self.name = name
        self.nbytes = nbytes
        self._size = nbytes + 2 * GUARD_BYTES + ALIGNMENT + offset
        self._allocate()
        self._start = GUARD_BYTES + (-(self._base + GUARD_BYTES)) % ALIGNMENT + offset
        host = _pattern(self._base, self._size)
        if data is not None:
            raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
            assert raw.size == nbytes, f"{name}: {raw.size} bytes of data for a {nbytes}-byte buffer"
            host[self._start : self._start + nbytes] = raw
        self._upload(host)

    # Storage: host memory, which the emulated kernels address directly.
    def _allocate(self) -> None:
        self._raw = np.empty(self._size, dtype=np.uint8)
        self._base = self._raw.ctypes.data

    def _upload(self, host: np.ndarray) -> None:
        self._raw[:] = host

    def _download(self) -> np.ndarray:
        return self._raw

    @classmethod
    def of(cls, name: str, array: np.ndarray, offset: int = 0) -> DeviceBuffer:
        return cls(name, array.nbytes, offset, array)

    @classmethod
    def empty(cls, name: str, shape: tuple[int, ...], dtype, offset: int = 0) -> DeviceBuffer:
        return cls(name, int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize, offset)

    @property
    def ptr(self) -> int:
        return self._base + self._start

    def read(self, dtype, shape: tuple[int, ...]) -> np.ndarray:
        count = int(np.prod(shape, dtype=np.int64))
        data = self._download()[self._start : self._start + count * np.dtype(dtype).itemsize].copy()
        return data.view(dtype).reshape(shape)

    def check_guards(self) -> None:
        raw = self._download()
        for lo, hi, where in (
            (0, self._start, "before"),
            (self._start + self.nbytes, self._size, "after"),
        ):
            bad = np.flatnonzero(raw[lo:hi] != _pattern(self._base + lo, hi - lo))
            assert bad.size == 0, (
                f"{self.name}: the kernel wrote {bad.size} bytes {where} the buffer "
                f"(first at byte {lo + bad[0] - self._start} relative to its start)"
            )


class CudaBuffer(DeviceBuffer):
    """The same in CUDA device memory (a torch allocation), for the GPU backend. Reads synchronize the
    device, so they see every launch before them."""

    def _allocate(self) -> None:
        import torch

        self._raw = torch.empty(self._size, dtype=torch.uint8, device="cuda")
        self._base = self._raw.data_ptr()

    def _upload(self, host: np.ndarray) -> None:
        import torch

        self._raw.copy_(torch.from_numpy(host))

    def _download(self) -> np.ndarray:
        import torch

        torch.cuda.synchronize()
        return self._raw.cpu().numpy()


def check_guards(*buffers: DeviceBuffer | None) -> None:
    for buffer in buffers:
        if buffer is not None:
            buffer.check_guards()


def assert_no_nan(out: np.ndarray, what: str) -> None:
    values = out.astype(np.float64)
    bad = np.argwhere(np.isnan(values))
    assert bad.size == 0, f"{what}: {len(bad)} NaN values, the first at {tuple(int(i) for i in bad[0])}"


def assert_close(out: np.ndarray, ref: np.ndarray, atol: float, rtol: float, what: str) -> None:
    """|out - ref| <= atol + rtol * |ref| everywhere (float32 results against a float32/64 reference)."""
    assert out.shape == ref.shape, f"{what}: shape {out.shape} != {ref.shape}"
    assert_no_nan(out, what)
    if out.size == 0:
        return
    err = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    excess = err - (atol + rtol * np.abs(ref.astype(np.float64)))
    worst = np.unravel_index(np.argmax(excess), excess.shape)
    assert excess[worst] <= 0, (
        f"{what}: |out - ref| = {err[worst]:.3g} at {tuple(int(i) for i in worst)} "
        f"(out {float(out[worst]):.6g}, ref {float(ref[worst]):.6g}) exceeds atol {atol} + "
        f"rtol {rtol} * |ref|"
    )


def assert_close_lowp(out: np.ndarray, ref: np.ndarray, ref_lowp: np.ndarray, atol: float, what: str) -> None:
    """FlashAttention's rule: max|out - ref| <= 2 * max|ref_lowp - ref| + atol, where ref is the exact
    (float32/64) result on the same low-precision inputs and ref_lowp the result of computing in that
    precision (checks.py says which roundings each op's ref_lowp makes)."""
    assert out.shape == ref.shape == ref_lowp.shape, (
        f"{what}: shapes {out.shape}, {ref.shape}, {ref_lowp.shape}"
    )
    assert_no_nan(out, what)
    if out.size == 0:
        return
    ref64 = ref.astype(np.float64)
    err = np.abs(out.astype(np.float64) - ref64)
    budget = 2 * float(np.max(np.abs(ref_lowp.astype(np.float64) - ref64))) + atol
    worst = np.unravel_index(np.argmax(err), err.shape)
    assert err[worst] <= budget, (
        f"{what}: max|out - ref| = {err[worst]:.3g} at {tuple(int(i) for i in worst)} "
        f"(out {float(out[worst]):.6g}, ref {float(ref[worst]):.6g}) exceeds "
        f"2 * max|ref_lowp - ref| + atol = {budget:.3g}"
    )


def assert_bits_equal(out: np.ndarray, ref: np.ndarray, what: str) -> None:
    """Bit-exact equality (data movement)."""
    assert out.shape == ref.shape, f"{what}: shape {out.shape} != {ref.shape}"
    if out.size == 0:
        return
    a = np.ascontiguousarray(out).view(np.uint8).reshape(out.shape + (-1,))
    b = np.ascontiguousarray(ref).view(np.uint8).reshape(ref.shape + (-1,))
    bad = np.argwhere(np.any(a != b, axis=-1))
    assert bad.size == 0, (
        f"{what}: {len(bad)} elements differ, the first at {tuple(int(i) for i in bad[0])}: "
        f"{out[tuple(bad[0])]!r} != {ref[tuple(bad[0])]!r}"
    )
