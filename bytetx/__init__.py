"""bytetx: padding-free, fused BERT-family encoder inference.

The rewritten models use the custom ops of domain ``com.bytetx`` (see docs/ops.md); ONNX Runtime
runs them once the plugin library is registered, which :func:`InferenceSession` does for you.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

__version__ = "0.1.0"

OP_DOMAIN = "com.bytetx"
OP_SET_VERSION = 1

_LIBRARY_ENV = "BYTETX_ORT_LIBRARY"
_LIBRARY_NAME = "libbytetx_ort.so"


class LibraryNotFoundError(FileNotFoundError):
    """The compiled ONNX Runtime plugin library is missing."""


def ort_library_path() -> str:
    """Path of the ONNX Runtime custom-op library (``BYTETX_ORT_LIBRARY`` overrides it)."""
    override = os.environ.get(_LIBRARY_ENV)
    if override:
        if not Path(override).is_file():
            raise LibraryNotFoundError(f"{_LIBRARY_ENV}={override} does not name a file")
        return override
    path = Path(__file__).resolve().parent / "lib" / _LIBRARY_NAME
    if not path.is_file():
        raise LibraryNotFoundError(
            f"{path} is missing: bytetx was installed without its plugin library; "
            "reinstall it with `pip install .` from the source tree (which builds it with CMake)"
        )
    return str(path)


def session_options(options: Any | None = None) -> Any:
    """ONNX Runtime SessionOptions with the bytetx ops registered (a new object if none is given)."""
    import onnxruntime as ort

    options = options if options is not None else ort.SessionOptions()
    options.register_custom_ops_library(ort_library_path())
    return options


def InferenceSession(  # noqa: N802 - mirrors onnxruntime.InferenceSession
    model: str | os.PathLike | bytes,
    sess_options: Any | None = None,
    providers: Sequence[str] | None = None,
    **kwargs: Any,
) -> Any:
    """An ``onnxruntime.InferenceSession`` that can run bytetx models (CPU provider by default)."""
    import onnxruntime as ort

    source = model if isinstance(model, bytes) else os.fspath(model)
    return ort.InferenceSession(
        source,
        sess_options=session_options(sess_options),
        providers=list(providers) if providers else ["CPUExecutionProvider"],
        **kwargs,
    )
