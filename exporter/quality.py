"""Quality of a low-precision model: mean-pooled sentence embeddings against a float32 reference.

The int8 check runs on real text (the sentence set shipped in the package, or random token ids
for models without a tokenizer), right-padded in length-sorted batches (as sentence-transformers
batches) and left-padded in batches of mixed lengths (as a server sees them). It reports the
cosine between each sentence's mean-pooled embedding and the reference's (min and mean), the
share of sentences whose nearest neighbour in the set is unchanged, and whether every padded
position is exactly zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources

import numpy as np

from .verify import Padding, padding_is_zero

DEFAULT_MIN_COSINE = 0.99
SORTED_BATCH = 32  # sentence-transformers' default batch size, over length-sorted sentences
MIXED_BATCH = 16
RANDOM_SEQUENCES = 128
RANDOM_MAX_LENGTH = 64

Feeds = dict[str, np.ndarray]
# Runs a model on one batch of feeds; returns last_hidden_state [B, S, H].
Runner = Callable[[Feeds], np.ndarray]


def sentences() -> list[str]:
    """The packaged English sentence set: a few hundred inputs of 3 to about 240 tokens (short
    replies, questions, code, numbers, reviews, instructions, news, long paragraphs)."""
    text = resources.files("bytetx").joinpath("data", "sentences.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


@dataclass
class EvalBatch:
    """One batch of the evaluation: which inputs it holds, in which order, and its feeds [B, S]."""

    indices: np.ndarray
    feeds: Feeds
    padding: Padding


def sentence_batches(tokenizer, texts: Sequence[str], input_names: Sequence[str], max_length: int) -> list[EvalBatch]:
    """Right-padded length-sorted batches, then left-padded batches in the texts' order."""
    lengths = [len(tokenizer(text, truncation=True, max_length=max_length)["input_ids"]) for text in texts]
    passes = [(np.argsort(lengths, kind="stable"), SORTED_BATCH, "right"), (np.arange(len(texts)), MIXED_BATCH, "left")]
    batches = []
    original_side = tokenizer.padding_side
    try:
        for order, size, side in passes:
            tokenizer.padding_side = side
            for start in range(0, len(order), size):
                indices = order[start : start + size]
                encoded = tokenizer([texts[i] for i in indices], padding=True, truncation=True,
                                    max_length=max_length, return_tensors="np")
                feeds = _feeds_from(encoded, input_names)
                batches.append(EvalBatch(indices, feeds, side))
    finally:
        tokenizer.padding_side = original_side
    return batches


def _feeds_from(encoded, input_names: Sequence[str]) -> Feeds:
    mask = np.asarray(encoded["attention_mask"], dtype=np.int64)
    by_name = {"input_ids": np.asarray(encoded["input_ids"], dtype=np.int64), "attention_mask": mask,
               "token_type_ids": np.zeros_like(mask)}
    if "token_type_ids" in encoded:
        by_name["token_type_ids"] = np.asarray(encoded["token_type_ids"], dtype=np.int64)
    return {name: by_name[name] for name in input_names}


def random_batches(input_names: Sequence[str], vocab_size: int, pad_token_id: int, type_vocab_size: int = 1,
                   count: int = RANDOM_SEQUENCES, max_length: int = RANDOM_MAX_LENGTH, seed: int = 0) -> list[EvalBatch]:
    """The same two passes over ``count`` random sequences of 1 to ``max_length`` random token ids."""
    from .verify import make_feeds, ragged_mask

    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, max_length + 1, size=count)
    lengths[: min(2, count)] = (1, max_length)[: min(2, count)]  # both ends, where there is room
    passes = [(np.argsort(lengths, kind="stable"), SORTED_BATCH, "right"), (np.arange(count), MIXED_BATCH, "left")]
    batches = []
    for order, size, side in passes:
        for start in range(0, count, size):
            indices = order[start : start + size]
            batch_lengths = lengths[indices]
            mask = ragged_mask(batch_lengths, int(batch_lengths.max()), side)
            feeds = make_feeds(input_names, mask, vocab_size, pad_token_id, type_vocab_size, seed=seed + start + 1)
            batches.append(EvalBatch(indices, feeds, side))
    return batches


