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
        raise ExportError(f"{path}: not a regular file" if path.exists() else f"{path}: no such file")
    try:
        model = onnx.load(str(path))
    except OSError as error:  # unreadable (permissions, I/O error), or missing external data
        raise ExportError(f"cannot read {path}: {error.strerror or error}"
                          + (f" ({error.filename})" if error.filename and str(error.filename) != str(path) else "")
                          ) from None
    except (DecodeError, ValueError, RuntimeError) as error:
        raise ExportError(f"{path} is not a readable ONNX model (truncated or corrupt?): {error}") from None
    except onnx.checker.ValidationError as error:  # external data missing or not a regular file
        raise ExportError(f"cannot load {path}: {str(error).splitlines()[0]}") from None
    if not model.graph.node:
        raise ExportError(f"{path} holds no ONNX graph (truncated or not an ONNX model)")
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as error:  # ValueError: e.g. a name that is not UTF-8
        raise ExportError(f"{path} is not a valid ONNX model: {str(error).splitlines()[0]}") from None
    bad = _undecodable_string(model)
    if bad:  # the checker does not read every string (e.g. producer_name); the rewrite would fail on it
        raise ExportError(f"{path} is not a valid ONNX model: {bad} is not UTF-8 text")
    return model


def _undecodable_string(message, where: str = "model") -> str | None:
    """Where a string field of ``message`` (recursively) is not valid UTF-8, or None.

    Reading such a field raises UnicodeDecodeError (ListFields hands it out as bytes instead); tensor
    data are bytes fields and are not read."""
    fields = message.ListFields()
    for field, _ in fields:
        if field.type == field.TYPE_STRING:
            try:
                value = getattr(message, field.name)  # decodes, or raises
                if not all(isinstance(v, str) for v in ([value] if isinstance(value, (str, bytes)) else value)):
                    return f"{where}.{field.name}"
            except UnicodeDecodeError:
                return f"{where}.{field.name}"
    for field, value in fields:
        if field.type == field.TYPE_MESSAGE:
            repeated = not hasattr(value, "ListFields")
            for i, item in enumerate(value if repeated else [value]):
                bad = _undecodable_string(item, f"{where}.{field.name}" + (f"[{i}]" if repeated else ""))
                if bad:
                    return bad
    return None


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
            # mkstemp creates the file 0600; give the model the mode any new file gets (0644 under
            # umask 022), so that a server running as another user can read it.
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(stream.fileno(), 0o666 & ~umask)
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
