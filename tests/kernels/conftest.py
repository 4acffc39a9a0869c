"""The kernel tests' library: every case runs on the CUDA emulation, and again on the real kernels where a
GPU and nvcc are present (tests/emulation/harness.py's two backends)."""

from __future__ import annotations

import pytest
from emulation import harness


@pytest.fixture(scope="module", params=["emulated", "gpu"])
def lib(request) -> harness.Library:
    if request.param == "emulated":
        return harness.library()
    missing = harness.cuda_backend_missing()
    if missing is not None:
        pytest.skip(f"the GPU backend needs a CUDA device and nvcc: {missing}")
    return harness.cuda_library()
