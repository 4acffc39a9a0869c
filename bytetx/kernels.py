"""ctypes binding of the C ABI over the bytetx kernels (``plugins/capi/bytetx_capi.h``).

Framework-free: a tensor is a data pointer, a dtype name and a shape, on the CPU (host memory) or on
CUDA (device memory, launched on a given stream). The library validates every call through the op's
contract; a refusal arrives as :class:`KernelError` with the op's message. ``bytetx.torch`` builds on it.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Sequence
from dataclasses import dataclass

CAPI_VERSION = 2
MAX_RANK = 4
CPU, CUDA = 0, 1
DTYPES = {"float32": 0, "float16": 1, "bfloat16": 2, "int32": 3, "int64": 4}
_OK, _INVALID_ARGUMENT, _INTERNAL, _UNAVAILABLE = 0, 1, 2, 3
_MESSAGE_BYTES = 1024


class KernelError(RuntimeError):
    """A kernel call failed; the message is the op's (``"<op>: <reason>"``)."""


class InvalidKernelArgument(KernelError, ValueError):
    """The tensors broke the op's contract (docs/ops.md)."""


class KernelUnavailable(KernelError):
    """The library was built without the device asked for (CUDA without nvcc at build time)."""


class _Tensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("dtype", ctypes.c_int32),
        ("rank", ctypes.c_int32),
        ("dims", ctypes.c_int64 * MAX_RANK),
    ]


@dataclass(frozen=True)
class TensorRef:
    """A dense row-major tensor the kernels read or write: ``data`` is its address."""

    data: int
    dtype: str
    shape: Sequence[int]

    def as_struct(self) -> _Tensor:
        if self.dtype not in DTYPES:
            raise InvalidKernelArgument(f"dtype {self.dtype} is not one the kernels take ({', '.join(DTYPES)})")
        if len(self.shape) > MAX_RANK:
            raise InvalidKernelArgument(f"shape {tuple(self.shape)} has more than {MAX_RANK} dimensions")
        dims = (ctypes.c_int64 * MAX_RANK)(*[int(d) for d in self.shape])
        return _Tensor(ctypes.c_void_p(self.data or None), DTYPES[self.dtype], len(self.shape), dims)


class Kernels:
    """The loaded library (:func:`bytetx.kernels_library_path`)."""

    def __init__(self, path: str):
        self._lib = ctypes.CDLL(path)
        pointer = ctypes.POINTER(_Tensor)
        tail = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        signatures = {
            "bytetx_remove_padding": [ctypes.c_int32, pointer, pointer, pointer, pointer, pointer, *tail],
            "bytetx_fused_mha": [ctypes.c_int32, pointer, pointer, pointer, pointer, pointer, pointer, ctypes.c_int64,
                                 ctypes.c_int32, ctypes.c_float, ctypes.c_int64, pointer, *tail],
            "bytetx_rebuild_padding": [ctypes.c_int32, pointer, pointer, pointer, *tail],
        }
        for name, argtypes in signatures.items():
            function = getattr(self._lib, name)
            function.argtypes = argtypes
            function.restype = ctypes.c_int32
        for name in ("bytetx_capi_version", "bytetx_has_cuda"):
            getattr(self._lib, name).restype = ctypes.c_int32
        self._lib.bytetx_set_cpu_threads.argtypes = [ctypes.c_int32]
        version = self._lib.bytetx_capi_version()
        if version != CAPI_VERSION:
            raise KernelError(f"{path} has C ABI version {version}, this bytetx needs {CAPI_VERSION}: reinstall bytetx")

    @property
    def has_cuda(self) -> bool:
        return bool(self._lib.bytetx_has_cuda())

    def set_cpu_threads(self, num_threads: int) -> None:
        """Threads of the CPU kernels (0: every core)."""
        self._lib.bytetx_set_cpu_threads(num_threads)

    def remove_padding(self, device: int, input: TensorRef, attention_mask: TensorRef, packed: TensorRef,
                       cu_seqlens: TensorRef, token_offset: TensorRef, stream: int = 0) -> None:
        self._call("bytetx_remove_padding", device, input, attention_mask, packed, cu_seqlens, token_offset,
                   stream=stream)

    def fused_mha(self, device: int, qkv: TensorRef, qkv_bias: TensorRef, cu_seqlens: TensorRef,
                  token_offset: TensorRef, num_heads: int, scale: float | None, context: TensorRef,
                  stream: int = 0, positions: TensorRef | None = None,
                  relative_position_bias: TensorRef | None = None,
                  relative_position_max_distance: int | None = None) -> None:
        """``positions``, ``relative_position_bias`` and ``relative_position_max_distance``: the
        optional relative position bias (docs/ops.md#fusedmha), all three or none."""
        self._call("bytetx_fused_mha", device, qkv, qkv_bias, cu_seqlens, token_offset, positions,
                   relative_position_bias, int(num_heads), int(scale is not None), float(scale or 0.0),
                   int(relative_position_max_distance or 0), context, stream=stream)

    def rebuild_padding(self, device: int, packed: TensorRef, token_offset: TensorRef, output: TensorRef,
                        stream: int = 0) -> None:
        self._call("bytetx_rebuild_padding", device, packed, token_offset, output, stream=stream)

    def _call(self, name: str, *args, stream: int) -> None:
        # Structs kept alive for the duration of the call.
        structs = [a.as_struct() if isinstance(a, TensorRef) else a for a in args]
        converted = [ctypes.byref(s) if isinstance(s, _Tensor) else s for s in structs]
        message = ctypes.create_string_buffer(_MESSAGE_BYTES)
        status = getattr(self._lib, name)(*converted, ctypes.c_void_p(stream or None), message, _MESSAGE_BYTES)
        if status == _OK:
            return
        text = message.value.decode(errors="replace")
        if status == _INVALID_ARGUMENT:
            raise InvalidKernelArgument(text)
        if status == _UNAVAILABLE:
            raise KernelUnavailable(text)
        raise KernelError(text)


@functools.cache
def load() -> Kernels:
    """The kernel library of this installation, loaded once."""
    import bytetx

    return Kernels(bytetx.kernels_library_path())
