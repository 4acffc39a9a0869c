"""BiasResidualLayerNorm and BiasGelu: the CUDA kernels of plugins/kernels/ run on the CPU under the host
emulation (tests/emulation/README.md) against float64 NumPy on the same inputs. No GPU needed.
Tolerances: tests/emulation/checks.py.
"""

from __future__ import annotations

import pytest
from emulation import checks, harness
from emulation.harness import Library

pytestmark = pytest.mark.skipif(not harness.have_compiler(), reason="no C++ compiler for the CUDA emulation")

DTYPES = ["float32", "float16", "bfloat16"]
# (rows, hidden): one column; warp edges; the 256-thread cap (one, then two columns per thread); BERT
# sizes; a hidden size no power of 2 divides; the maximum hidden size; no rows.
LAYER_NORM_SHAPES = {
    "1x1": (1, 1),
    "31": (3, 31),
    "32": (3, 32),
    "33": (3, 33),
    "255": (64, 255),
    "256": (4, 256),
    "257": (4, 257),
    "768": (5, 768),
    "1000": (2, 1000),
    "max_8192": (2, 8192),
    "no_rows": (0, 64),
}


@pytest.fixture(scope="module")
def lib() -> Library:
    return harness.library()


@pytest.mark.parametrize("shape", LAYER_NORM_SHAPES.values(), ids=LAYER_NORM_SHAPES.keys())
@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_residual_layer_norm(lib, dtype, shape):
    checks.check_layer_norm(lib, dtype, *shape, seed=shape[1])


@pytest.mark.parametrize(
    ("bias", "residual", "beta", "pre_norm"),
    [
        (False, False, False, False),
        (True, False, True, True),
        (False, True, False, True),
        (True, True, True, False),
    ],
    ids=["input_gamma_only", "no_residual", "residual_only", "no_pre_norm_output"],
)
@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_optional_inputs(lib, dtype, bias, residual, beta, pre_norm):
    checks.check_layer_norm(
        lib, dtype, 6, 96, seed=3, bias=bias, residual=residual, beta=beta, pre_norm=pre_norm, epsilon=1e-5
    )


def test_layer_norm_large_mean(lib):
    """Inputs around 1000 with unit spread: the two-pass variance keeps the float32 error near the
    rounding of the mean (a one-pass E[x^2] - E[x]^2 would lose most digits)."""
    checks.check_layer_norm(
        lib, "float32", 4, 768, seed=4, bias=False, residual=False, mean=1000.0, atol=5e-4
    )


@pytest.mark.parametrize("hidden", [0, 8193])
def test_layer_norm_refuses_hidden_out_of_range(lib, hidden):
    assert (
        lib.call("emu_bias_residual_layer_norm", 0, None, None, None, None, None, 1e-5, 2, hidden, None, None)
        == 1
    )


# (rows, hidden): empty; one element; odd sizes (scalar path); vectors of 4; BERT's FFN width.
GELU_SHAPES = {"empty": (0, 8), "1x1": (1, 1), "3x5": (3, 5), "4x8": (4, 8), "64x3072": (64, 3072)}


@pytest.mark.parametrize("shape", GELU_SHAPES.values(), ids=GELU_SHAPES.keys())
@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_gelu(lib, dtype, shape):
    checks.check_bias_gelu(lib, dtype, *shape, seed=shape[1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_gelu_in_place_without_bias(lib, dtype):
    checks.check_bias_gelu(lib, dtype, 8, 64, seed=5, bias=False, in_place=True)


@pytest.mark.parametrize(("dtype", "offset"), [("float32", 4), ("float16", 2), ("bfloat16", 6)])
def test_bias_gelu_misaligned(lib, dtype, offset):
    """Pointers off 8/16-byte alignment: the launcher takes the one-element path."""
    checks.check_bias_gelu(lib, dtype, 5, 64, seed=6, offset=offset)


def test_bias_gelu_grid_stride(lib):
    """More vectors than the 4096 x 256 threads of the capped grid: threads loop."""
    checks.check_bias_gelu(lib, "float32", 1025, 4096, seed=7)
