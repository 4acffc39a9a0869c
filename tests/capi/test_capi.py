"""The C ABI (plugins/capi/bytetx_capi.h) through bytetx.kernels on the CPU: every op against the NumPy
references (float32: atol 1e-5, rtol 1e-4; the layout exact), and every refusal with the op contract's
message, before any memory is touched."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from fixtures import reference
from fixtures.masks import make_mask

from bytetx import kernels

ATOL, RTOL = 1e-5, 1e-4


def ref(array: np.ndarray) -> kernels.TensorRef:
    assert array.flags.c_contiguous
    return kernels.TensorRef(array.ctypes.data, array.dtype.name, array.shape)


@pytest.fixture(scope="module")
def lib() -> kernels.Kernels:
    return kernels.load()


def remove_padding(lib, x, mask):
    batch, seq_len = mask.shape
    tokens = int(np.count_nonzero(mask))
    packed = np.empty((tokens, x.shape[2]), np.float32)
    cu_seqlens = np.empty(batch + 1, np.int32)
    token_offset = np.empty((batch, seq_len), np.int32)
    lib.remove_padding(kernels.CPU, ref(x), ref(mask), ref(packed), ref(cu_seqlens), ref(token_offset))
    return packed, cu_seqlens, token_offset


@pytest.mark.parametrize("kind", ["right", "left", "holes", "mixed"])
@pytest.mark.parametrize("mask_dtype", [np.int64, np.int32])
def test_pipeline_matches_the_references(lib, kind, mask_dtype):
    rng = np.random.default_rng(3)
    batch, seq_len, heads, head_size = 5, 37, 2, 24
    hidden = heads * head_size
    mask = make_mask(batch, seq_len, kind, seed=4, dtype=mask_dtype)
    qkv_padded = rng.standard_normal((batch, seq_len, 3 * hidden)).astype(np.float32)
    bias = rng.standard_normal(3 * hidden).astype(np.float32)

    packed, cu_seqlens, token_offset = remove_padding(lib, qkv_padded, mask)
    for got, want in zip((packed, cu_seqlens, token_offset), reference.remove_padding(qkv_padded, mask)):
        np.testing.assert_array_equal(got, want)

    context = np.empty((packed.shape[0], hidden), np.float32)
    lib.fused_mha(kernels.CPU, ref(packed), ref(bias), ref(cu_seqlens), ref(token_offset), heads, None, ref(context))
    np.testing.assert_allclose(context, reference.fused_mha(packed, bias, cu_seqlens, heads), atol=ATOL, rtol=RTOL)

    output = np.full((batch, seq_len, hidden), np.nan, np.float32)
    lib.rebuild_padding(kernels.CPU, ref(context), ref(token_offset), ref(output))
    np.testing.assert_array_equal(output, reference.rebuild_padding(context, token_offset))


def test_scale_and_threads(lib):
    rng = np.random.default_rng(5)
    mask = make_mask(3, 20, "right", seed=1)
    qkv_padded = rng.standard_normal((3, 20, 3 * 64)).astype(np.float32)
    bias = np.zeros(3 * 64, np.float32)
    packed, cu_seqlens, token_offset = remove_padding(lib, qkv_padded, mask)
    outputs = []
    for threads in (1, 3):
        lib.set_cpu_threads(threads)
        context = np.empty((packed.shape[0], 64), np.float32)
        lib.fused_mha(kernels.CPU, ref(packed), ref(bias), ref(cu_seqlens), ref(token_offset), 4, 0.3, ref(context))
        outputs.append(context)
    lib.set_cpu_threads(0)
    np.testing.assert_array_equal(outputs[0], outputs[1])  # a sequence's result never depends on scheduling
    np.testing.assert_allclose(outputs[0], reference.fused_mha(packed, bias, cu_seqlens, 4, scale=0.3),
                               atol=ATOL, rtol=RTOL)


X = np.zeros((2, 4, 8), np.float32)
MASK = np.array([[1, 1, 0, 1], [0, 1, 1, 1]], np.int64)


def _remove_padding_call(lib, x=X, mask=MASK, packed_rows=6, device=kernels.CPU):
    packed = np.zeros((packed_rows, 8), np.float32)
    lib.remove_padding(device, ref(x), ref(mask), ref(packed), ref(np.zeros(3, np.int32)),
                       ref(np.zeros((2, 4), np.int32)))


@pytest.mark.parametrize("kind", ["right", "holes"])
def test_fused_mha_relative_position_bias_matches_the_reference(lib, kind):
    rng = np.random.default_rng(5)
    batch, seq_len, heads, head_size, max_distance = 4, 150, 2, 32, 128
    mask = make_mask(batch, seq_len, kind, seed=6)
    _, cu_seqlens, token_offset = reference.remove_padding(np.zeros((batch, seq_len, 1), np.float32), mask)
    tokens = int(cu_seqlens[-1])
    qkv = rng.standard_normal((tokens, 3 * heads * head_size)).astype(np.float32)
    bias = rng.standard_normal(3 * heads * head_size).astype(np.float32)
    positions = (token_offset.reshape(-1)[:tokens] % seq_len).astype(np.int32)
    table = rng.standard_normal((32, heads)).astype(np.float32)
    context = np.empty((tokens, heads * head_size), np.float32)
    lib.fused_mha(kernels.CPU, ref(qkv), ref(bias), ref(cu_seqlens), ref(token_offset), heads, None, ref(context),
                  positions=ref(positions), relative_position_bias=ref(table),
                  relative_position_max_distance=max_distance)
    expected = reference.fused_mha(qkv, bias, cu_seqlens, heads, positions=positions, relative_position_bias=table,
                                   max_distance=max_distance)
    np.testing.assert_allclose(context, expected, atol=ATOL, rtol=RTOL)


def test_fused_mha_refuses_half_a_relative_position_bias(lib):
    with pytest.raises(kernels.InvalidKernelArgument, match="FusedMHA: input 'positions' is given without what reads it: "
                                                           "'relative_position_bias' \\(with which it goes together\\)"):
        lib.fused_mha(kernels.CPU, ref(np.zeros((6, 48), np.float32)), ref(np.zeros(48, np.float32)),
                      ref(np.array([0, 3, 6], np.int32)), ref(np.zeros((2, 4), np.int32)), 2, None,
                      ref(np.zeros((6, 16), np.float32)), positions=ref(np.zeros(6, np.int32)),
                      relative_position_max_distance=128)


def _fused_mha_call(lib, dtype=np.float32, bias_size=48, cu_seqlens=(0, 3, 6), num_heads=2):
    """T=6 tokens of B=2 sequences, H=16, through the CPU FusedMHA; each argument breaks one thing."""
    lib.fused_mha(kernels.CPU, ref(np.zeros((6, 48), dtype)), ref(np.zeros(bias_size, dtype)),
                  ref(np.array(cu_seqlens, np.int32)), ref(np.zeros((2, 4), np.int32)), num_heads, None,
                  ref(np.zeros((6, 16), dtype)))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda lib: _remove_padding_call(lib, x=X.reshape(8, 8)),
         "RemovePadding: input 'input' must have rank 3 ([B, S, H]), but its shape is [8, 8]"),
        (lambda lib: _remove_padding_call(lib, mask=MASK.astype(np.int32)[:, :3].copy()),
         "RemovePadding: input 'attention_mask' must have shape [B, S] = [2, 4]"),
        (lambda lib: _remove_padding_call(lib, packed_rows=5),
         "RemovePadding: output 'packed' must have shape [T, H] = [6, 8], but its shape is [5, 8]"),
        (lambda lib: _remove_padding_call(lib, device=7), "device must be BYTETX_CPU (0) or BYTETX_CUDA (1)"),
        (lambda lib: _fused_mha_call(lib, bias_size=47), "FusedMHA: input 'qkv_bias' must have shape [3 * H] = [48]"),
        (lambda lib: _fused_mha_call(lib, cu_seqlens=[0, 3, 7]),
         "FusedMHA: input 'cu_seqlens' must end at the number of packed tokens T=6, but cu_seqlens[2]=7"),
        (lambda lib: _fused_mha_call(lib, dtype=np.float16), "FusedMHA: input 'qkv' must be float32, but it is float16"),
        (lambda lib: _fused_mha_call(lib, num_heads=0), "FusedMHA: attribute 'num_heads' must be >= 1, but it is 0"),
        (lambda lib: lib.rebuild_padding(kernels.CPU, ref(np.zeros((2, 8), np.float32)),
                                         ref(np.array([[0, 0], [1, 2]], np.int32)), ref(np.zeros((2, 2, 8), np.float32))),
         "RebuildPadding: input 'token_offset' entries t < T must be distinct"),
        (lambda lib: lib.rebuild_padding(kernels.CPU, ref(np.zeros((2, 8), np.float32)),
                                         ref(np.array([[0, 1], [2, 3]], np.int32)), ref(np.zeros((2, 2, 9), np.float32))),
         "RebuildPadding: output 'output' must have shape [B, S, H] = [2, 2, 8], but its shape is [2, 2, 9]"),
    ],
    ids=["input_rank", "mask_shape", "packed_rows", "device", "bias_width", "cu_seqlens_end", "fp16_on_cpu",
         "num_heads", "token_offset_repeated", "output_shape"],
)
def test_contract_violations_are_refused_with_the_contracts_message(lib, call, message):
    with pytest.raises(kernels.InvalidKernelArgument) as error:
        call(lib)
    assert message in str(error.value)


def test_null_data_and_bad_ranks_are_refused_before_any_access(lib):
    tensor = kernels.TensorRef(0, "float32", (2, 4, 8))  # NULL with elements
    with pytest.raises(kernels.InvalidKernelArgument, match="a tensor with elements has data NULL"):
        lib.remove_padding(kernels.CPU, tensor, ref(MASK), ref(np.zeros((6, 8), np.float32)),
                           ref(np.zeros(3, np.int32)), ref(np.zeros((2, 4), np.int32)))
    with pytest.raises(kernels.InvalidKernelArgument, match="more than 4 dimensions"):
        kernels.TensorRef(X.ctypes.data, "float32", (1, 1, 1, 2, 4, 8)).as_struct()
    with pytest.raises(kernels.InvalidKernelArgument, match="dtype float64"):
        kernels.TensorRef(X.ctypes.data, "float64", (2, 4, 8)).as_struct()


def test_empty_batch_and_all_padding(lib):
    for mask in (np.zeros((0, 5), np.int64), np.zeros((3, 5), np.int64)):
        x = np.zeros((*mask.shape, 8), np.float32)
        packed, cu_seqlens, token_offset = remove_padding(lib, x, mask)
        assert packed.shape == (0, 8) and not cu_seqlens.any()
        output = np.full((*mask.shape, 8), np.nan, np.float32)
        lib.rebuild_padding(kernels.CPU, ref(packed), ref(token_offset), ref(output))
        assert not output.any()


def test_library_identity(lib):
    raw = ctypes.CDLL(lib._lib._name)
    raw.bytetx_capi_version.restype = ctypes.c_int32
    assert raw.bytetx_capi_version() == kernels.CAPI_VERSION
    assert isinstance(lib.has_cuda, bool)
