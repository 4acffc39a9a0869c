"""The served model of a model directory: float32 verified against Hugging Face, int8 (``bytetx-serve
--precision int8``) quantized on the packed flavour with the interface and limits unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from bytetx.exporter import ExportError

import bytetx
from bytetx.serving.export import prepare_model
from bytetx.serving.requests import ModelLimits, Sequence, pack

# The tiny random model's check runs on random token ids; its int8 noise bound (tests/exporter/test_int8.py)
# stays above this.
TINY_MIN_COSINE = 0.9


def _metadata(model) -> dict[str, str]:
    return {p.key: p.value for p in model.packed.metadata_props}


def _embeddings(model, feeds) -> np.ndarray:
    session = bytetx.InferenceSession(model.packed.SerializeToString())
    return session.run(["sentence_embedding"], feeds)[0]


def test_int8_keeps_the_interface_and_limits_and_stays_close_to_float32(tiny_model_dirs):
    directory = tiny_model_dirs("bert")
    fp32, _ = prepare_model(directory)
    int8, lines = prepare_model(directory, precision="int8", min_cosine=TINY_MIN_COSINE)
    assert lines[-1].startswith("int8 vs") and "ok" in lines[-1]
    ops = [n.op_type for n in int8.packed.graph.node]
    assert ops.count("MatMulInteger") >= 1 and "FusedMHA" in ops and "RemovePadding" not in ops
    assert ModelLimits.from_metadata(_metadata(int8)) == ModelLimits.from_metadata(_metadata(fp32))
    assert [i.name for i in int8.packed.graph.input] == [i.name for i in fp32.packed.graph.input]
    assert [o.name for o in int8.packed.graph.output] == [o.name for o in fp32.packed.graph.output]
    assert (int8.hidden_size, int8.with_types) == (fp32.hidden_size, fp32.with_types)

    rng = np.random.default_rng(5)
    limits = ModelLimits.from_metadata(_metadata(fp32))
    sequences = [Sequence(rng.integers(5, limits.vocab_size, size=n), None) for n in (1, 7, 30, 3, 16)]
    feeds = pack(sequences, fp32.with_types)
    expected, got = _embeddings(fp32, feeds), _embeddings(int8, feeds)
    cosines = (expected * got).sum(1) / (np.linalg.norm(expected, axis=1) * np.linalg.norm(got, axis=1))
    assert cosines.min() >= TINY_MIN_COSINE, cosines
    assert not np.array_equal(expected, got), "the int8 GEMMs ran"


def test_an_unknown_precision_is_refused(tiny_model_dirs):
    with pytest.raises(ExportError, match="precision must be fp32 or int8, got 'fp16'"):
        prepare_model(tiny_model_dirs("bert"), precision="fp16")
