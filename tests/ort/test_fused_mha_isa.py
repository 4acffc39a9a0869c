"""FusedMHA's CPU builds (one per instruction set, docs/ops.md) against the float64 reference.

The build is chosen once per process, so each runs in a child process with ``BYTETX_CPU_ISA`` set.
Tolerance as in test_fused_mha.py: atol 1e-5, rtol 1e-4.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import op_models
from fixtures import reference
from test_fused_mha import ATOL, RTOL, random_packed
from test_fused_mha_position_bias import MAX_DISTANCE
from test_fused_mha_position_bias import case as position_bias_case
from test_fused_mha_position_bias import expected as position_bias_expected

# CPU flags that mark each x86-64 psABI level (a sufficient subset of them).
LEVEL_FLAGS = {
    "x86-64-v3": {"avx2", "fma", "bmi1", "bmi2", "f16c", "movbe", "abm"},
    "x86-64-v4": {"avx2", "fma", "avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"},
}

RUN_IN_CHILD = """
import sys, numpy as np, onnxruntime as ort
library, model, feeds, out = sys.argv[1:]
options = ort.SessionOptions()
options.register_custom_ops_library(library)
options.log_severity_level = 4
session = ort.InferenceSession(open(model, "rb").read(), options, providers=["CPUExecutionProvider"])
try:
    result = session.run(None, dict(np.load(feeds)))[0]
except Exception as error:
    print(error)
    sys.exit(3)
np.save(out, result)
"""

def cpu_flags() -> set[str]:
    cpuinfo = Path("/proc/cpuinfo")
    return set(cpuinfo.read_text().split()) if cpuinfo.is_file() else set()


def run_with_isa(ort_library: str, isa: str, model: bytes, feeds: dict, tmp_path: Path):
    (tmp_path / "model.onnx").write_bytes(model)
    np.savez(tmp_path / "feeds.npz", **feeds)
    env = dict(os.environ, BYTETX_CPU_ISA=isa)
    child = subprocess.run(
        [sys.executable, "-c", RUN_IN_CHILD, ort_library, str(tmp_path / "model.onnx"), str(tmp_path / "feeds.npz"),
         str(tmp_path / "out.npy")], env=env, capture_output=True, text=True, timeout=300)
    if child.returncode == 3:
        return child.stdout
    assert child.returncode == 0, child.stderr[-2000:]
    return np.load(tmp_path / "out.npy")


def plain_case(batch, seq_len, num_heads, head_size, kind):
    qkv, bias, cu_seqlens, token_offset = random_packed(batch, seq_len, num_heads, head_size, kind, seed=seq_len)
    feeds = {"qkv": qkv, "qkv_bias": bias, "cu_seqlens": cu_seqlens, "token_offset": token_offset}
    return op_models.fused_mha_model(num_heads), feeds, reference.fused_mha(qkv, bias, cu_seqlens, num_heads)


def bias_case(batch, seq_len, num_heads, head_size, kind):
    feeds = position_bias_case(batch, seq_len, num_heads, head_size, kind, seed=seq_len)
    return op_models.position_bias_model(num_heads, MAX_DISTANCE), feeds, position_bias_expected(feeds, num_heads)


# Lengths around every vector width and tile height; the bias with consecutive positions and holes.
CASES = [
    lambda: plain_case(3, 65, 2, 40, "left"),
    lambda: plain_case(4, 33, 3, 17, "mixed"),
    lambda: plain_case(2, 97, 2, 64, "holes"),
    lambda: plain_case(1, 1, 1, 8, "full"),
    lambda: bias_case(3, 150, 2, 24, "right"),
    lambda: bias_case(3, 70, 3, 32, "holes"),
]


@pytest.mark.parametrize("isa", ["baseline", "x86-64-v3", "x86-64-v4"])
def test_each_build_matches_reference_or_is_refused_by_name(ort_library, tmp_path, isa):
    supported = isa == "baseline" or LEVEL_FLAGS[isa] <= cpu_flags()
    for index, make_case in enumerate(CASES):
        model, feeds, expected = make_case()
        case_dir = tmp_path / str(index)
        case_dir.mkdir()
        result = run_with_isa(ort_library, isa, model, feeds, case_dir)
        if not supported:
            assert isinstance(result, str) and f"BYTETX_CPU_ISA={isa} but this CPU does not support" in result
            return
        assert not isinstance(result, str), result
        np.testing.assert_allclose(result, expected, atol=ATOL, rtol=RTOL, err_msg=f"{isa}, case {index}")


def test_unknown_isa_name_is_refused(ort_library, tmp_path):
    result = run_with_isa(ort_library, "avx9000", *plain_case(2, 8, 2, 16, "mixed")[:2], tmp_path)
    assert isinstance(result, str) and "BYTETX_CPU_ISA=avx9000 is not one of x86-64-v4, x86-64-v3, baseline" in result
