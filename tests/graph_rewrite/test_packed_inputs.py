"""The packed-input flavour against Hugging Face PyTorch: every architecture, ragged batches.

Reference: the same sequences as one right-padded batch through PyTorch; packed hidden states on
every token, pooled embeddings as sentence-transformers pools them. Tolerance (float32): 1e-4.
"""

from __future__ import annotations

import numpy as np
import pytest
from bytetx.exporter import export_to_onnx, load_hf_model
from bytetx.exporter.verify import (
    FP32_TOLERANCE,
    make_feeds,
    pack_feeds,
    pool,
    ragged_lengths,
    ragged_mask,
    run_torch,
)
from bytetx.graph_rewrite import RewriteError, rewrite_padding_free, to_packed_inputs
from fixtures.tiny_models import MAX_POSITIONS, TESTED_MODEL_TYPES, VOCAB

import bytetx

# (batch, max length, seed): a single token, one sequence, ragged batches up to the position limit.
BATCHES = [(1, 1, 0), (1, 23, 1), (5, 37, 2), (16, 61, 3), (3, 126, 4)]


def _hf_feeds(loaded, mask, seed):
    config = loaded.config
    return make_feeds(loaded.input_names, mask, config.vocab_size, loaded.pad_token_id,
                      getattr(config, "type_vocab_size", 1), seed=seed)


def _max_diffs(session, loaded, batches, pooling, normalize):
    diffs = []
    for batch, max_length, seed in batches:
        mask = ragged_mask(ragged_lengths(batch, max_length, np.random.default_rng(seed)), max_length)
        feeds = _hf_feeds(loaded, mask, seed)
        hidden = run_torch(loaded.model, feeds, ("last_hidden_state",))["last_hidden_state"]
        ours_hidden, ours_sentence = session.run(None, pack_feeds(feeds, mask))
        assert ours_hidden.shape == (mask.sum(), hidden.shape[-1])
        diffs.append((float(np.abs(ours_hidden - hidden[mask == 1]).max()),
                      float(np.abs(ours_sentence - pool(hidden, mask, pooling, normalize)).max())))
    return diffs


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("model_type", TESTED_MODEL_TYPES)
def test_matches_pytorch_on_ragged_batches(model_type, exporter, tiny_model_dirs, ort_library):
    loaded = load_hf_model(tiny_model_dirs(model_type), "eager")
    packed, _ = to_packed_inputs(export_to_onnx(loaded, exporter), "mean", normalize=True)
    assert [o.name for o in packed.graph.output] == ["last_hidden_state", "sentence_embedding"]
    assert not any(n.op_type in ("RemovePadding", "RebuildPadding") for n in packed.graph.node)
    assert sum(n.op_type == "FusedMHA" for n in packed.graph.node) == 2
    session = bytetx.InferenceSession(packed.SerializeToString())
    for hidden_diff, sentence_diff in _max_diffs(session, loaded, BATCHES, "mean", True):
        assert hidden_diff <= FP32_TOLERANCE and sentence_diff <= FP32_TOLERANCE


@pytest.mark.parametrize("model_type", ["bert", "roberta"])
def test_cls_pooling_without_normalization(model_type, tiny_model_dirs, ort_library):
    loaded = load_hf_model(tiny_model_dirs(model_type), "eager")
    packed, _ = to_packed_inputs(export_to_onnx(loaded), "cls", normalize=False)
    session = bytetx.InferenceSession(packed.SerializeToString())
    for hidden_diff, sentence_diff in _max_diffs(session, loaded, BATCHES[:4], "cls", False):
        assert hidden_diff <= FP32_TOLERANCE and sentence_diff <= FP32_TOLERANCE


