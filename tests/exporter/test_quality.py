"""The int8 quality check: the packaged sentence set, pooling, cosines, neighbours, and a check that fails
on a degraded model or non-zero padding."""

from __future__ import annotations

import numpy as np
import pytest
from bytetx.exporter.quality import (
    QualityCheck,
    cosines,
    mean_pooled,
    nearest_neighbours,
    random_batches,
    sentence_batches,
    sentences,
)


def test_sentence_set_is_varied_and_within_3_to_250_tokens(minilm_dir):
    from transformers import AutoTokenizer

    texts = sentences()
    assert len(texts) >= 300 and len(set(texts)) == len(texts)
    lengths = np.array([len(ids) for ids in AutoTokenizer.from_pretrained(str(minilm_dir))(texts)["input_ids"]])
    assert lengths.min() == 3 and 200 <= lengths.max() <= 250
    assert (lengths <= 6).sum() >= 20, "very short inputs, the weak spot of per-tensor ranges"
    assert (lengths >= 100).sum() >= 20, "long paragraphs"
    assert sum("?" in t for t in texts) >= 30 and sum(any(c.isdigit() for c in t) for t in texts) >= 30


def test_mean_pooling_ignores_padding():
    hidden = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    mask = np.array([[1, 1, 0], [0, 0, 1]])
    np.testing.assert_allclose(mean_pooled(hidden, mask), [[1, 2], [10, 11]])


def test_cosines_and_nearest_neighbours():
    a = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    np.testing.assert_allclose(cosines(a, a * 3), 1.0)
    np.testing.assert_allclose(cosines(a, a[[1, 0, 2]])[:2], 0.0, atol=1e-12)
    assert np.isnan(cosines(a, np.zeros_like(a))).all()
    assert nearest_neighbours(np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])).tolist() == [1, 0, 1]


def _check(minilm_dir) -> tuple[QualityCheck, object]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir))
    batches = sentence_batches(tokenizer, sentences()[:48], ["input_ids", "attention_mask"], 128)
    table = np.random.default_rng(0).standard_normal((tokenizer.vocab_size, 8))

    def reference(feeds):
        return table[feeds["input_ids"]] * feeds["attention_mask"][..., None]

    return QualityCheck.build(reference, batches, [str(i) for i in range(48)], "table", "48 sentences"), reference


def test_both_padding_sides_are_measured(minilm_dir):
    check, _ = _check(minilm_dir)
    sides = {b.padding for b in check.batches}
    assert sides == {"right", "left"}
    for batch in check.batches:
        mask = batch.feeds["attention_mask"]
        first_valid = 0 if batch.padding == "right" else -1  # every sequence has a token there
        assert mask[:, first_valid].all()
    assert any(not b.feeds["attention_mask"].all() for b in check.batches if b.padding == "left")


def test_the_reference_itself_passes_and_noise_or_nonzero_padding_fails(minilm_dir):
    check, reference = _check(minilm_dir)
    exact = check.measure(reference, 0.999999)
    assert exact.passed and exact.min_cosine > 0.999999 and exact.neighbour_agreement == 1.0
    rng = np.random.default_rng(1)

    def noisy(feeds):
        hidden = reference(feeds)
        return hidden + rng.standard_normal(hidden.shape) * feeds["attention_mask"][..., None]

    degraded = check.measure(noisy, 0.99)
    assert not degraded.passed and degraded.min_cosine < 0.99 and "FAILED" in str(degraded)
    leaky = check.measure(lambda feeds: reference(feeds) + (1 - feeds["attention_mask"][..., None]), 0.99)
    assert not leaky.passed and not leaky.padding_zero and leaky.min_cosine > 0.999999


@pytest.mark.parametrize("count", [1, 40])
def test_random_batches_cover_every_sequence_once_per_side(count):
    batches = random_batches(["input_ids", "attention_mask"], 100, 0, count=count, max_length=9)
    for side in ("right", "left"):
        covered = np.concatenate([b.indices for b in batches if b.padding == side])
        assert sorted(covered.tolist()) == list(range(count))
