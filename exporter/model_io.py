"""Reading and writing ONNX files without leaving a broken file behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from .hf_export import ExportError


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """Load and check an ONNX file; ExportError says what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    try:
        model = onnx.load(str(path))
    except (DecodeError, OSError, ValueError, RuntimeError) as error:
        raise ExportError(f"{path} is not a readable ONNX model (truncated or corrupt?): {error}") from None
    if not model.graph.node:
        raise ExportError(f"{path} holds no ONNX graph (truncated or not an ONNX model)")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        raise ExportError(f"{path} is not a valid ONNX model: {str(error).splitlines()[0]}") from None
    return model


def save_onnx_atomic(model: onnx.ModelProto, path: str | Path) -> Path:
    """Write ``model`` to ``path`` all at once: a temporary file beside it, then a rename.

    On any failure (unwritable folder, full disk, interruption) ``path`` is left as it was.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ExportError(f"cannot write {path}: folder {folder} does not exist")
    data = model.SerializeToString()
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as error:
        raise ExportError(f"cannot write {path}: {error.strerror}") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise ExportError(f"cannot write {path}: {error.strerror or error}") from None
        raise
    return path
