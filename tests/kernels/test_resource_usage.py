"""Resource usage of the built CUDA kernels, read from the cubins of libbytetx_ort_cuda.so
(scripts/kernel_resources.py): no kernel may spill registers or use a local-memory stack frame, and
every architecture of docs/kernels.md must be present. No GPU needed.

The library is ``BYTETX_CUDA_LIBRARY`` or the installed package's. Without one the tests are skipped
when no nvcc exists (a CPU-only build), and fail when nvcc exists (the build should have made it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fixtures.scripts import load_script

NVCC_FALLBACK = Path("/usr/local/cuda/bin/nvcc")
# Turing to Hopper; newer families are added from what the toolkit supports (as CMakeLists.txt does).
BASE_ARCHS = {75, 80, 86, 89, 90}
# Kernel templates every architecture must carry.
KERNEL_FAMILIES = [
    "remove_padding::RowLengthsKernel",
    "remove_padding::ScanLengthsKernel",
    "remove_padding::TokenOffsetKernel",
    "remove_padding::GatherRowsKernel",
    "remove_padding::StoreMaskWordsKernel",
    "rebuild_padding::ScatterRowsKernel",
    "fused_mha::ShortMHAKernel",
    "fused_mha::TiledMHAKernel",
    "fused_mha::FmaMHAKernel",
]


kernel_resources = load_script("kernel_resources")


def _nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    return str(NVCC_FALLBACK) if NVCC_FALLBACK.is_file() else None


@pytest.fixture(scope="module")
def cuda_library() -> Path:
    library = kernel_resources.default_library()
    if library is not None and library.is_file():
        return library
    if _nvcc() is None:
        pytest.skip("no CUDA library and no nvcc: a CPU-only build")
    pytest.fail(
        "nvcc is installed but libbytetx_ort_cuda.so is not: the build skipped CUDA "
        f"(reinstall with `pip install .`, or point {kernel_resources.LIBRARY_ENV} at the library)"
    )


@pytest.fixture(scope="module")
def records(cuda_library):
    return kernel_resources.kernel_resources(cuda_library)


def expected_archs() -> set[int]:
    nvcc = _nvcc()
    if nvcc is None:
        return BASE_ARCHS
    listed = subprocess.run([nvcc, "--list-gpu-arch"], capture_output=True, text=True, check=True).stdout
    supported = {int(a) for a in re.findall(r"compute_(\d+)", listed)}
    return (BASE_ARCHS & supported) | {a for a in supported if a > 90 and a % 10 == 0}


def test_no_register_spills_or_local_memory(records):
    offenders = [f"sm_{r.arch} {r.name}: {r.stack_frame} bytes" for r in records if r.stack_frame > 0]
    assert not offenders, "kernels with a local-memory stack frame (spills):\n" + "\n".join(offenders)


def test_every_architecture_is_built(records):
    missing = expected_archs() - {r.arch for r in records}
    assert not missing, f"no cubin for sm_{sorted(missing)}: was BYTETX_CUDA_ARCHITECTURES narrowed?"


def test_every_kernel_is_built_for_every_architecture(records):
    by_arch: dict[int, set[str]] = {}
    for r in records:
        by_arch.setdefault(r.arch, set()).add(kernel_resources.short_name(r.name))
    for arch, kernels in sorted(by_arch.items()):
        absent = [f for f in KERNEL_FAMILIES if not any(k.startswith(f) for k in kernels)]
        assert not absent, f"sm_{arch} lacks {absent}"


def test_registers_fit_the_launch_bounds(records):
    # 255 is the hardware limit; a kernel at it is one edit away from spilling.
    heavy = [f"sm_{r.arch} {r.name}: {r.registers}" for r in records if r.registers >= 255]
    assert not heavy, "kernels at the register limit:\n" + "\n".join(heavy)


def test_library_exports_only_register_custom_ops(cuda_library):
    if shutil.which("nm") is None or shutil.which("readelf") is None:
        pytest.skip("binutils (nm, readelf) are not installed")
    nm = subprocess.run(["nm", "-D", "--defined-only", str(cuda_library)], capture_output=True, text=True, check=True)
    assert [line.split()[-1] for line in nm.stdout.splitlines()] == ["RegisterCustomOps"]
    needed = subprocess.run(["readelf", "-d", str(cuda_library)], capture_output=True, text=True, check=True).stdout
    # The CUDA runtime is linked statically and ONNX Runtime hands its API over at registration.
    assert "onnxruntime" not in needed
    assert "libcudart" not in needed
