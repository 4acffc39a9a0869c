"""The TensorRT plugins of plugins/trt/ driven through TensorRT's interfaces by a stand-in host, with
the CUDA kernels under the host emulation: no TensorRT runtime and no GPU needed, only TensorRT's
headers (``TENSORRT_ROOT`` or the standard install places; skipped without them).

What this establishes: registration (static, then handed to ``getCreators``), the creators' fields as
the ONNX parser passes them, the three capabilities, output types and shapes (the data-dependent ``T``
declared through a size tensor with its bounds), the formats query, configure, enqueue against NumPy
(bit for bit for data movement, FlashAttention's rule for attention), serialization round trips, and
that every failure returns nonzero and reaches TensorRT's logger. What it does not: TensorRT's own
handling of the size tensor (allocation, the device-to-host read of ``T``), which needs TensorRT and a
GPU (``test_trt_engine.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
import trt_host
from emulation import checks, harness
from fixtures import reference
from fixtures.masks import make_mask
from trt_host import BF16, CHW32, FLOAT, HALF, HWC8, INT8, INT32, INT64, LINEAR, TRT_TYPES, Tensor

INCLUDE = trt_host.tensorrt_include_dir()
pytestmark = [
    pytest.mark.skipif(not harness.have_compiler(), reason="no C++ compiler for the CUDA emulation"),
    pytest.mark.skipif(INCLUDE is None, reason="TensorRT headers not found: set TENSORRT_ROOT"),
]

NAMESPACE = "com.bytetx"
DTYPES = ["float32", "float16", "bfloat16"]
FLOAT_TYPES = [FLOAT, HALF, BF16]


@pytest.fixture(scope="module")
def host() -> trt_host.Host:
    host = trt_host.load(INCLUDE)
    host.take_log()
    return host


def expect_log(host: trt_host.Host, *parts: str) -> str:
    log = host.take_log()
    for part in parts:
        assert part in log, f"expected {part!r} in the log, got {log!r}"
    return log


# ---------------------------------------------------------------------------------------------------
# Registration and creators
# ---------------------------------------------------------------------------------------------------


def test_static_registration_is_handed_to_get_creators(host):
    loaded = host.registry_after_load
    for name in ("RemovePadding", "FusedMHA", "RebuildPadding"):
        assert f"register {NAMESPACE}::{name}/1 (namespace argument '{NAMESPACE}')" in loaded
    assert loaded.endswith(
        f"registered: {NAMESPACE}::RemovePadding/1 {NAMESPACE}::FusedMHA/1 {NAMESPACE}::RebuildPadding/1"
    )
    host.creators()  # getCreators, as IPluginRegistry::loadLibrary calls it
    state = host.registry_state()
    for name in ("RemovePadding", "FusedMHA", "RebuildPadding"):
        assert f"deregister {NAMESPACE}::{name}/1" in state
    assert state.endswith("registered:"), state


def test_creators_carry_the_onnx_attributes_as_fields(host):
    assert host.creators() == [
        f"PLUGIN CREATOR_V3ONE|RemovePadding|1|{NAMESPACE}|",
        f"PLUGIN CREATOR_V3ONE|FusedMHA|1|{NAMESPACE}|num_heads:i32,scale:f32,relative_position_max_distance:i32,"
        "rotary_frequencies:f32,sliding_window:i32,pos_att_type:str,position_buckets:i32,max_relative_positions:i32",
        f"PLUGIN CREATOR_V3ONE|RebuildPadding|1|{NAMESPACE}|",
    ]


@pytest.mark.parametrize(
    "name, fields, outputs",
    [("RemovePadding", "", 4), ("FusedMHA", "num_heads:i32:2", 1), ("RebuildPadding", "", 1)],
)
def test_plugin_capabilities_and_copies(host, name, fields, outputs):
    plugin = host.create(name, fields)
    expected = (
        f"PLUGIN,PLUGIN_V3ONE_CORE,PLUGIN_V3ONE_BUILD,PLUGIN_V3ONE_RUNTIME|{name}|1|{NAMESPACE}|{outputs}"
    )
    assert plugin.describe() == expected
    assert plugin.clone().describe() == expected
    assert plugin.attach_to_context().describe() == expected
    assert host.create(name, fields, runtime=True).describe() == expected


@pytest.mark.parametrize(
    "fields, message",
    [
        ("", "attribute 'num_heads' (int) is required"),
        ("num_heads:i32:0", "attribute 'num_heads' must be >= 1, but it is 0"),
        ("num_heads:f32:4", "field 'num_heads' must be an integer"),
        ("num_heads:i32:4;scale:i32:1", "field 'scale' must be a float"),
        ("num_heads:i32:4;dropout:f32:0.1", "unknown field 'dropout' (the fields are num_heads, scale, relative_position_max_distance, "
         "rotary_frequencies, sliding_window, pos_att_type, position_buckets and max_relative_positions)"),
        ("num_heads:i32:2;pos_att_type:str:c2p|p2c", "field 'pos_att_type' needs the fields 'position_buckets' and "
         "'max_relative_positions'"),
        ("num_heads:i32:2;position_buckets:i32:256;max_relative_positions:i32:512",
         "fields 'position_buckets' and 'max_relative_positions' need the field 'pos_att_type' naming the tables"),
        ("num_heads:i32:2;pos_att_type:str:c2p|c2p;position_buckets:i32:256;max_relative_positions:i32:512",
         "field 'pos_att_type' must name the disentangled terms: 'c2p' (the input position_key), 'p2c' "
         "(position_query) or both, joined by '|', but it is 'c2p|c2p'"),
        ("num_heads:i32:2;pos_att_type:str:p2p;position_buckets:i32:256;max_relative_positions:i32:512",
         "field 'pos_att_type' must name the disentangled terms"),
        ("num_heads:i32:2;pos_att_type:i32:1;position_buckets:i32:256;max_relative_positions:i32:512",
         "field 'pos_att_type' must be a string"),
        ("num_heads:i32:2;pos_att_type:str:c2p;position_buckets:i32:3;max_relative_positions:i32:512",
         "attribute 'position_buckets' must be 0 (no buckets) or even"),
        ("num_heads:str:12", "field 'num_heads' must hold one value, but it has 2"),
    ],
)
def test_fused_mha_rejects_bad_fields(host, fields, message):
    assert host.create("FusedMHA", fields) is None
    expect_log(host, f"bytetx FusedMHA: {message}")


@pytest.mark.parametrize(
    "fields", ["num_heads:i32:12", "num_heads:i64:12", "num_heads:i8:12;scale:f64:0.125"]
)
def test_fused_mha_accepts_the_parser_and_numpy_field_types(host, fields):
    assert host.create("FusedMHA", fields) is not None
    assert host.take_log() == ""


@pytest.mark.parametrize("name", ["RemovePadding", "RebuildPadding"])
def test_plugins_without_attributes_reject_fields(host, name):
    assert host.create(name, "num_heads:i32:2") is None
    expect_log(host, f"bytetx {name}: the plugin has no fields, but 'num_heads' was given")


@pytest.mark.parametrize(
    "name, fields, serialized",
    [
        ("FusedMHA", "num_heads:i32:12", "num_heads:i32:1"),
        ("FusedMHA", "num_heads:i32:12;scale:f32:0.3", "num_heads:i32:1,scale:f32:1"),
        (
            "FusedMHA",
            "num_heads:i32:12;relative_position_max_distance:i32:128",
            "num_heads:i32:1,relative_position_max_distance:i32:1",
        ),
        (
            "FusedMHA",
            "num_heads:i32:2;rotary_frequencies:f32:1,0.5,0.25;sliding_window:i32:8",
            "num_heads:i32:1,rotary_frequencies:f32:3,sliding_window:i32:1",
        ),
        (
            "FusedMHA",
            "num_heads:i32:2;pos_att_type:str:p2c|c2p;position_buckets:i32:256;max_relative_positions:i32:512",
            "num_heads:i32:1,pos_att_type:str:7,position_buckets:i32:1,max_relative_positions:i32:1",
        ),
        (
            "FusedMHA",
            "num_heads:i32:2;pos_att_type:str:p2c;position_buckets:i32:0;max_relative_positions:i32:64",
            "num_heads:i32:1,pos_att_type:str:3,position_buckets:i32:1,max_relative_positions:i32:1",
        ),
        ("RemovePadding", "", ""),
        ("RebuildPadding", "", ""),
    ],
)
def test_serialization_round_trip(host, name, fields, serialized):
    copy, text = host.create(name, fields).serialize_roundtrip()
    assert text == serialized
    assert copy is not None and copy.describe().split("|")[1] == name


# ---------------------------------------------------------------------------------------------------
# Build: types, shapes, formats, configure
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOAT_TYPES)
@pytest.mark.parametrize("mask", [INT32, INT64])
def test_remove_padding_output_types(host, dtype, mask):
    assert host.create("RemovePadding").output_types([dtype, mask], 4) == (0, [dtype, INT32, INT32, INT64])


@pytest.mark.parametrize("dtype", FLOAT_TYPES)
def test_fused_mha_and_rebuild_padding_output_types(host, dtype):
    assert host.create("FusedMHA", "num_heads:i32:2").output_types([dtype, dtype, INT32, INT32], 1) == (
        0,
        [dtype],
    )
    assert host.create("RebuildPadding").output_types([dtype, INT32], 1) == (0, [dtype])


def test_output_types_refuse_non_float_inputs(host):
    status, _ = host.create("RemovePadding").output_types([INT8, INT64], 4)
    assert status != 0
    expect_log(
        host, "bytetx RemovePadding: input 'input' must be float32, float16 or bfloat16, but it is int8"
    )


def test_remove_padding_declares_tokens_as_a_size_tensor(host):
    batch, seq_len, hidden = 4, 16, 64
    runtime = [[True, True, False], [True, True]]
    status, outputs = host.create("RemovePadding").output_shapes(
        [[batch, seq_len, hidden], [batch, seq_len]], 4, runtime
    )
    assert status == 0
    packed, cu_seqlens, token_offset, num_tokens = outputs
    assert packed["dims"] == (-1, hidden) and packed["kinds"] == ("size", "const")
    # The size tensor is output 3; TensorRT tunes for ceil(B * S / 2) tokens and allocates for B * S.
    assert packed["size_tensor"] == (3, batch * seq_len // 2, batch * seq_len)
    assert cu_seqlens["dims"] == (batch + 1,) and cu_seqlens["kinds"] == ("runtime",)
    assert token_offset["dims"] == (batch, seq_len) and token_offset["kinds"] == ("runtime", "runtime")
    assert num_tokens["dims"] == ()


@pytest.mark.parametrize(
    "dims, message",
    [
        ([[4, 16], [4, 16]], "input 'input' must have rank 3 ([B, S, H]), but its shape is [4, 16]"),
        ([[4, 16, 64], [4, 16, 1]], "input 'attention_mask' must have rank 2 ([B, S]), but its shape is [4, 16, 1]"),
        ([[4, 16, 64], [4, 15]], "must have shape [B, S] = [4, 16] (B, S from 'input'), but its shape is [4, 15]"),
    ],
)
def test_remove_padding_shape_errors(host, dims, message):
    status, _ = host.create("RemovePadding").output_shapes(dims, 4)
    assert status != 0
    expect_log(host, message)


def test_fused_mha_output_shape(host):
    status, outputs = host.create("FusedMHA", "num_heads:i32:2").output_shapes(
        [[37, 192], [192], [5], [4, 16]], 1, [[True, False], [False], [True], [True, True]]
    )
    assert status == 0
    assert outputs[0]["dims"] == (37, 64) and outputs[0]["kinds"] == ("runtime", "const")


@pytest.mark.parametrize(
    "heads, width, message",
    [
        (3, 192, "input 'qkv' must have width 3 * H with H a multiple of num_heads=3, but its shape is"),
        (4, 192, "head sizes H / num_heads of 32, 64 or 128, but it is 64 / 4 = 16"),
        (2, 200, "width 3 * H"),
    ],
)
def test_fused_mha_refuses_unsupported_head_sizes_at_build_time(host, heads, width, message):
    plugin = host.create("FusedMHA", f"num_heads:i32:{heads}")
    status, _ = plugin.output_shapes([[37, width], [width], [5], [4, 16]], 1)
    assert status != 0
    expect_log(host, message)
    inputs = [
        Tensor(FLOAT, (-1, width)),
        Tensor(FLOAT, (width,)),
        Tensor(INT32, (-1,)),
        Tensor(INT32, (-1, -1)),
    ]
    assert plugin.configure(inputs, 1) != 0
    expect_log(host, message)


def test_fused_mha_width_known_only_at_run_time_is_checked_at_enqueue(host):
    status, outputs = host.create("FusedMHA", "num_heads:i32:4").output_shapes(
        [[37, 192], [192], [5], [4, 16]], 1, [[True, True], [True], [True], [True, True]]
    )
    assert status == 0 and outputs[0]["kinds"] == ("runtime", "runtime")


def test_rebuild_padding_output_shape(host):
    status, outputs = host.create("RebuildPadding").output_shapes(
        [[37, 64], [4, 16]], 1, [[True, False], [True, True]]
    )
    assert status == 0
    assert outputs[0]["dims"] == (4, 16, 64) and outputs[0]["kinds"] == ("runtime", "runtime", "const")


def _io_count(plugin, num_inputs):
    return num_inputs + int(plugin.describe().rsplit("|", 1)[1])


def _formats_accepted(plugin, pos, num_inputs, prefix, candidates, fmt=LINEAR):
    """The candidate types supportsFormatCombination accepts at ``pos`` after ``prefix`` (the types
    already chosen at positions 0 .. pos - 1), in format ``fmt``."""
    rest = _io_count(plugin, num_inputs) - len(prefix) - 1
    accepted = []
    for candidate in candidates:
        types = [*prefix, candidate] + [INT8] * rest
        formats = [LINEAR] * len(prefix) + [fmt] + [LINEAR] * rest
        if plugin.supports(pos, num_inputs, types, formats):
            accepted.append(candidate)
    return accepted


ALL_TYPES = [FLOAT, HALF, INT8, INT32, BF16, INT64]


@pytest.mark.parametrize("dtype", FLOAT_TYPES)
def test_remove_padding_formats(host, dtype):
    plugin = host.create("RemovePadding")
    assert _formats_accepted(plugin, 0, 2, [], ALL_TYPES) == FLOAT_TYPES
    assert _formats_accepted(plugin, 0, 2, [], [dtype], fmt=HWC8) == []
    assert _formats_accepted(plugin, 1, 2, [dtype], ALL_TYPES) == [INT32, INT64]
    assert _formats_accepted(plugin, 2, 2, [dtype, INT64], ALL_TYPES) == [dtype]
    assert _formats_accepted(plugin, 3, 2, [dtype, INT64, dtype], ALL_TYPES) == [INT32]
    assert _formats_accepted(plugin, 4, 2, [dtype, INT64, dtype, INT32], ALL_TYPES) == [INT32]
    assert _formats_accepted(plugin, 5, 2, [dtype, INT64, dtype, INT32, INT32], ALL_TYPES) == [INT64]
    assert _formats_accepted(plugin, 5, 2, [dtype, INT64, dtype, INT32, INT32], [INT64], fmt=CHW32) == []


@pytest.mark.parametrize("dtype", FLOAT_TYPES)
def test_fused_mha_formats(host, dtype):
    plugin = host.create("FusedMHA", "num_heads:i32:2")
    assert _formats_accepted(plugin, 0, 4, [], ALL_TYPES) == FLOAT_TYPES
    assert _formats_accepted(plugin, 1, 4, [dtype], ALL_TYPES) == [dtype]
    assert _formats_accepted(plugin, 2, 4, [dtype, dtype], ALL_TYPES) == [INT32]
    assert _formats_accepted(plugin, 3, 4, [dtype, dtype, INT32], ALL_TYPES) == [INT32]
    assert _formats_accepted(plugin, 4, 4, [dtype, dtype, INT32, INT32], ALL_TYPES) == [dtype]


@pytest.mark.parametrize("dtype", FLOAT_TYPES)
def test_rebuild_padding_formats(host, dtype):
    plugin = host.create("RebuildPadding")
    assert _formats_accepted(plugin, 0, 2, [], ALL_TYPES) == FLOAT_TYPES
    assert _formats_accepted(plugin, 1, 2, [dtype], ALL_TYPES) == [INT32]
    assert _formats_accepted(plugin, 2, 2, [dtype, INT32], ALL_TYPES) == [dtype]


def test_configure_checks_ranks_and_bias_width(host):
    remove = host.create("RemovePadding")
    assert remove.configure([Tensor(HALF, (-1, -1, 64)), Tensor(INT64, (-1, -1))], 4) == 0
    assert remove.configure([Tensor(HALF, (-1, -1, 64)), Tensor(INT64, (-1,))], 4) != 0
    expect_log(host, "input 'attention_mask' must have rank 2 ([B, S])")
    assert remove.configure([Tensor(HALF, (2, -1, 64)), Tensor(INT64, (3, -1))], 4) != 0
    expect_log(host, "input 'attention_mask' must have shape [B, S] = [2, ?] (B, S from 'input'), but its shape is [3, ?]")
    mha = host.create("FusedMHA", "num_heads:i32:2")
    good = [Tensor(HALF, (-1, 192)), Tensor(HALF, (192,)), Tensor(INT32, (-1,)), Tensor(INT32, (-1, -1))]
    assert mha.configure(good, 1) == 0
    assert mha.configure([good[0], Tensor(HALF, (96,)), *good[2:]], 1) != 0
    expect_log(host, "input 'qkv_bias' must have shape [3 * H] = [192] (the width of 'qkv'), but its shape is [96]")
    assert (
        host.create("RebuildPadding").configure([Tensor(HALF, (-1, 64, 1)), Tensor(INT32, (-1, -1))], 1) != 0
    )
    expect_log(host, "input 'packed' must have rank 2 ([T, H])")


# ---------------------------------------------------------------------------------------------------
# Runtime: enqueue against NumPy, as TensorRT runs the three plugins
# ---------------------------------------------------------------------------------------------------


def packed_layout(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cu_seqlens [B + 1] and token_offset [B, S] of docs/ops.md."""
    _, cu_seqlens, token_offset = reference.remove_padding(np.zeros((*mask.shape, 1), np.float32), mask)
    return cu_seqlens, token_offset


