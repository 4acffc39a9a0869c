"""Whole bytetx models on ONNX Runtime's CUDA execution provider against Hugging Face PyTorch, and a
whole session run captured as a CUDA graph.

Reference: Hugging Face PyTorch in float32 (on the GPU when torch has CUDA, else on the CPU), same
weights, right-, left- and hole-padded ragged batches. Tolerances on valid tokens: float32 1e-4 (the
CPU path's, with TF32 off in ONNX Runtime); float16 5e-2 absolute (weights, activations and GEMM
inputs rounded to float16 through 2 to 6 layers; LayerNorm and softmax statistics stay float32).
Padding must be exactly zero in both. Skipped without a GPU, onnxruntime-gpu or libbytetx_ort_cuda.so.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

TOLERANCE = {"fp32": 1e-4, "fp16": 5e-2}
# No TF32: float32 GEMMs must compute in float32 to meet the float32 tolerance.
CUDA_OPTIONS = {"use_tf32": "0"}


@pytest.fixture(scope="module")
def cuda_ready():
    import onnxruntime as ort

    import bytetx

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime has no CUDA execution provider (install onnxruntime-gpu)")
    try:
        bytetx.ort_cuda_library_path()
    except bytetx.LibraryNotFoundError as error:
        pytest.skip(str(error))


def cuda_session(model_bytes: bytes, **provider_options: str):
    import bytetx

    session = bytetx.InferenceSession(
        model_bytes,
        providers=[("CUDAExecutionProvider", {**CUDA_OPTIONS, **provider_options}), "CPUExecutionProvider"],
    )
    if "CUDAExecutionProvider" not in session.get_providers():
        pytest.skip("no usable CUDA device behind the provider")
    return session


def reference_outputs(loaded, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import torch
    from bytetx.exporter.verify import run_torch

    if not torch.cuda.is_available():
        return run_torch(loaded.model, feeds, loaded.output_names)
    model = loaded.model.to("cuda")
    try:
        with torch.inference_mode():
            outputs = model(**{k: torch.from_numpy(v).cuda() for k, v in feeds.items()})
        return {name: outputs[name].float().cpu().numpy() for name in loaded.output_names}
    finally:
        loaded.model.to("cpu")


@pytest.fixture(scope="module")
def exported(tiny_model_dirs, minilm_dir):
    from bytetx.exporter import export_to_onnx, load_hf_model
    from bytetx.graph_rewrite import rewrite_padding_free

    cache = {}

    def get(name: str):
        if name not in cache:
            loaded = load_hf_model(minilm_dir if name == "minilm" else tiny_model_dirs(name), "eager")
            cache[name] = (loaded, rewrite_padding_free(export_to_onnx(loaded))[0])
        return cache[name]

    return get


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", ["bert", "roberta", "distilbert", "minilm"])
def test_model_matches_pytorch(cuda_ready, exported, name, precision):
    from bytetx.exporter import to_float16
    from bytetx.exporter.verify import make_feeds, ragged_mask, run_onnx, valid_token_diff

    loaded, rewritten = exported(name)
    model = to_float16(rewritten) if precision == "fp16" else rewritten
    session = cuda_session(model.SerializeToString())
    config = loaded.config
    rng = np.random.default_rng(11)
    for batch, max_length, padding in ((1, 1, "right"), (7, 61, "right"), (5, 37, "left"), (16, 130, "holes")):
        lengths = rng.integers(1, max_length + 1, size=batch)
        lengths[0] = max_length
        mask = ragged_mask(lengths, max_length, padding, seed=batch)
        feeds = make_feeds(loaded.input_names, mask, config.vocab_size, loaded.pad_token_id,
                           getattr(config, "type_vocab_size", 1), seed=batch)
        ours = run_onnx(session, feeds)
        expected = reference_outputs(loaded, feeds)
        for output, value in expected.items():
            diff = valid_token_diff(ours[output].astype(np.float32), value, mask)
            assert diff <= TOLERANCE[precision], (
                f"{name} {precision} {output} B={batch} S={max_length} {padding}: max |diff| {diff:.3g}"
            )
        hidden = ours["last_hidden_state"]
        assert np.all(hidden[mask == 0] == 0), "padding must be exactly zero"


def with_static_shapes(model, batch: int, seq_len: int):
    """``model`` with every [batch, sequence] input pinned and the shape arithmetic folded away:
    ONNX Runtime captures a CUDA graph only when every node runs on the CUDA provider, and the shape
    ops of a dynamic graph run on the CPU."""
    import onnx_graphsurgeon as gs

    graph = gs.import_onnx(model)
    for tensor in graph.inputs:
        tensor.shape = [batch, seq_len]
    graph.fold_constants(fold_shapes=True).cleanup()
    return gs.export_onnx(graph)


def test_whole_session_run_is_captured_as_a_cuda_graph(cuda_ready, exported):
    """ONNX Runtime's CUDA graph (enable_cuda_graph) over a whole bytetx model with static shapes:
    captured on the first runs, then replayed with new token ids written into the same bound device
    buffers; every replay must match a normal session on the same inputs. ONNX Runtime refuses to
    create the session when a node cannot be captured (not on the CUDA provider), and capture fails
    when an op synchronizes or allocates. A captured graph keeps the shapes of its capture, and T is
    a shape that comes from the mask, so one graph serves one mask (docs/ops.md)."""
    import onnxruntime as ort
    from bytetx.exporter.verify import make_feeds, ragged_mask, run_onnx, valid_token_diff

    loaded, rewritten = exported("bert")
    config = loaded.config
    mask = ragged_mask(np.array([9, 4, 1, 7]), 9, "right")
    static = with_static_shapes(rewritten, *mask.shape).SerializeToString()
    graph_session = cuda_session(static, enable_cuda_graph="1")
    plain_session = cuda_session(static)
    feeds = make_feeds(loaded.input_names, mask, config.vocab_size, loaded.pad_token_id,
                       getattr(config, "type_vocab_size", 1), seed=0)

    binding = graph_session.io_binding()
    inputs = {}
    for name, value in feeds.items():
        # The mask stays on the host: RemovePadding reads it there (docs/ops.md).
        device = "cpu" if name == "attention_mask" else "cuda"
        inputs[name] = ort.OrtValue.ortvalue_from_numpy(value, device, 0)
        binding.bind_ortvalue_input(name, inputs[name])
    first = run_onnx(plain_session, feeds)
    outputs = {
        name: ort.OrtValue.ortvalue_from_shape_and_type(value.shape, value.dtype, "cuda", 0)
        for name, value in first.items()
    }
    for name, value in outputs.items():
        binding.bind_ortvalue_output(name, value)

    rng = np.random.default_rng(1)
    for step in range(4):
        if step:
            feeds["input_ids"] = np.where(mask == 1, rng.integers(3, config.vocab_size, mask.shape), 0)
            inputs["input_ids"].update_inplace(feeds["input_ids"])
        graph_session.run_with_iobinding(binding)
        expected = run_onnx(plain_session, feeds)
        for name, value in outputs.items():
            diff = valid_token_diff(value.numpy(), expected[name], mask)
            assert diff <= 1e-5, f"run {step}: {name} differs from a normal run by {diff:.3g}"
