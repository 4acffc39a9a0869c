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


def test_unsupported_architecture_names_the_supported_list(tmp_path, capsys):
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    code, err = _run(capsys, str(tmp_path), "-o", str(tmp_path / "out.onnx"))
    assert code == 1
    assert "'gpt2' is not supported" in err and "albert" in err and "xlm-roberta" in err


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