def run_remove_padding(host, x: np.ndarray, mask: np.ndarray, dtype: str):
    """RemovePadding as TensorRT runs it: outputs allocated for the upper bound B * S rows; returns the
    packed rows, cu_seqlens, token_offset and num_tokens."""
    batch, seq_len, hidden = x.shape
    mask_type = INT32 if mask.dtype == np.int32 else INT64
    outputs = [
        Tensor(
            TRT_TYPES[dtype],
            (-1, hidden),
            trt_host.empty_buffer("packed", (batch * seq_len, hidden), x.dtype),
        ),
        Tensor(INT32, (batch + 1,), trt_host.empty_buffer("cu_seqlens", (batch + 1,), np.int32)),
        Tensor(INT32, (batch, seq_len), trt_host.empty_buffer("token_offset", (batch, seq_len), np.int32)),
        Tensor(INT64, (), trt_host.empty_buffer("num_tokens", (1,), np.int64)),
    ]
    inputs = [
        Tensor(TRT_TYPES[dtype], x.shape, trt_host.buffer_of("input", x)),
        Tensor(mask_type, mask.shape, trt_host.buffer_of("attention_mask", mask)),
    ]
    status = host.create("RemovePadding").enqueue(inputs, outputs)
    assert status == 0, host.take_log()
    return (
        outputs[0].buffer.read(x.dtype, (batch * seq_len, hidden)),
        outputs[1].buffer.read(np.int32, (batch + 1,)),
        outputs[2].buffer.read(np.int32, (batch, seq_len)),
        int(outputs[3].buffer.read(np.int64, (1,))[0]),
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask_dtype", [np.int32, np.int64])
@pytest.mark.parametrize(
    "batch, seq_len, hidden, kind",
    [(3, 17, 64, "right"), (5, 9, 40, "holes"), (2, 4, 8, "empty"), (1, 1, 2, "full")],
)
def test_remove_padding_enqueue(host, dtype, mask_dtype, batch, seq_len, hidden, kind):
    rng = np.random.default_rng(batch * 100 + seq_len)
    mask = make_mask(batch, seq_len, kind, rng).astype(mask_dtype)
    x = rng.standard_normal((batch, seq_len, hidden)).astype(checks.np_dtype(dtype))
    packed, cu, offsets, num_tokens = run_remove_padding(host, x, mask, dtype)
    cu_ref, offsets_ref = packed_layout(mask)
    tokens = int(mask.sum())
    assert num_tokens == tokens
    harness.assert_bits_equal(cu, cu_ref, "cu_seqlens")
    harness.assert_bits_equal(offsets, offsets_ref, "token_offset")
    harness.assert_bits_equal(packed[:tokens], x.reshape(-1, hidden)[mask.reshape(-1) != 0], "packed rows")
    harness.assert_bits_equal(packed[tokens:], np.zeros_like(packed[tokens:]), "rows past T (zero)")


def test_remove_padding_empty_batch(host):
    x = np.zeros((0, 7, 16), np.float32)
    _, cu, _, num_tokens = run_remove_padding(host, x, np.zeros((0, 7), np.int64), "float32")
    assert num_tokens == 0 and cu.tolist() == [0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["right", "holes"])
def test_rebuild_padding_enqueue(host, dtype, kind):
    batch, seq_len, hidden = 4, 13, 48
    rng = np.random.default_rng(7)
    mask = make_mask(batch, seq_len, kind, rng)
    _, offsets = packed_layout(mask)
    tokens = int(mask.sum())
    packed = rng.standard_normal((tokens, hidden)).astype(checks.np_dtype(dtype))
    out = Tensor(
        TRT_TYPES[dtype],
        (batch, seq_len, hidden),
        trt_host.empty_buffer("output", (batch, seq_len, hidden), packed.dtype),
    )
    inputs = [
        Tensor(TRT_TYPES[dtype], packed.shape, trt_host.buffer_of("packed", packed)),
        Tensor(INT32, offsets.shape, trt_host.buffer_of("token_offset", offsets)),
    ]
    assert host.create("RebuildPadding").enqueue(inputs, [out]) == 0, host.take_log()
    expected = np.zeros((batch * seq_len, hidden), packed.dtype)
    expected[mask.reshape(-1) != 0] = packed
    harness.assert_bits_equal(
        out.buffer.read(packed.dtype, (batch, seq_len, hidden)),
        expected.reshape(batch, seq_len, hidden),
        "padded output",
    )


def run_fused_mha(host, fields, qkv, bias, cu, seq_len, dtype, batch=None, positions=None, table=None,
                  position_tables=()):
    """FusedMHA's enqueue; with ``positions`` and ``table``, its six inputs; ``position_tables`` are
    (name, rows) of the disentangled terms' tables, after positions."""
    tokens, width = qkv.shape
    batch = len(cu) - 1 if batch is None else batch
    out = Tensor(
        TRT_TYPES[dtype],
        (tokens, width // 3),
        trt_host.empty_buffer("context", (tokens, width // 3), qkv.dtype),
    )
    inputs = [
        Tensor(TRT_TYPES[dtype], qkv.shape, trt_host.buffer_of("qkv", qkv)),
        Tensor(TRT_TYPES[dtype], bias.shape, trt_host.buffer_of("qkv_bias", bias)),
        Tensor(INT32, cu.shape, trt_host.buffer_of("cu_seqlens", cu)),
        Tensor(INT32, (batch, seq_len), trt_host.empty_buffer("token_offset", (batch, seq_len), np.int32)),
    ]
    if positions is not None:
        inputs.append(Tensor(INT32, positions.shape, trt_host.buffer_of("positions", positions)))
    if table is not None:
        inputs.append(Tensor(TRT_TYPES[dtype], table.shape, trt_host.buffer_of("relative_position_bias", table)))
    for name, rows in position_tables:
        inputs.append(Tensor(TRT_TYPES[dtype], rows.shape, trt_host.buffer_of(name, rows)))
    status = host.create("FusedMHA", fields).enqueue(inputs, [out])
    return status, out.buffer.read(qkv.dtype, (tokens, width // 3))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("heads, head_size, scale", [(2, 32, None), (1, 64, 0.3), (2, 128, None)])
def test_fused_mha_enqueue(host, dtype, heads, head_size, scale):
    lengths, seq_len = (19, 1, 0, 7), 23
    hidden = heads * head_size
    rng = np.random.default_rng(heads * head_size)
    dt = checks.np_dtype(dtype)
    tokens = sum(lengths)
    qkv = rng.standard_normal((tokens, 3 * hidden)).astype(dt)
    bias = (0.1 * rng.standard_normal(3 * hidden)).astype(dt)
    cu = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    fields = f"num_heads:i32:{heads}" + (f";scale:f32:{scale}" if scale is not None else "")
    status, out = run_fused_mha(host, fields, qkv, bias, cu, seq_len, dtype)
    assert status == 0, host.take_log()
    used_scale = scale if scale is not None else 1 / np.sqrt(head_size)
    ref = reference.fused_mha(qkv, bias, cu, heads, np.float32(used_scale))
    if dtype == "float32":
        harness.assert_close(out, ref, 2e-5, 1e-4, "context")
    else:
        ref_lowp = reference.fused_mha(qkv, bias, cu, heads, np.float32(used_scale), dt)
        harness.assert_close_lowp(out, ref, ref_lowp, checks.LOWP_ATOL[dtype], "context")


def ragged_positioned_inputs(rng, dtype, lengths, hidden):
    """qkv, qkv_bias, cu_seqlens and positions of ragged sequences, each sequence's positions starting
    where its left padding ends."""
    dt = checks.np_dtype(dtype)
    qkv = rng.standard_normal((sum(lengths), 3 * hidden)).astype(dt)
    bias = (0.1 * rng.standard_normal(3 * hidden)).astype(dt)
    cu = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    positions = np.concatenate([np.arange(length) + rng.integers(0, 40) for length in lengths]).astype(np.int32)
    return qkv, bias, cu, positions


def assert_matches_reference(out, dtype, qkv, bias, cu, heads, scale, features):
    ref = reference.fused_mha(qkv, bias, cu, heads, scale, **features)
    if dtype == "float32":
        harness.assert_close(out, ref, 2e-5, 1e-4, "context")
    else:
        ref_lowp = reference.fused_mha(qkv, bias, cu, heads, scale, checks.np_dtype(dtype), **features)
        harness.assert_close_lowp(out, ref, ref_lowp, checks.LOWP_ATOL[dtype], "context")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("heads, head_size, max_distance", [(2, 32, 128), (1, 64, 20)])
def test_fused_mha_enqueue_with_a_relative_position_bias(host, dtype, heads, head_size, max_distance):
    # Sequences beyond the short kernel's 64 keys reach the log buckets and the max distance.
    lengths, seq_len = (19, 1, 0, 150), 150
    rng = np.random.default_rng(heads * head_size + 1)
    qkv, bias, cu, positions = ragged_positioned_inputs(rng, dtype, lengths, heads * head_size)
    table = (2.0 * rng.standard_normal((32, heads))).astype(checks.np_dtype(dtype))
    fields = f"num_heads:i32:{heads};relative_position_max_distance:i32:{max_distance}"
    status, out = run_fused_mha(host, fields, qkv, bias, cu, seq_len, dtype, positions=positions, table=table)
    assert status == 0, host.take_log()
    scale = np.float32(1 / np.sqrt(head_size))
    biased = {"positions": positions, "relative_position_bias": table.astype(np.float32), "max_distance": max_distance}
    assert_matches_reference(out, dtype, qkv, bias, cu, heads, scale, biased)
    unbiased = reference.fused_mha(qkv, bias, cu, heads, scale)
    assert np.abs(out.astype(np.float32) - unbiased).max() > 0.1, "the bias changed nothing"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_bias", [False, True])
def test_fused_mha_enqueue_with_rotary_embeddings_and_a_sliding_window(host, dtype, with_bias):
    # Past the short kernel's keys, with a window shorter than the sequences: whole key tiles masked.
    lengths, seq_len, heads, head_size, window = (19, 1, 0, 150), 150, 2, 32, 20
    rng = np.random.default_rng(7)
    dt = checks.np_dtype(dtype)
    qkv, bias, cu, positions = ragged_positioned_inputs(rng, dtype, lengths, heads * head_size)
    frequencies = reference.rotary_frequencies(head_size, 10000.0)
    fields = (f"num_heads:i32:{heads};rotary_frequencies:f32:{','.join(repr(float(f)) for f in frequencies)};"
              f"sliding_window:i32:{window}")
    features = {"positions": positions, "rotary_frequencies": frequencies, "sliding_window": window}
    table = None
    if with_bias:
        table = (2.0 * rng.standard_normal((32, heads))).astype(dt)
        fields += ";relative_position_max_distance:i32:128"
        features.update(relative_position_bias=table.astype(np.float32), max_distance=128)
    status, out = run_fused_mha(host, fields, qkv, bias, cu, seq_len, dtype, positions=positions, table=table)
    assert status == 0, host.take_log()
    assert_matches_reference(out, dtype, qkv, bias, cu, heads, np.float32(1 / np.sqrt(head_size)), features)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "terms, buckets, max_positions",
    [("c2p|p2c", 32, 128), ("c2p", 32, 128), ("p2c", 32, 128), ("p2c|c2p", 0, 24)],
)
def test_fused_mha_enqueue_with_disentangled_terms(host, dtype, terms, buckets, max_positions):
    # Lengths past the buckets' exact distances and past the short kernel's keys; the tables the
    # field names, in the op's order (position_key before position_query) whatever the field's order.
    lengths, seq_len, heads, head_size = (19, 1, 0, 150), 150, 2, 32
    hidden = heads * head_size
    span = buckets if buckets > 0 else max_positions  # DeBERTa's pos_ebd_size
    rng = np.random.default_rng(11)
    dt = checks.np_dtype(dtype)
    qkv, bias, cu, positions = ragged_positioned_inputs(rng, dtype, lengths, hidden)
    tables = {name: (0.5 * rng.standard_normal((2 * span, hidden))).astype(dt)
              for term, name in (("c2p", "position_key"), ("p2c", "position_query")) if term in terms.split("|")}
    scale = np.float32(1 / np.sqrt(head_size * (1 + len(tables))))
    fields = (f"num_heads:i32:{heads};scale:f32:{scale};pos_att_type:str:{terms};position_buckets:i32:{buckets};"
              f"max_relative_positions:i32:{max_positions}")
    status, out = run_fused_mha(host, fields, qkv, bias, cu, seq_len, dtype, positions=positions,
                                position_tables=list(tables.items()))
    assert status == 0, host.take_log()
    features = {"positions": positions, "position_buckets": buckets, "max_relative_positions": max_positions,
                **{name: rows.astype(np.float32) for name, rows in tables.items()}}
    assert_matches_reference(out, dtype, qkv, bias, cu, heads, scale, features)
    content_only = reference.fused_mha(qkv, bias, cu, heads, scale)
    assert np.abs(out.astype(np.float32) - content_only).max() > 0.05, "the terms changed nothing"


@pytest.mark.parametrize(
    "terms, inputs, message",
    [
        ("c2p|p2c", 6, "the plugin takes 7 inputs and gives 1 outputs, but the layer has 6 inputs and 1 outputs"),
        ("c2p", 7, "the plugin takes 6 inputs and gives 1 outputs, but the layer has 7 inputs and 1 outputs"),
    ],
)
def test_fused_mha_disentangled_terms_take_the_tables_their_field_names(host, terms, inputs, message):
    fields = f"num_heads:i32:2;pos_att_type:str:{terms};position_buckets:i32:256;max_relative_positions:i32:512"
    plugin = host.create("FusedMHA", fields)
    types = [FLOAT, FLOAT, INT32, INT32, INT32, FLOAT, FLOAT][:inputs]
    shapes = [(27, 192), (192,), (4,), (3, 23), (27,), (256, 64), (256, 64)][:inputs]
    assert plugin.configure([Tensor(t, shape) for t, shape in zip(types, shapes)], 1) != 0
    expect_log(host, f"bytetx FusedMHA: {message}")


@pytest.mark.parametrize(
    "terms, shape, message",
    [
        ("c2p", (201, 64), "input 'position_key' must have an even number >= 2 of rows (2 * span), but its shape "
         "is [201, 64]"),
        ("p2c", (256, 32), "input 'position_query' must have shape [2 * span, H] with H=64"),
    ],
)
def test_fused_mha_disentangled_tables_are_validated(host, terms, shape, message):
    fields = f"num_heads:i32:2;pos_att_type:str:{terms};position_buckets:i32:256;max_relative_positions:i32:512"
    plugin = host.create("FusedMHA", fields)
    shapes = [(27, 192), (192,), (4,), (3, 23), (27,), shape]
    types = [FLOAT, FLOAT, INT32, INT32, INT32, FLOAT]
    assert plugin.configure([Tensor(t, shape) for t, shape in zip(types, shapes)], 1) != 0
    expect_log(host, f"bytetx FusedMHA: {message}")


@pytest.mark.parametrize(
    "fields, extra, message",
    [
        (
            "num_heads:i32:2",
            2,
            "the plugin takes 4 inputs and gives 1 outputs, but the layer has 6 inputs and 1 outputs",
        ),
        (
            "num_heads:i32:2;relative_position_max_distance:i32:128",
            0,
            "the plugin takes 6 inputs and gives 1 outputs, but the layer has 4 inputs and 1 outputs",
        ),
        (
            "num_heads:i32:2;sliding_window:i32:16",
            0,
            "the plugin takes 5 inputs and gives 1 outputs, but the layer has 4 inputs and 1 outputs",
        ),
        (
            "num_heads:i32:2;rotary_frequencies:f32:1,0.5",
            1,
            "the attribute 'rotary_frequencies' must hold head size / 2 floats, one per pair of columns, but it "
            "holds 2 for head size H / num_heads = 32",
        ),
        (
            "num_heads:i32:2;relative_position_max_distance:i32:8",
            2,
            "attribute 'relative_position_max_distance' must exceed the 8 exact distances of 32 buckets, but it is 8",
        ),
    ],
)
def test_fused_mha_relative_position_bias_needs_its_field_and_inputs(host, fields, extra, message):
    plugin = host.create("FusedMHA", fields)
    types = [FLOAT, FLOAT, INT32, INT32, INT32, FLOAT][: 4 + extra]
    shapes = [(27, 192), (192,), (4,), (3, 23), (27,), (32, 2)][: 4 + extra]
    status = plugin.configure([Tensor(t, shape) for t, shape in zip(types, shapes)], 1)
    assert status != 0
    expect_log(host, f"bytetx FusedMHA: {message}")


def test_fused_mha_with_a_relative_position_bias_takes_six_inputs_after_a_round_trip(host):
    plugin = host.create("FusedMHA", "num_heads:i32:2;relative_position_max_distance:i64:100")
    copy, _ = plugin.serialize_roundtrip()
    for made in (plugin, copy):
        assert made.supports(6, 6, [HALF, HALF, INT32, INT32, INT32, HALF, HALF])
        assert not made.supports(5, 6, [HALF, HALF, INT32, INT32, INT32, FLOAT])
        assert not made.supports(4, 4, [HALF, HALF, INT32, INT32, HALF])


def test_fused_mha_with_disentangled_terms_takes_its_tables_after_a_round_trip(host):
    fields = "num_heads:i32:2;pos_att_type:str:p2c;position_buckets:i32:256;max_relative_positions:i32:512"
    plugin = host.create("FusedMHA", fields)
    copy, _ = plugin.serialize_roundtrip()
    for made in (plugin, copy):
        assert made.supports(6, 6, [HALF, HALF, INT32, INT32, INT32, HALF, HALF])
        assert not made.supports(5, 6, [HALF, HALF, INT32, INT32, INT32, FLOAT, HALF])
        assert not made.supports(5, 5, [HALF, HALF, INT32, INT32, INT32, HALF])


@pytest.mark.parametrize(
    "change, message",
    [
        ("cu_seqlens", "input 'cu_seqlens' must have shape [B + 1] = [5] (B from 'token_offset'), but its shape is [4]"),
        ("rows", "input 'qkv' has T=93 rows, more than the B * S=4 * 23 padded slots of 'token_offset'"),
    ],
)
def test_fused_mha_enqueue_errors_reach_the_logger(host, change, message):
    rng = np.random.default_rng(0)
    tokens = 93 if change == "rows" else 27
    qkv = rng.standard_normal((tokens, 192)).astype(np.float32)
    bias = np.zeros(192, np.float32)
    cu = np.array([0, 10, 20, 27] if change == "cu_seqlens" else [0, 20, 40, 60, 93], np.int32)
    status, _ = run_fused_mha(host, "num_heads:i32:2", qkv, bias, cu, 23, "float32", batch=4)
    assert status != 0
    expect_log(host, f"bytetx FusedMHA: {message}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_encoder_chain_as_tensorrt_runs_it(host, dtype):
    """RemovePadding -> FusedMHA (on its Q, K, V: the packed input tripled) -> RebuildPadding, each on the
    rows TensorRT hands it after reading num_tokens: equal to attention on the padded batch with the
    mask, zero at padding."""
    batch, seq_len, heads, head_size = 3, 21, 2, 32
    hidden = heads * head_size
    rng = np.random.default_rng(3)
    dt = checks.np_dtype(dtype)
    mask = make_mask(batch, seq_len, "holes", rng)
    x = rng.standard_normal((batch, seq_len, 3 * hidden)).astype(dt)
    packed, cu, offsets, tokens = run_remove_padding(host, x, mask, dtype)
    qkv = packed[:tokens]  # TensorRT runs the next layers on the first T rows
    status, context = run_fused_mha(
        host, f"num_heads:i32:{heads}", qkv, np.zeros(3 * hidden, dt), cu, seq_len, dtype
    )
    assert status == 0, host.take_log()
    out = Tensor(
        TRT_TYPES[dtype],
        (batch, seq_len, hidden),
        trt_host.empty_buffer("output", (batch, seq_len, hidden), dt),
    )
    inputs = [
        Tensor(TRT_TYPES[dtype], context.shape, trt_host.buffer_of("context", context)),
        Tensor(INT32, offsets.shape, trt_host.buffer_of("token_offset", offsets)),
    ]
    assert host.create("RebuildPadding").enqueue(inputs, [out]) == 0, host.take_log()
    padded = out.buffer.read(dt, (batch, seq_len, hidden)).astype(np.float64)

    scale = np.float32(1 / np.sqrt(head_size))
    bias = np.zeros(3 * hidden, dt)
    cu_ref, _ = packed_layout(mask)
    ref = reference.fused_mha(qkv, bias, cu_ref, heads, scale)
    valid = padded.reshape(-1, hidden)[mask.reshape(-1) != 0]
    if dtype == "float32":
        harness.assert_close(valid, ref, 2e-5, 1e-4, "context at the valid positions")
    else:
        ref_lowp = reference.fused_mha(qkv, bias, cu_ref, heads, scale, dt)
        harness.assert_close_lowp(
            valid, ref, ref_lowp, checks.LOWP_ATOL[dtype], "context at the valid positions"
        )
    assert not padded.reshape(-1, hidden)[mask.reshape(-1) == 0].any(), "padding must be exactly zero"