def mean_pooled(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[B, S, H] hidden states, [B, S] mask -> [B, H] means over the valid tokens (float64)."""
    weights = mask[..., None].astype(np.float64)
    return (hidden.astype(np.float64) * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)


def embeddings(run: Runner, batches: Sequence[EvalBatch], padding: Padding, count: int) -> tuple[np.ndarray, bool]:
    """[count, H] mean-pooled embeddings from the batches of one padding side, and whether every
    padded position of the hidden states was exactly zero."""
    result: np.ndarray | None = None
    pads_zero = True
    for batch in (b for b in batches if b.padding == padding):
        hidden = run(batch.feeds)
        mask = batch.feeds["attention_mask"]
        pads_zero &= padding_is_zero(hidden, mask)
        pooled = mean_pooled(hidden, mask)
        if result is None:
            result = np.zeros((count, pooled.shape[1]))
        result[batch.indices] = pooled
    assert result is not None, f"no {padding}-padded batch"
    return result, pads_zero


def cosines(candidate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """[N] cosine between matching rows of two [N, H] arrays (NaN where a row is zero or NaN)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (candidate * reference).sum(1) / (np.linalg.norm(candidate, axis=1) * np.linalg.norm(reference, axis=1))


def nearest_neighbours(embedded: np.ndarray) -> np.ndarray:
    """[N] index of each row's most cosine-similar other row."""
    unit = embedded / np.maximum(np.linalg.norm(embedded, axis=1, keepdims=True), 1e-30)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    return similarity.argmax(axis=1)


@dataclass
class QualityReport:
    """Cosine of mean-pooled embeddings against the reference, over both padding sides."""

    reference: str
    inputs: str
    min_cosine: float
    mean_cosine: float
    neighbour_agreement: float
    worst_input: str
    padding_zero: bool
    required_min_cosine: float

    @property
    def passed(self) -> bool:
        # NaN compares False, so a NaN cosine fails.
        return self.padding_zero and self.min_cosine >= self.required_min_cosine

    def __str__(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        pads = "padding exactly zero" if self.padding_zero else "padding NOT zero"
        return (f"vs {self.reference} on {self.inputs} (right- and left-padded): mean-pooled cosine min "
                f"{self.min_cosine:.4f} (required {self.required_min_cosine:g}, worst: {self.worst_input}), "
                f"mean {self.mean_cosine:.4f}; nearest neighbour unchanged for "
                f"{self.neighbour_agreement:.1%}; {pads}: {verdict}")


@dataclass
class QualityCheck:
    """A fixed evaluation: the batches and the reference's embeddings per padding side, computed once,
    so that several candidates can be measured against them."""

    batches: list[EvalBatch]
    labels: list[str]  # one per input, to name the worst
    reference_name: str
    inputs_name: str
    references: dict[str, np.ndarray]

    @classmethod
    def build(cls, reference: Runner, batches: list[EvalBatch], labels: list[str], reference_name: str,
              inputs_name: str) -> QualityCheck:
        references = {side: embeddings(reference, batches, side, len(labels))[0] for side in ("right", "left")}
        return cls(batches, labels, reference_name, inputs_name, references)

    def measure(self, candidate: Runner, required_min_cosine: float = DEFAULT_MIN_COSINE) -> QualityReport:
        all_cosines, agreements, pads_zero = [], [], True
        for side, reference in self.references.items():
            embedded, side_pads_zero = embeddings(candidate, self.batches, side, len(self.labels))
            pads_zero &= side_pads_zero
            all_cosines.append(cosines(embedded, reference))
            agreements.append(float(np.mean(nearest_neighbours(embedded) == nearest_neighbours(reference))))
        per_input = np.minimum(*all_cosines)
        worst = int(np.nanargmin(per_input)) if not np.isnan(per_input).all() else 0
        min_cosine = float(np.nan) if np.isnan(per_input).any() else float(per_input.min())
        return QualityReport(self.reference_name, self.inputs_name, min_cosine,
                             float(np.mean(np.concatenate(all_cosines))), min(agreements),
                             self.labels[worst], pads_zero, required_min_cosine)


def describe_input(text: str, limit: int = 40) -> str:
    """A sentence for a report line: quoted, shortened to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
