"""The CUDA ops in ONNX Runtime (CUDA execution provider, libbytetx_ort_cuda.so) against the CPU ops
(libbytetx_ort.so, float32) on the same inputs.

The models take float32 inputs and Cast them to the dtype under test inside the graph (ONNX Runtime's
Python API has no bfloat16 arrays), so the CPU reference runs on the inputs rounded to that dtype.
Tolerance for fp16/bf16, after FlashAttention's tests: ``max|out - ref| <= 2 * max|round(ref) - ref|
+ atol`` with atol 2e-3 (fp16) and 1.6e-2 (bf16), i.e. twice the error of merely storing the exact
answer in that dtype, plus the rounding of the softmax weights; fp32 within 2e-5. Data movement
(RemovePadding, RebuildPadding) must be exact. NaN always fails.

Skipped without a GPU, or when onnxruntime has no CUDA provider or no CUDA library was built.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from fixtures.masks import make_mask
from fixtures.scripts import load_script
from onnx import TensorProto, helper

pytestmark = pytest.mark.gpu

DOMAIN = "com.bytetx"
DTYPES = {
    "float32": (TensorProto.FLOAT, np.float32, 0.0),
    "float16": (TensorProto.FLOAT16, np.float16, 2e-3),
    "bfloat16": (TensorProto.BFLOAT16, ml_dtypes.bfloat16, 1.6e-2),
}
FP32_ATOL = 2e-5


@pytest.fixture(scope="module")
def cuda_session():
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime has no CUDA execution provider (install onnxruntime-gpu)")
    library = load_script("kernel_resources").default_library()
    if library is None:
        pytest.skip("libbytetx_ort_cuda.so was not built")
    cache = {}

    def make(model: bytes):
        if model not in cache:
            options = ort.SessionOptions()
            options.register_custom_ops_library(str(library))
            try:
                session = ort.InferenceSession(model, options, providers=["CUDAExecutionProvider"])
            except Exception as error:  # noqa: BLE001 - no usable GPU behind the provider
                pytest.skip(f"no usable CUDA device: {error}")
            if "CUDAExecutionProvider" not in session.get_providers():
                pytest.skip("ONNX Runtime fell back to the CPU")
            cache[model] = session
        return cache[model]

    return make


@pytest.fixture(scope="module")
def cpu_session(ort_library):
    import onnxruntime as ort

    cache = {}

    def make(model: bytes):
        if model not in cache:
            options = ort.SessionOptions()
            options.register_custom_ops_library(ort_library)
            cache[model] = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        return cache[model]

    return make


def _model(nodes, inputs: dict[str, int], outputs: dict[str, int]) -> bytes:
    graph = helper.make_graph(
        nodes,
        "bytetx_cuda_test",
        [helper.make_tensor_value_info(n, t, None) for n, t in inputs.items()],
        [helper.make_tensor_value_info(n, t, None) for n, t in outputs.items()],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=10).SerializeToString()


def pipeline_model(dtype: int, num_heads: int, mask_type: int = TensorProto.INT64) -> bytes:
    """Cast -> RemovePadding -> FusedMHA -> RebuildPadding -> Cast, also returning the packed layout."""
    cast = helper.make_node
    nodes = [
        cast("Cast", ["qkv"], ["qkv_t"], to=dtype),
        cast("Cast", ["qkv_bias"], ["bias_t"], to=dtype),
        helper.make_node("RemovePadding", ["qkv_t", "attention_mask"], ["packed", "cu_seqlens", "token_offset"],
                         domain=DOMAIN),
        helper.make_node("FusedMHA", ["packed", "bias_t", "cu_seqlens", "token_offset"], ["context"],
                         domain=DOMAIN, num_heads=num_heads),
        helper.make_node("RebuildPadding", ["context", "token_offset"], ["padded"], domain=DOMAIN),
        helper.make_node("RebuildPadding", ["packed", "token_offset"], ["round_trip"], domain=DOMAIN),
        cast("Cast", ["padded"], ["output"], to=TensorProto.FLOAT),
        cast("Cast", ["round_trip"], ["qkv_back"], to=TensorProto.FLOAT),
    ]
    inputs = {"qkv": TensorProto.FLOAT, "qkv_bias": TensorProto.FLOAT, "attention_mask": mask_type}
    outputs = {"output": TensorProto.FLOAT, "qkv_back": TensorProto.FLOAT,
               "cu_seqlens": TensorProto.INT32, "token_offset": TensorProto.INT32}
    return _model(nodes, inputs, outputs)


def rounded(x: np.ndarray, numpy_dtype) -> np.ndarray:
    return x.astype(numpy_dtype).astype(np.float32)


def run_pipeline(cuda_session, cpu_session, dtype_name, batch, seq_len, num_heads, head_size, seed,
                 mask_type=TensorProto.INT64):
    onnx_dtype, numpy_dtype, atol = DTYPES[dtype_name]
    rng = np.random.default_rng(seed)
    hidden = num_heads * head_size
    qkv = rounded(rng.standard_normal((batch, seq_len, 3 * hidden)).astype(np.float32), numpy_dtype)
    bias = rounded(0.5 * rng.standard_normal(3 * hidden).astype(np.float32), numpy_dtype)
    # Rows cycling through full, empty, right-padded, left-padded and holes, none of them but the empty
    # one without tokens.
    mask = make_mask(batch, seq_len, "mixed", seed, min_length=1)
    if mask_type == TensorProto.INT32:
        mask = mask.astype(np.int32)
    feeds = {"qkv": qkv, "qkv_bias": bias, "attention_mask": mask}
    got = cuda_session(pipeline_model(onnx_dtype, num_heads, mask_type)).run(None, feeds)
    ref = cpu_session(pipeline_model(TensorProto.FLOAT, num_heads, mask_type)).run(None, feeds)
    return got, ref, numpy_dtype, atol, mask


def assert_close(out: np.ndarray, ref: np.ndarray, numpy_dtype, atol: float, mask: np.ndarray):
    assert not np.isnan(out).any(), "NaN in the CUDA output"
    if numpy_dtype is np.float32:
        bound = FP32_ATOL
    else:
        bound = 2 * float(np.max(np.abs(rounded(ref, numpy_dtype) - ref), initial=0.0)) + atol
    error = float(np.max(np.abs(out - ref), initial=0.0))
    assert error <= bound, f"max |out - ref| = {error:.3g} > {bound:.3g}"
    assert np.all(out[mask == 0] == 0), "padding must be exactly zero"


@pytest.mark.parametrize("dtype_name", list(DTYPES))
@pytest.mark.parametrize("head_size", [32, 64, 128])
# 128/129 straddle the short/tiled switch; 1, 97 and 300 are ragged on purpose; 600 has no 512 cap.
@pytest.mark.parametrize("seq_len", [1, 16, 97, 128, 129, 300, 600])
def test_pipeline_matches_cpu(cuda_session, cpu_session, dtype_name, head_size, seq_len):
    batch = 5 if seq_len <= 300 else 2
    got, ref, numpy_dtype, atol, mask = run_pipeline(
        cuda_session, cpu_session, dtype_name, batch, seq_len, 2, head_size, seed=seq_len + head_size
    )
    out, qkv_back, cu_seqlens, token_offset = got
    ref_out, ref_qkv_back, ref_cu_seqlens, ref_token_offset = ref
    np.testing.assert_array_equal(cu_seqlens, ref_cu_seqlens)
    np.testing.assert_array_equal(token_offset, ref_token_offset)
    np.testing.assert_array_equal(qkv_back, ref_qkv_back)
    assert_close(out, ref_out, numpy_dtype, atol, mask)


def test_int32_mask(cuda_session, cpu_session):
    got, ref, numpy_dtype, atol, mask = run_pipeline(
        cuda_session, cpu_session, "float16", 7, 40, 4, 64, seed=7, mask_type=TensorProto.INT32
    )
    for g, r in zip(got[1:], ref[1:]):
        np.testing.assert_array_equal(g, r)
    assert_close(got[0], ref[0], numpy_dtype, atol, mask)


def test_unsupported_head_size_is_a_clear_error(cuda_session):
    import onnxruntime as ort

    model = pipeline_model(TensorProto.FLOAT16, num_heads=2)
    feeds = {
        "qkv": np.zeros((1, 4, 3 * 80), np.float32),
        "qkv_bias": np.zeros(3 * 80, np.float32),
        "attention_mask": np.ones((1, 4), np.int64),
    }
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument, match="head sizes"):
        cuda_session(model).run(None, feeds)


def test_bad_mask_value_is_an_error(cuda_session):
    import onnxruntime as ort

    model = pipeline_model(TensorProto.FLOAT16, num_heads=1)
    feeds = {
        "qkv": np.zeros((1, 4, 3 * 32), np.float32),
        "qkv_bias": np.zeros(3 * 32, np.float32),
        "attention_mask": np.array([[1, 2, 0, 1]], np.int64),
    }
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument, match="only 0 or 1"):
        cuda_session(model).run(None, feeds)