def test_positions_offset_and_limits_found_by_structure(tiny_model_dirs):
    """RoBERTa's positions start at padding_idx + 1: two of its position rows are unusable."""
    expected = {"bert": (MAX_POSITIONS, "2"), "roberta": (MAX_POSITIONS - 2, None)}
    for model_type, (max_length, type_vocab) in expected.items():
        packed, reports = to_packed_inputs(export_to_onnx(load_hf_model(tiny_model_dirs(model_type))))
        metadata = {p.key: p.value for p in packed.metadata_props}
        assert metadata["bytetx_max_length"] == str(max_length)
        assert metadata["bytetx_vocab_size"] == str(VOCAB)
        assert metadata.get("bytetx_type_vocab_size") == type_vocab
        assert metadata["bytetx_interface"] == "packed"
        if model_type == "roberta":
            assert any("positions (+2)" in line for line in reports[-1].details)


def test_minilm_matches_sentence_transformers(minilm_dir, ort_library):
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    loaded = load_hf_model(minilm_dir)
    packed, _ = to_packed_inputs(export_to_onnx(loaded), "mean", normalize=True)
    session = bytetx.InferenceSession(packed.SerializeToString())
    texts = ["a", "The quick brown fox jumps over the lazy dog.", "padding-free " * 40, "x y z"]
    tokenizer = Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(256)
    ids = [np.array(e.ids, np.int64) for e in tokenizer.encode_batch(texts)]
    lengths = np.array([len(i) for i in ids])
    feeds = {"input_ids": np.concatenate(ids), "token_type_ids": np.zeros(lengths.sum(), np.int64),
             "cu_seqlens": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32),
             "max_seqlen": np.zeros(lengths.max(), np.int32)}
    _, sentence = session.run(None, feeds)
    expected = SentenceTransformer(str(minilm_dir), device="cpu").encode(texts)
    assert np.abs(sentence - expected).max() <= FP32_TOLERANCE
    hidden_diff, sentence_diff = _max_diffs(session, loaded, [(8, 256, 5)], "mean", True)[0]
    assert hidden_diff <= FP32_TOLERANCE and sentence_diff <= FP32_TOLERANCE


def test_packing_twice_changes_nothing_and_the_rewrite_is_accepted(tiny_model_dirs):
    original = export_to_onnx(load_hf_model(tiny_model_dirs("bert")))
    rewritten, _ = rewrite_padding_free(original)
    packed, reports = to_packed_inputs(rewritten)
    assert reports[-1].changed == 5
    again, reports = to_packed_inputs(packed)
    assert again is packed and all(r.changed == 0 for r in reports)


def test_a_sequence_longer_than_max_seqlen_is_an_error(tiny_model_dirs, ort_library):
    packed, _ = to_packed_inputs(export_to_onnx(load_hf_model(tiny_model_dirs("distilbert"))))
    session = bytetx.InferenceSession(packed.SerializeToString())
    feeds = {"input_ids": np.arange(2, 12, dtype=np.int64), "cu_seqlens": np.array([0, 3, 10], np.int32),
             "max_seqlen": np.zeros(5, np.int32)}
    with pytest.raises(Exception, match="FusedMHA"):
        session.run(None, feeds)


def test_refuses_embedding_indices_that_are_not_positions(tiny_model_dirs):
    """Indices that depend on each sequence's length (here its mask count) have no packed form."""
    import onnx_graphsurgeon as gs

    graph = gs.import_onnx(export_to_onnx(load_hf_model(tiny_model_dirs("distilbert"))))
    mask = next(t for t in graph.inputs if t.name == "attention_mask")
    gather = next(n for n in graph.nodes if n.op == "Gather" and "position" in n.name)
    counts = gs.Variable("mask_counts", np.int64)
    graph.nodes.append(gs.Node("ReduceSum", "count_mask", inputs=[mask, gs.Constant("axis", np.array([1]))],
                               outputs=[counts], attrs={"keepdims": 1}))
    gather.inputs[1] = counts
    graph.toposort()
    with pytest.raises(RewriteError, match="cannot tell what its computed indices are"):
        to_packed_inputs(gs.export_onnx(graph))
