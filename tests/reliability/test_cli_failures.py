"""``bytetx-export`` under failure, beyond tests/exporter/test_cli.py: corrupt and unsupported models,
inputs it cannot read, outputs it cannot write or that run out of space, and interruptions. Every case
ends with a clear ``error:`` line (or ``interrupted``), a non-zero exit code, the output path as it was
(absent, or its previous content) and no temporary file left beside it.

Honest failures where possible: permission bits are made to apply by running the CLI without root's
DAC capabilities (``setpriv``; the tests run as root), "disk full" is a 64 KiB tmpfs in a private mount
namespace (``unshare``), "file too large" is RLIMIT_FSIZE, SIGINT and SIGTERM are real signals sent
mid-write. Where the host cannot do one of those the test says so and is skipped; an ENOSPC injected
into the write (always run) covers the same code path.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from bytetx.cli import main
from bytetx.exporter import model_io
from fixtures.failing_writes import FailingWrites

SOURCE = Path(__file__).resolve().parents[1] / "fixtures" / "optimum" / "bert" / "model.onnx"
SCENARIOS = Path(__file__).resolve().parent / "cli_scenarios.py"
PREVIOUS = b"previous model"


def _run(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


def _only(folder: Path, *names: str) -> None:
    """The folder holds exactly these entries: in particular no temporary file."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


def _existing_output(folder: Path) -> Path:
    output = folder / "out.onnx"
    output.write_bytes(PREVIOUS)
    return output


# ---- corrupt and unsupported models ------------------------------------------------------------------

SOURCE_SIZE = SOURCE.stat().st_size
# One corruption of SOURCE, kept small for Hypothesis to print: (kind, offset, argument).
CORRUPTIONS = st.one_of(
    st.tuples(st.just("flip"), st.lists(st.integers(0, SOURCE_SIZE * 8 - 1), min_size=1, max_size=8), st.none()),
    st.tuples(st.just("truncate"), st.integers(0, SOURCE_SIZE - 1), st.none()),
    st.tuples(st.just("zero"), st.integers(0, SOURCE_SIZE - 1), st.integers(1, 64)),
    st.tuples(st.just("insert"), st.integers(0, SOURCE_SIZE - 1), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("move"), st.integers(0, SOURCE_SIZE - 1), st.integers(0, SOURCE_SIZE - 1)),
)


