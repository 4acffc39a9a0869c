"""bytetx.torch.padding_free against Hugging Face PyTorch with the same weights.

CPU (float32): valid tokens within 1e-4 on right-, left- and hole-padded ragged batches for every
supported architecture and the real all-MiniLM-L6-v2, padding exactly zero, the pooler where the model
has one (rows whose first position is a token), a sequence the same alone and in a batch (1e-5).
CUDA (skipped without a GPU): float32 with TF32 off within 1e-4; float16 and bfloat16 within 2x the
error of Hugging Face itself run in that precision (against float32), plus 1e-2 absolute.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bytetx.exporter.verify import make_feeds
from fixtures.masks import make_mask
from fixtures.tiny_models import TORCH_MODEL_TYPES

from bytetx import kernels
from bytetx.torch import UnsupportedEncoderError, padding_free

TOLERANCE = 1e-4
BATCH_INVARIANCE_TOLERANCE = 1e-5
BATCHES = [(1, 1, "full", 0), (5, 37, "right", 1), (7, 29, "left", 2), (32, 61, "holes", 3), (6, 19, "mixed", 4)]


def load(model_dir, dtype=torch.float32, device="cpu"):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager", local_files_only=True)
    return model.to(device=device, dtype=dtype).eval()


def feeds_for(model, mask: np.ndarray, seed: int, device="cpu") -> dict[str, torch.Tensor]:
    config = model.config
    names = ["input_ids", "attention_mask"]
    if getattr(config, "type_vocab_size", 1) > 1:
        names.append("token_type_ids")
    pad = config.pad_token_id if config.pad_token_id is not None else 0
    arrays = make_feeds(names, mask, config.vocab_size, pad, getattr(config, "type_vocab_size", 1), seed=seed)
    return {k: torch.from_numpy(v).to(device) for k, v in arrays.items()}


def max_diffs(ours, theirs, mask: np.ndarray) -> tuple[float, float, float | None]:
    """(max |diff| on valid tokens, max |value| at padding, max |diff| of pooled rows whose position 0 is a token)."""
    valid = torch.from_numpy(mask != 0).to(ours.last_hidden_state.device)
    ours_last, theirs_last = ours.last_hidden_state.float(), theirs.last_hidden_state.float()
    token = (ours_last - theirs_last)[valid].abs().max().item() if valid.any() else 0.0
    padding = ours_last[~valid].abs().max().item() if (~valid).any() else 0.0
    pooled = None
    if ours.pooler_output is not None and valid[:, 0].any():
        pooled = (ours.pooler_output.float() - theirs.pooler_output.float())[valid[:, 0]].abs().max().item()
    return token, padding, pooled


@pytest.mark.parametrize("model_type", TORCH_MODEL_TYPES)
def test_matches_hugging_face_on_ragged_batches(model_type, tiny_model_dirs):
    model = load(tiny_model_dirs(model_type))
    wrapped = padding_free(model)
    for batch, seq_len, kind, seed in BATCHES:
        mask = make_mask(batch, seq_len, kind, seed)
        feeds = feeds_for(model, mask, seed)
        with torch.no_grad():
            expected = model(**feeds)
        token, padding, pooled = max_diffs(wrapped(**feeds), expected, mask)
        where = f"{model_type} {batch}x{seq_len} {kind}"
        assert token <= TOLERANCE, f"{where}: max |diff| {token:.3g}"
        assert padding == 0.0, f"{where}: padding not zero"
        assert pooled is None or pooled <= TOLERANCE, f"{where}: pooler max |diff| {pooled:.3g}"


@pytest.mark.parametrize("model_type", ["bert", "distilbert", "albert"])
def test_sequence_alone_equals_sequence_in_batch(model_type, tiny_model_dirs):
    model = load(tiny_model_dirs(model_type))
    wrapped = padding_free(model)
    mask = np.zeros((5, 30), np.int64)
    for row, length in enumerate([30, 1, 0, 17, 9]):
        mask[row, :length] = 1
    feeds = feeds_for(model, mask, seed=2)
    batched = wrapped(**feeds).last_hidden_state
    assert not batched[2].any(), "an all-padding row gives zeros"
    for row, length in enumerate(mask.sum(axis=1)):
        if length:
            alone = wrapped(**{k: v[row : row + 1, :length] for k, v in feeds.items()}).last_hidden_state
            torch.testing.assert_close(alone[0], batched[row, :length], rtol=0, atol=BATCH_INVARIANCE_TOLERANCE)


def test_real_minilm(minilm_dir):
    model = load(minilm_dir)
    wrapped = padding_free(model)
    for batch, seq_len, kind, seed in [(8, 256, "right", 0), (8, 130, "left", 1)]:
        mask = make_mask(batch, seq_len, kind, seed)
        feeds = feeds_for(model, mask, seed)
        with torch.no_grad():
            expected = model(**feeds)
        token, padding, _ = max_diffs(wrapped(**feeds), expected, mask)
        assert token <= TOLERANCE and padding == 0.0, (kind, token, padding)


def test_hidden_states_and_tuple_outputs(tiny_model_dirs):
    model = load(tiny_model_dirs("bert"))
    mask = make_mask(4, 12, "holes", seed=5)
    feeds = feeds_for(model, mask, seed=5)
    with torch.no_grad():
        expected = model(**feeds, output_hidden_states=True)
    ours = padding_free(model)(**feeds, output_hidden_states=True)
    assert len(ours.hidden_states) == len(expected.hidden_states)
    valid = torch.from_numpy(mask != 0)
    for got, want in zip(ours.hidden_states, expected.hidden_states):
        assert (got - want)[valid].abs().max() <= TOLERANCE and not got[~valid].any()
    last, pooled = padding_free(model)(**feeds, return_dict=False)
    torch.testing.assert_close(pooled, ours.pooler_output, rtol=0, atol=0)
    torch.testing.assert_close(last, ours.last_hidden_state, rtol=0, atol=0)


def test_errors_name_the_problem(tiny_model_dirs):
    model = load(tiny_model_dirs("bert"))
    feeds = feeds_for(model, make_mask(2, 8, "right", seed=0), seed=0)
    with pytest.raises(TypeError, match="do not support output_attentions"):
        padding_free(model)(**feeds, output_attentions=True)
    with pytest.raises(kernels.InvalidKernelArgument, match="RemovePadding: input 'input' must be float32, but it is float16"):
        padding_free(model.half())(**feeds)
    with pytest.raises(ValueError, match="call model.eval"):
        padding_free(model.float().train())


def test_models_without_an_encoder_structure_are_refused():
    from transformers import GPT2Config, GPT2Model

    model = GPT2Model(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64)).eval()
    with pytest.raises(UnsupportedEncoderError, match="GPT2Model is not a base encoder"):
        padding_free(model)


def test_a_relative_position_bias_is_refused_by_name(tiny_model_dirs):
    with pytest.raises(UnsupportedEncoderError, match="MPNetModel adds a relative position bias"):
        padding_free(load(tiny_model_dirs("mpnet")))


def test_rotary_embeddings_are_refused_by_name(tiny_model_dirs):
    with pytest.raises(UnsupportedEncoderError, match="ModernBertModel applies rotary embeddings"):
        padding_free(load(tiny_model_dirs("modernbert")))


CUDA_TOLERANCE = {torch.float16: 1e-2, torch.bfloat16: 1e-2}


def _assert_within_budget(reference, lowp, dtype, cases, label: str) -> None:
    """padding_free(lowp) against the float32 model on each (batch, seq_len, kind, seed): float32 within
    TOLERANCE; float16/bfloat16 within twice Hugging Face's own error in that dtype plus CUDA_TOLERANCE;
    padding exactly zero."""
    wrapped = padding_free(lowp)
    for batch, seq_len, kind, seed in cases:
        mask = make_mask(batch, seq_len, kind, seed)
        feeds = feeds_for(reference, mask, seed, "cuda")
        with torch.no_grad():
            exact, hf_lowp = reference(**feeds), lowp(**feeds)
        token, padding, _ = max_diffs(wrapped(**feeds), exact, mask)
        budget = TOLERANCE if dtype == torch.float32 else 2 * max_diffs(hf_lowp, exact, mask)[0] + CUDA_TOLERANCE[dtype]
        assert token <= budget and padding == 0.0, (label, dtype, kind, token, budget)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("model_type", TORCH_MODEL_TYPES)
def test_cuda_matches_hugging_face(model_type, dtype, tiny_model_dirs, monkeypatch):
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    reference = load(tiny_model_dirs(model_type), torch.float32, "cuda")
    lowp = load(tiny_model_dirs(model_type), dtype, "cuda")
    cases = [c for c in BATCHES + [(16, 512, "right", 5)] if c[1] <= reference.config.max_position_embeddings - 2]
    _assert_within_budget(reference, lowp, dtype, cases, model_type)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_cuda_bert_base_ragged_16x512(dtype, tmp_path_factory, monkeypatch):
    """A BERT-base-sized model (random weights) on ragged batches up to 16 x 512, the paper's shapes."""
    from transformers import BertConfig, BertModel

    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    folder = tmp_path_factory.mktemp("bert-base")
    torch.manual_seed(0)
    BertModel(BertConfig()).save_pretrained(folder)
    reference = load(folder, torch.float32, "cuda")
    lowp = load(folder, dtype, "cuda")
    _assert_within_budget(reference, lowp, dtype, [(16, 512, "right", 0), (16, 128, "holes", 1), (3, 300, "left", 2)],
                          "bert-base")
