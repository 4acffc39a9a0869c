"""The shared library itself: it exports RegisterCustomOps only and does not link libonnxruntime
(ONNX Runtime passes its API table at registration, so any onnxruntime >= 1.21 can load it)."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def _tool_output(tool: str, *args: str) -> str:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} (binutils) is not installed")
    return subprocess.run([tool, *args], check=True, capture_output=True, text=True).stdout


def test_exports_only_register_custom_ops(ort_library):
    symbols = [line.split()[-1] for line in _tool_output("nm", "-D", "--defined-only", ort_library).splitlines()]
    assert symbols == ["RegisterCustomOps"]


def test_does_not_link_onnxruntime(ort_library):
    assert "onnxruntime" not in _tool_output("readelf", "-d", ort_library)
