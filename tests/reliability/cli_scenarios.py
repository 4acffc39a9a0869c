"""Failure scenarios of ``bytetx-export`` that need a process of their own, run by
test_cli_failures.py as ``python cli_scenarios.py unprivileged WORKDIR SOURCE_ONNX TINY_MODEL_DIR`` and
``python cli_scenarios.py disk_full TMPFS_DIR SOURCE_ONNX`` (inside a private mount namespace).

The tests run as root, which reads and writes through any permission bits; test_cli_failures.py
starts this script without the capabilities that allow it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH,
via ``setpriv``), so that permission bits apply as they do to any service account. Each scenario
calls the CLI's ``main()`` and records its exit code, its stderr and what its folder holds afterwards;
the results are printed as one JSON object. ``file_too_large`` lowers RLIMIT_FSIZE so that the
kernel fails the write with EFBIG after 32 KiB (Python ignores SIGXFSZ), and ``sigterm`` sends the
process SIGTERM in the middle of the write; it runs last, since without the CLI's handler the
signal ends the process.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import shutil
import signal
import sys
from pathlib import Path

from bytetx.cli import main
from bytetx.exporter import model_io

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, as its conftest.py does for the tests
from fixtures.failing_writes import FailingWrites  # noqa: E402


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def run(name: str, folder: Path, *args: str) -> dict:
    """main(args) in ``folder``; an exception escaping main() is recorded, not raised."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            code = main(list(args))
    except Exception as error:  # noqa: BLE001 - a finding, reported by the test
        code, err = None, io.StringIO(f"main() raised {error!r}")
    return {"code": code, "err": err.getvalue(), "listing": listing(folder)}


def fresh(work: Path, name: str) -> Path:
    folder = work / name
    folder.mkdir()
    return folder


def unprivileged(work: Path, source: Path, model_dir: Path) -> None:
    results = {"euid": os.geteuid()}

    folder = fresh(work, "unreadable_onnx")
    model = folder / "model.onnx"
    shutil.copy(source, model)
    model.chmod(0o000)
    results["unreadable_onnx"] = run("unreadable_onnx", folder, str(model), "-o", str(folder / "out.onnx"))

    folder = fresh(work, "unreadable_config")
    hf = folder / "hf"
    shutil.copytree(model_dir, hf)
    (hf / "config.json").chmod(0o000)
    results["unreadable_config"] = run("unreadable_config", folder, str(hf), "-o", str(folder / "out.onnx"))

    folder = fresh(work, "unreadable_weights")
    hf = folder / "hf"
    shutil.copytree(model_dir, hf)
    for weights in hf.glob("*.safetensors"):
        weights.chmod(0o000)
    results["unreadable_weights"] = run("unreadable_weights", folder, str(hf), "-o", str(folder / "out.onnx"))

    folder = fresh(work, "read_only_folder")
    target = folder / "ro"
    target.mkdir()
    (target / "out.onnx").write_bytes(b"previous model")
    target.chmod(0o555)
    results["read_only_folder"] = run("read_only_folder", folder, str(source), "-o", str(target / "out.onnx"),
                                      "--no-verify")
    results["read_only_folder"]["inside"] = listing(target)
    results["read_only_folder"]["previous"] = (target / "out.onnx").read_bytes().decode()
    target.chmod(0o755)

    folder = fresh(work, "file_too_large")
    (folder / "out.onnx").write_bytes(b"previous model")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (32 * 1024, hard))
    try:
        results["file_too_large"] = run("file_too_large", folder, str(source), "-o", str(folder / "out.onnx"),
                                        "--no-verify")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    results["file_too_large"]["previous"] = (folder / "out.onnx").read_bytes().decode()

    folder = fresh(work, "sigterm")
    (folder / "out.onnx").write_bytes(b"previous model")
    model_io.os = FailingWrites(lambda: os.kill(os.getpid(), signal.SIGTERM))
    try:
        results["sigterm"] = run("sigterm", folder, str(source), "-o", str(folder / "out.onnx"), "--no-verify")
    finally:
        model_io.os = os
    results["sigterm"]["previous"] = (folder / "out.onnx").read_bytes().decode()

    print(json.dumps(results))


def disk_full(full: Path, source: Path) -> None:
    """``full`` is a 64 KiB tmpfs holding out.onnx ("previous model"); the model is larger."""
    result = run("disk_full", full, str(source), "-o", str(full / "out.onnx"), "--no-verify")
    result["previous"] = (full / "out.onnx").read_bytes().decode()
    print(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1] == "unprivileged":
        unprivileged(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        disk_full(Path(sys.argv[2]), Path(sys.argv[3]))
