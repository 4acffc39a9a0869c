"""Each sample runs and reports agreement with its reference."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_embed_sentences_matches_sentence_transformers(tmp_path, ort_library):
    result = subprocess.run(
        [sys.executable, str(SAMPLES / "embed_sentences.py"), "--model", str(tmp_path / "minilm.onnx")],
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert ": match" in result.stdout
    assert (tmp_path / "minilm.onnx").is_file()