def _corrupt(kind: str, at, argument) -> bytes:
    data = bytearray(SOURCE.read_bytes())
    if kind == "flip":
        for bit in at:
            data[bit // 8] ^= 1 << (bit % 8)
    elif kind == "truncate":
        del data[at:]
    elif kind == "zero":
        data[at : at + argument] = bytes(len(data[at : at + argument]))
    elif kind == "insert":
        data[at:at] = argument
    else:  # 200 bytes from elsewhere in the file
        data[at : at + 200] = data[argument : argument + 200]
    return bytes(data)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(CORRUPTIONS)
@example(("flip", [47], None))  # found: producer_name not UTF-8 passed the checker, then broke the rewrite
def test_corrupt_onnx_files_fail_cleanly_or_verify(tmp_path_factory, capsys, ort_library, corruption):
    """Bit flips, truncations, zeroed, inserted and moved bytes: main() never raises; it either
    fails with a clear error and writes nothing, or (a flip inside a weight) rewrites a model that
    passes verification against the equally corrupted original."""
    folder = tmp_path_factory.mktemp("corrupt")
    (folder / "model.onnx").write_bytes(_corrupt(*corruption))
    code, err = _run(capsys, str(folder / "model.onnx"), "-o", str(folder / "out.onnx"))
    assert code in (0, 1), err
    if code == 1:
        assert any(line.startswith("error: ") for line in err.splitlines()), err
        _only(folder, "model.onnx")
    else:
        _only(folder, "model.onnx", "out.onnx")
        onnx.checker.check_model(onnx.load(str(folder / "out.onnx")))


def _replace_in_serialized(old: bytes, new: bytes) -> bytes:
    data = SOURCE.read_bytes()
    assert old in data and len(old) == len(new)
    return data.replace(old, new, 1)


def test_a_name_that_is_not_utf8(tmp_path, capsys):
    """Found by the corruption test: onnx's checker raised UnicodeDecodeError (a traceback)."""
    (tmp_path / "model.onnx").write_bytes(_replace_in_serialized(b"/embeddings/Gather", b"/embeddings/G\xffther"))
    code, err = _run(capsys, str(tmp_path / "model.onnx"), "-o", str(tmp_path / "out.onnx"))
    assert code == 1 and "is not a valid ONNX model" in err
    _only(tmp_path, "model.onnx")


def test_a_model_that_fails_in_onnx_runtime(tmp_path, capsys, ort_library):
    """Found by the corruption test: a position id out of the embedding table passes every static
    check, and ONNX Runtime's run error escaped verification as a traceback."""
    model = onnx.load(str(SOURCE))
    node = next(n for n in model.graph.node if n.output[0] == "onnx::Slice_46")  # the position ids
    ids = numpy_helper.to_array(node.attribute[0].t).copy()
    ids.flat[3] = 10**6
    node.attribute[0].t.CopyFrom(numpy_helper.from_array(ids))
    onnx.save(model, str(tmp_path / "model.onnx"))
    code, err = _run(capsys, str(tmp_path / "model.onnx"), "-o", str(tmp_path / "out.onnx"))
    assert code == 1
    assert "ONNX Runtime failed while verifying" in err and "the model was not written" in err
    _only(tmp_path, "model.onnx")


def test_inputs_it_cannot_feed(tmp_path, capsys, ort_library):
    """An encoder whose token types input has another name rewrites fine, but verification cannot make
    inputs for it: a clear error pointing at --no-verify (it was a ValueError traceback)."""
    model = onnx.load(str(SOURCE))
    for value in model.graph.input:
        if value.name == "token_type_ids":
            value.name = "segment_ids"
    for node in model.graph.node:
        node.input[:] = ["segment_ids" if name == "token_type_ids" else name for name in node.input]
    onnx.save(model, str(tmp_path / "model.onnx"))
    code, err = _run(capsys, str(tmp_path / "model.onnx"), "-o", str(tmp_path / "out.onnx"))
    assert code == 1 and "cannot verify" in err and "'segment_ids'" in err and "--no-verify" in err
    _only(tmp_path, "model.onnx")
    code, err = _run(capsys, str(tmp_path / "model.onnx"), "-o", str(tmp_path / "out.onnx"), "--no-verify")
    assert code == 0, err
    _only(tmp_path, "model.onnx", "out.onnx")


def test_a_network_without_attention(tmp_path, capsys):
    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], np.zeros(108, np.float32))
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["features"]),
         helper.make_node("GlobalAveragePool", ["features"], ["pooled"])],
        "convnet",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [1, 4, 1, 1])],
        [weight],
    )
    onnx.save(helper.make_model(graph), str(tmp_path / "convnet.onnx"))
    code, err = _run(capsys, str(tmp_path / "convnet.onnx"), "-o", str(tmp_path / "out.onnx"))
    assert code == 1 and "not a BERT-family encoder" in err
    _only(tmp_path, "convnet.onnx")


def test_missing_external_data(tmp_path, capsys):
    """An ONNX file copied without its external-data file (it was a ValidationError traceback)."""
    onnx.save(onnx.load(str(SOURCE)), str(tmp_path / "model.onnx"), save_as_external_data=True,
              location="model.onnx_data", size_threshold=0)
    (tmp_path / "model.onnx_data").unlink()
    code, err = _run(capsys, str(tmp_path / "model.onnx"), "-o", str(tmp_path / "out.onnx"))
    assert code == 1 and "cannot load" in err and "model.onnx_data" in err
    _only(tmp_path, "model.onnx")


@pytest.mark.parametrize("config, expected", [
    ("[]", 'no "model_type" key'),  # was a TypeError traceback
    ('"bert"', 'no "model_type" key'),
    ('{"model_type": "bert"', "is not a valid model config"),
    ('{"model_type": "bert"}', "could not load the model"),  # no weights
])
def test_broken_model_directories(tmp_path, capsys, config, expected):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(config)
    code, err = _run(capsys, str(model_dir), "-o", str(tmp_path / "out.onnx"))
    assert code == 1 and expected in err
    _only(tmp_path, "model")


