"""bytetx: padding-free, fused BERT-family encoder inference.

The rewritten models use the custom ops of domain ``com.bytetx`` (see docs/ops.md); ONNX Runtime
runs them once the plugin library is registered, which :func:`InferenceSession` does for you.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from .ops import DOMAIN as OP_DOMAIN
from .ops import OP_SET_VERSION

__version__ = "0.1.0"
__all__ = [
    "OP_DOMAIN",
    "OP_SET_VERSION",
    "InferenceSession",
    "LibraryNotFoundError",
    "ort_cuda_library_path",
    "ort_library_path",
    "session_options",
]

_LIBRARY_ENV = "BYTETX_ORT_LIBRARY"
_LIBRARY_NAME = "libbytetx_ort.so"
# Built where nvcc was found: every op for both the CPU and the CUDA execution providers.
_CUDA_LIBRARY_ENV = "BYTETX_CUDA_LIBRARY"
_CUDA_LIBRARY_NAME = "libbytetx_ort_cuda.so"


class LibraryNotFoundError(FileNotFoundError):
    """The compiled ONNX Runtime plugin library is missing."""


def _library(env: str, name: str, how: str) -> str:
    override = os.environ.get(env)
    if override:
        if not Path(override).is_file():
            raise LibraryNotFoundError(f"{env}={override} does not name a file")
        return override
    path = Path(__file__).resolve().parent / "lib" / name
    if not path.is_file():
        raise LibraryNotFoundError(f"{path} is missing: {how}")
    return str(path)


def ort_library_path() -> str:
    """Path of the ONNX Runtime CPU custom-op library (``BYTETX_ORT_LIBRARY`` overrides it)."""
    return _library(_LIBRARY_ENV, _LIBRARY_NAME, "bytetx was installed without its plugin library; reinstall "
                    "it with `pip install .` from the source tree (which builds it with CMake)")


def ort_cuda_library_path() -> str:
    """Path of the library with the CUDA ops too (``BYTETX_CUDA_LIBRARY`` overrides it)."""
    return _library(_CUDA_LIBRARY_ENV, _CUDA_LIBRARY_NAME, "bytetx was built without CUDA; install the CUDA "
                    "toolkit (nvcc) and reinstall it with `pip install .`")


def session_options(options: Any | None = None, cuda: bool = False) -> Any:
    """ONNX Runtime SessionOptions with the bytetx ops registered (a new object if none is given).

    ``cuda`` registers the library that also has the CUDA kernels; register one library per session.
    """
    import onnxruntime as ort

    options = options if options is not None else ort.SessionOptions()
    options.register_custom_ops_library(ort_cuda_library_path() if cuda else ort_library_path())
    return options


def InferenceSession(  # noqa: N802 - mirrors onnxruntime.InferenceSession
    model: str | os.PathLike | bytes,
    sess_options: Any | None = None,
    providers: Sequence[str] | None = None,
    **kwargs: Any,
) -> Any:
    """An ``onnxruntime.InferenceSession`` that can run bytetx models (CPU provider by default;
    with ``CUDAExecutionProvider`` among the providers, the CUDA ops are registered)."""
    import onnxruntime as ort

    providers = list(providers) if providers else ["CPUExecutionProvider"]
    cuda = any((p[0] if isinstance(p, tuple) else p) == "CUDAExecutionProvider" for p in providers)
    source = model if isinstance(model, bytes) else os.fspath(model)
    return ort.InferenceSession(source, sess_options=session_options(sess_options, cuda), providers=providers, **kwargs)
