"""bytetx: padding-free, fused BERT-family encoder inference.

The rewritten models use the custom ops of domain ``com.bytetx`` (see docs/ops.md); ONNX Runtime
runs them once the plugin library is registered, which :func:`InferenceSession` does for you.
"""

from __future__ import annotations

import importlib.abc
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .ops import DOMAIN as OP_DOMAIN
from .ops import OP_SET_VERSION

__version__ = "0.1.0"
__all__ = [
    "OP_DOMAIN",
    "OP_SET_VERSION",
    "InferenceSession",
    "LibraryNotFoundError",
    "library_locations",
    "ort_cuda_library_path",
    "ort_library_path",
    "session_options",
]

_PACKAGE_DIR = Path(__file__).resolve().parent
# The build maps these top-level folders of the source tree into this package (pyproject.toml,
# wheel.packages); imported from a source checkout, this package finds them there.
_SOURCE_SUBPACKAGES = ("exporter", "graph_rewrite")
_SOURCE_ROOT = (
    _PACKAGE_DIR.parent
    if not (_PACKAGE_DIR / "exporter").is_dir()
    and all((_PACKAGE_DIR.parent / name / "__init__.py").is_file() for name in _SOURCE_SUBPACKAGES)
    else None
)

_LIBRARY_ENV = "BYTETX_ORT_LIBRARY"
_LIBRARY_NAME = "libbytetx_ort.so"
# Built where nvcc was found: every op for both the CPU and the CUDA execution providers.
_CUDA_LIBRARY_ENV = "BYTETX_CUDA_LIBRARY"
_CUDA_LIBRARY_NAME = "libbytetx_ort_cuda.so"
# The C ABI over the kernels (plugins/capi/bytetx_capi.h), CUDA entry points where nvcc was found.
_KERNELS_LIBRARY_ENV = "BYTETX_KERNELS_LIBRARY"
_KERNELS_LIBRARY_NAME = "libbytetx_kernels.so"


class LibraryNotFoundError(FileNotFoundError):
    """The compiled ONNX Runtime plugin library is missing."""


class _SourceTreeFinder(importlib.abc.MetaPathFinder):
    """Finds ``bytetx.exporter`` and ``bytetx.graph_rewrite`` in the source checkout's folders."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        parent, _, name = fullname.rpartition(".")
        if parent != __name__ or name not in _SOURCE_SUBPACKAGES:
            return None
        folder = _PACKAGE_DIR.parent / name  # installed only where that is the source root
        return importlib.util.spec_from_file_location(
            fullname, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )


if _SOURCE_ROOT is not None:
    sys.meta_path.append(_SourceTreeFinder())


def library_locations(name: str) -> list[Path]:
    """Where the built library ``name`` is looked for, in order: bytetx/lib/ beside this package (an
    installed bytetx); for bytetx imported from its source checkout, then the installed
    distribution's bytetx/lib/ and the CMake build folders of the checkout (``build/<wheel tag>/``,
    which ``pip install .`` uses, newest first, then ``build/``)."""
    locations = [_PACKAGE_DIR / "lib" / name]
    if _SOURCE_ROOT is None:
        return locations
    try:
        installed = Path(importlib.metadata.distribution("bytetx").locate_file(f"bytetx/lib/{name}"))
        locations.append(installed.resolve())
    except importlib.metadata.PackageNotFoundError:
        pass
    build = _SOURCE_ROOT / "build"
    tagged = sorted(build.glob(f"*/{name}"), key=lambda path: path.stat().st_mtime, reverse=True)
    return locations + tagged + [build / name]


def _library(env: str, name: str, how: str) -> str:
    override = os.environ.get(env)
    if override:
        if not Path(override).is_file():
            raise LibraryNotFoundError(f"{env}={override} does not name a file")
        return override
    locations = library_locations(name)
    found = next((path for path in locations if path.is_file()), None)
    if found is None:
        looked = ", ".join(str(path) for path in dict.fromkeys(locations))
        raise LibraryNotFoundError(f"{name} not found (looked in {looked}): {how}, or set {env}")
    return str(found)


def _build_hint() -> str:
    where = "in the source checkout" if _SOURCE_ROOT is not None else "from the source tree"
    return f"build it with `pip install .` {where} (CMake builds the plugin library)"


def ort_library_path() -> str:
    """Path of the ONNX Runtime CPU custom-op library (``BYTETX_ORT_LIBRARY`` overrides it; see
    :func:`library_locations` for where it is looked for)."""
    return _library(_LIBRARY_ENV, _LIBRARY_NAME, _build_hint())


def ort_cuda_library_path() -> str:
    """Path of the library with the CUDA ops too (``BYTETX_CUDA_LIBRARY`` overrides it)."""
    return _library(_CUDA_LIBRARY_ENV, _CUDA_LIBRARY_NAME, "bytetx was built without CUDA; install the CUDA "
                    f"toolkit (nvcc) and {_build_hint()}")


def kernels_library_path() -> str:
    """Path of the C ABI library that ``bytetx.torch`` calls (``BYTETX_KERNELS_LIBRARY`` overrides it)."""
    return _library(_KERNELS_LIBRARY_ENV, _KERNELS_LIBRARY_NAME, _build_hint())


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