def test_corrupt_weights(tmp_path, capsys, tiny_model_dirs):
    """A truncated safetensors file (it was a SafetensorError traceback)."""
    model_dir = shutil.copytree(tiny_model_dirs("bert"), tmp_path / "model")
    weights = model_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    code, err = _run(capsys, str(model_dir), "-o", str(tmp_path / "out.onnx"))
    assert code == 1 and "could not load the model" in err
    _only(tmp_path, "model")


# ---- inputs that are not files ------------------------------------------------------------------------

def test_a_fifo_as_source_is_refused_without_opening_it(tmp_path, capsys):
    """Opening a FIFO with no writer would block forever; it is refused as not a regular file."""
    os.mkfifo(tmp_path / "model.onnx")
    code, err = _run(capsys, str(tmp_path / "model.onnx"), "-o", str(tmp_path / "out.onnx"))
    assert code == 1 and "not a regular file" in err
    _only(tmp_path, "model.onnx")


def test_a_folder_named_like_an_onnx_file(tmp_path, capsys):
    (tmp_path / "model.onnx").mkdir()
    code, err = _run(capsys, str(tmp_path / "model.onnx"), "-o", str(tmp_path / "out.onnx"))
    assert code == 1 and "config.json is missing" in err
    _only(tmp_path, "model.onnx")


def test_a_file_given_as_the_output_folder(tmp_path, capsys):
    (tmp_path / "file").write_bytes(b"x")
    code, err = _run(capsys, str(SOURCE), "-o", str(tmp_path / "file" / "out.onnx"), "--no-verify")
    assert code == 1 and "cannot write" in err
    _only(tmp_path, "file")


def test_an_existing_folder_as_the_output(tmp_path, capsys, ort_library):
    (tmp_path / "out.onnx").mkdir()
    (tmp_path / "out.onnx" / "keep").write_bytes(b"x")
    code, err = _run(capsys, str(SOURCE), "-o", str(tmp_path / "out.onnx"), "--no-verify")
    assert code == 1 and "cannot write" in err
    _only(tmp_path, "out.onnx")
    _only(tmp_path / "out.onnx", "keep")


# ---- write failures and interruptions in this process ---------------------------------------------------

def _enospc():
    raise OSError(28, os.strerror(28))


def _keyboard_interrupt():
    raise KeyboardInterrupt


def _sigint():
    os.kill(os.getpid(), signal.SIGINT)  # Python's handler raises KeyboardInterrupt at the next bytecode


@pytest.mark.parametrize("fail, code, message", [
    (_enospc, 1, "cannot write"),
    (_keyboard_interrupt, 130, "interrupted"),
    (_sigint, 130, "interrupted"),
])
def test_failure_in_the_middle_of_the_write(tmp_path, capsys, monkeypatch, ort_library, fail, code, message):
    if fail is _sigint and signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT does not raise KeyboardInterrupt in this process")
    output = _existing_output(tmp_path)
    monkeypatch.setattr(model_io, "os", FailingWrites(fail))
    got, err = _run(capsys, str(SOURCE), "-o", str(output), "--no-verify")
    assert got == code and message in err, err
    if fail is _enospc:
        assert "No space left on device" in err
    assert output.read_bytes() == PREVIOUS
    _only(tmp_path, "out.onnx")


def test_interrupt_between_write_and_rename(tmp_path, capsys, monkeypatch, ort_library):
    output = _existing_output(tmp_path)

    class NoRename(FailingWrites):
        def fdopen(self, *args, **kwargs):
            return os.fdopen(*args, **kwargs)

        def replace(self, *args):
            raise KeyboardInterrupt

    monkeypatch.setattr(model_io, "os", NoRename(None))
    code, err = _run(capsys, str(SOURCE), "-o", str(output), "--no-verify")
    assert code == 130 and "interrupted" in err
    assert output.read_bytes() == PREVIOUS
    _only(tmp_path, "out.onnx")


