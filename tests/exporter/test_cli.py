"""``bytetx-export``: a clear error and exit code 1 for bad input, and never a half-written output."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from bytetx.cli import main

OPTIMUM_BERT = Path(__file__).resolve().parents[1] / "fixtures" / "optimum" / "bert" / "model.onnx"


def _run(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


def test_rewrites_and_verifies_a_model_directory(tiny_model_dirs, tmp_path, capsys, ort_library):
    output = tmp_path / "roberta.bytetx.onnx"
    code, err = _run(capsys, str(tiny_model_dirs("roberta")), "-o", str(output))
    assert code == 0, err
    assert "vs Hugging Face PyTorch" in err and "FAILED" not in err
    assert any(n.op_type == "FusedMHA" for n in onnx.load(str(output)).graph.node)


def test_rewrites_an_onnx_file_into_the_current_folder(tmp_path, capsys, monkeypatch, ort_library):
    monkeypatch.chdir(tmp_path)
    code, err = _run(capsys, str(OPTIMUM_BERT))
    assert code == 0, err
    assert (tmp_path / "model.bytetx.onnx").is_file()
    assert "vs original ONNX" in err


def test_a_model_type_without_a_config_is_accepted_by_structure(tiny_model_dirs, tmp_path, capsys, ort_library):
    output = tmp_path / "camembert.bytetx.onnx"
    code, err = _run(capsys, str(tiny_model_dirs("camembert")), "-o", str(output))
    assert code == 0, err
    assert "camembert" in err and "vs Hugging Face PyTorch" in err and "FAILED" not in err
    assert [n.op_type for n in onnx.load(str(output)).graph.node].count("FusedMHA") == 2


def test_a_model_accepted_by_structure_cannot_skip_verification(tiny_model_dirs, tmp_path, capsys):
    code, err = _run(capsys, str(tiny_model_dirs("camembert")), "--no-verify", "-o", str(tmp_path / "out.onnx"))
    assert code == 1
    assert "'camembert' has no export config of its own" in err and "--no-verify cannot be used" in err
    assert list(tmp_path.iterdir()) == []


def test_a_decoder_is_refused_where_the_rewrite_stops(tmp_path, capsys, ort_library):
    from transformers import GPT2Config, GPT2Model

    GPT2Model(GPT2Config(n_embd=32, n_layer=1, n_head=4, vocab_size=64, n_positions=32)).save_pretrained(tmp_path / "gpt2")
    code, err = _run(capsys, str(tmp_path / "gpt2"), "-o", str(tmp_path / "out.onnx"))
    assert code == 1
    assert "attention block 0" in err
    assert not (tmp_path / "out.onnx").exists()


def test_a_model_without_token_ids_is_refused_with_the_supported_list(tmp_path, capsys):
    from transformers import ViTConfig, ViTModel

    ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
                       image_size=32, patch_size=16)).save_pretrained(tmp_path / "vit")
    code, err = _run(capsys, str(tmp_path / "vit"), "-o", str(tmp_path / "out.onnx"))
    assert code == 1
    assert "'vit' is not a BERT-family encoder" in err and "input_ids" in err and "xlm-roberta" in err
    assert not (tmp_path / "out.onnx").exists()


def test_a_config_that_transformers_cannot_load_is_refused(tmp_path, capsys):
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    code, err = _run(capsys, str(tmp_path), "-o", str(tmp_path / "out.onnx"))
    assert code == 1
    assert f"could not load the model in {tmp_path}" in err


def test_truncated_onnx_file(tmp_path, capsys):
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(OPTIMUM_BERT.read_bytes()[:5000])
    code, err = _run(capsys, str(truncated), "-o", str(tmp_path / "out.onnx"))
    assert code == 1
    assert "truncated" in err
    assert not (tmp_path / "out.onnx").exists()


def test_missing_source(tmp_path, capsys):
    code, err = _run(capsys, str(tmp_path / "nowhere.onnx"))
    assert code == 1 and "no such file" in err


def test_unwritable_output_leaves_nothing_behind(tmp_path, capsys, ort_library):
    if os.geteuid() == 0:
        target_folder = tmp_path / "missing" / "folder"  # root may write anywhere; a missing folder fails for all
    else:
        target_folder = tmp_path / "read-only"
        target_folder.mkdir()
        target_folder.chmod(0o500)
    code, err = _run(capsys, str(OPTIMUM_BERT), "-o", str(target_folder / "out.onnx"), "--no-verify")
    assert code == 1 and "cannot write" in err
    assert not target_folder.exists() or list(target_folder.iterdir()) == []


def test_existing_output_is_untouched_when_the_rewrite_fails(tmp_path, capsys):
    output = tmp_path / "out.onnx"
    output.write_bytes(b"previous model")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07garbage")
    code, _ = _run(capsys, str(broken), "-o", str(output))
    assert code == 1
    assert output.read_bytes() == b"previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.onnx", "out.onnx"]


def test_console_script_is_installed(tmp_path):
    script = shutil.which("bytetx-export", path=str(Path(sys.executable).parent))
    assert script is not None
    result = subprocess.run([script, "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "padding-free" in result.stdout
