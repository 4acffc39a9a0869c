"""Reading a model's sentence-transformers pooling: both config formats, and the modes bytetx refuses."""

from __future__ import annotations

import json

import pytest
from bytetx.exporter import ExportError
from bytetx.exporter.pooling import SentencePooling, read_sentence_pooling

MODULES = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
           {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
NORMALIZE = {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}


def _write(folder, modules, pooling, max_seq_length=None):
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    if max_seq_length:
        (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length}))
    return folder


def test_bundled_minilm_pools_by_mean_and_normalizes(minilm_dir):
    assert read_sentence_pooling(minilm_dir) == SentencePooling("mean", True, 256)


def test_without_modules_json_pools_by_mean(tmp_path):
    assert read_sentence_pooling(tmp_path) == SentencePooling("mean", False, None)


@pytest.mark.parametrize("pooling,mode", [
    ({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}, "cls"),
    ({"pooling_mode": "cls"}, "cls"),
    ({"pooling_mode": ["mean"]}, "mean"),
])
def test_legacy_flags_and_pooling_mode(tmp_path, pooling, mode):
    assert read_sentence_pooling(_write(tmp_path, MODULES + [NORMALIZE], pooling, 128)) == SentencePooling(mode, True, 128)


@pytest.mark.parametrize("pooling,message", [
    ({"pooling_mode": "max"}, "pooling max is not supported"),
    ({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True}, "pooling cls\\+mean is not supported"),
    ({}, "pooling none is not supported"),
])
def test_unsupported_modes_are_named(tmp_path, pooling, message):
    with pytest.raises(ExportError, match=message):
        read_sentence_pooling(_write(tmp_path, MODULES, pooling))


def test_unknown_module_is_named(tmp_path):
    dense = {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
    with pytest.raises(ExportError, match="Dense"):
        read_sentence_pooling(_write(tmp_path, MODULES + [dense], {"pooling_mode": "mean"}))


def test_corrupt_files_are_named(tmp_path):
    (tmp_path / "modules.json").write_text("{not json")
    with pytest.raises(ExportError, match="modules.json"):
        read_sentence_pooling(tmp_path)