def test_output_is_complete_and_gets_the_usual_file_mode(tmp_path, capsys, ort_library):
    """A successful write replaces the previous file whole, with the mode a new file gets under the
    umask (mkstemp's 0600 made models unreadable to a server running as another user)."""
    output = _existing_output(tmp_path)
    previous_umask = os.umask(0o027)
    try:
        code, err = _run(capsys, str(SOURCE), "-o", str(output), "--no-verify")
    finally:
        os.umask(previous_umask)
    assert code == 0, err
    assert output.stat().st_mode & 0o777 == 0o640
    onnx.checker.check_model(onnx.load(str(output)))
    _only(tmp_path, "out.onnx")


# ---- real permission, size-limit and signal failures, in a process of their own ------------------------

def _unprivileged_command() -> list[str]:
    """A command prefix under which permission bits apply to this user."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv (util-linux): cannot make permission bits apply")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]


@pytest.fixture(scope="module")
def unprivileged(tmp_path_factory, tiny_model_dirs, ort_library) -> dict:
    """Results of cli_scenarios.py's unprivileged scenarios (one process, ~3 s)."""
    work = tmp_path_factory.mktemp("unprivileged")
    work.chmod(0o755)
    command = _unprivileged_command() + [sys.executable, str(SCENARIOS), "unprivileged", str(work), str(SOURCE),
                                         str(tiny_model_dirs("bert"))]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 and "setpriv" in result.stderr:
        pytest.skip(f"setpriv cannot drop capabilities here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout.strip().splitlines()[-1])
    if os.geteuid() != 0:
        assert results["euid"] != 0
    return results


def test_unreadable_onnx_file(unprivileged):
    result = unprivileged["unreadable_onnx"]
    assert result["code"] == 1 and "cannot read" in result["err"] and "Permission denied" in result["err"]
    assert result["listing"] == ["model.onnx"]


def test_unreadable_config(unprivileged):
    """It was a PermissionError traceback."""
    result = unprivileged["unreadable_config"]
    assert result["code"] == 1 and "cannot read" in result["err"] and "config.json: Permission denied" in result["err"]
    assert result["listing"] == ["hf"]


def test_unreadable_weights(unprivileged):
    result = unprivileged["unreadable_weights"]
    assert result["code"] == 1 and "could not load the model" in result["err"]
    assert result["listing"] == ["hf"]


def test_read_only_output_folder(unprivileged):
    result = unprivileged["read_only_folder"]
    assert result["code"] == 1 and "cannot write" in result["err"] and "Permission denied" in result["err"]
    assert result["inside"] == ["out.onnx"] and result["previous"] == PREVIOUS.decode()


def test_file_size_limit_hit_mid_write(unprivileged):
    """RLIMIT_FSIZE of 32 KiB: the kernel fails the write with EFBIG partway through the model."""
    result = unprivileged["file_too_large"]
    assert result["code"] == 1 and "cannot write" in result["err"] and "File too large" in result["err"]
    assert result["listing"] == ["out.onnx"] and result["previous"] == PREVIOUS.decode()


def test_sigterm_mid_write(unprivileged):
    """SIGTERM (docker stop, systemd, Kubernetes) in the middle of the write: it used to end the process
    on the spot and leave a half-written .out.onnx.*.tmp behind; now it unwinds like Ctrl-C."""
    result = unprivileged["sigterm"]
    assert result["code"] == 143 and "interrupted" in result["err"]
    assert result["listing"] == ["out.onnx"] and result["previous"] == PREVIOUS.decode()


def test_disk_full(tmp_path, ort_library):
    """A real ENOSPC: the output folder is a 64 KiB tmpfs (the model is ~110 KiB), mounted in a private
    mount namespace so that nothing outlives the test."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    full = tmp_path / "full"
    full.mkdir()
    script = ('mount -t tmpfs -o size=64k tmpfs "$1" || exit 97; printf "previous model" > "$1/out.onnx"; '
              'exec "$2" "$3" disk_full "$1" "$4"')
    result = subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c", script, "sh", str(full),
                             sys.executable, str(SCENARIOS), str(SOURCE)], capture_output=True, text=True, check=False)
    if result.returncode == 97 or "unshare:" in result.stderr:
        pytest.skip(f"cannot mount a tmpfs in a private namespace here: {result.stderr.strip()[:200]}")
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["code"] == 1 and "No space left on device" in outcome["err"], outcome["err"]
    assert outcome["listing"] == ["out.onnx"] and outcome["previous"] == PREVIOUS.decode()
