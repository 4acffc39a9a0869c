"""The C++ fuzz harness over the CPU ops (tests/fuzz/ops_fuzzer.cc): built by tests/fuzz/build.sh,
run for a CI-sized budget under libFuzzer with AddressSanitizer, UndefinedBehaviorSanitizer and
LeakSanitizer, and replayed under valgrind --leak-check from a build with the production compiler and
flags. Zero findings is the pass condition: no sanitizer report, no broken invariant, no leak.

Needs clang with libFuzzer (Debian/Ubuntu: ``apt-get install clang libclang-rt-14-dev``); only when it
is missing is the libFuzzer test skipped, with that reason. The valgrind test needs valgrind and a C++
compiler. Budgets: FUZZ_SECONDS of fuzzing (BYTETX_FUZZ_SECONDS overrides it, e.g. for a long run) and
LEAK_CHECK_RUNS random inputs under valgrind; docs/reliability.md has the figures of a long run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "tests" / "fuzz" / "build.sh"
CORPUS = REPO / "tests" / "fuzz" / "corpus"
FUZZ_SECONDS = int(os.environ.get("BYTETX_FUZZ_SECONDS", "20"))
LEAK_CHECK_RUNS = 1000
NO_LIBFUZZER = 77  # build.sh's exit status when no clang with libFuzzer is installed


def _run_fuzzer(command: list[str]) -> subprocess.CompletedProcess:
    """Run a libFuzzer command from a shell that forks it. libFuzzer's -rss_limit_mb reads the peak RSS,
    which Linux carries over from the forking process: started from this test process, whose RSS the
    suite's models grow past the limit, the fuzzer would report an out-of-memory on its first input."""
    return subprocess.run(["/bin/sh", "-c", '"$@"; exit $?', "sh", *command], capture_output=True, text=True,
                          check=False)


def _build(mode: str) -> Path:
    result = subprocess.run([str(BUILD), mode], capture_output=True, text=True, check=False)
    if mode == "libfuzzer" and result.returncode == NO_LIBFUZZER:
        pytest.skip(f"clang with libFuzzer is not installed: {result.stderr.strip()}")
    assert result.returncode == 0, f"tests/fuzz/build.sh {mode} failed:\n{result.stdout}\n{result.stderr}"
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def fuzzer() -> Path:
    return _build("libfuzzer")


def test_seed_corpus_replays_clean(fuzzer, tmp_path):
    """Every committed seed runs through validation and kernels without a finding (a finding's input
    goes to tmp_path, never into the working directory)."""
    result = _run_fuzzer([str(fuzzer), "-runs=0", f"-artifact_prefix={tmp_path}/", str(CORPUS)])
    assert result.returncode == 0, result.stderr[-5000:]
    assert f"{len(list(CORPUS.iterdir()))} files found" in result.stderr


def test_libfuzzer_finds_nothing(fuzzer, tmp_path):
    """FUZZ_SECONDS of coverage-guided fuzzing from the seed corpus (new inputs go to a scratch
    corpus, never into the repository); any crash, sanitizer report, leak, timeout or out-of-memory
    fails the test with libFuzzer's report and the input that caused it."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    command = [
        str(fuzzer), f"-max_total_time={FUZZ_SECONDS}", "-timeout=20", "-rss_limit_mb=2048", "-max_len=4096",
        "-print_final_stats=1", f"-artifact_prefix={tmp_path}/", str(corpus), str(CORPUS),
    ]
    result = _run_fuzzer(command)
    findings = sorted(p.name for p in tmp_path.iterdir() if p.name != "corpus")
    assert result.returncode == 0 and not findings, f"findings {findings}:\n{result.stderr[-8000:]}"
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", result.stderr)
    assert runs and int(runs.group(1)) > 0, result.stderr[-3000:]


def test_no_leaks_or_memory_errors_under_valgrind():
    """The seed corpus and LEAK_CHECK_RUNS random inputs through the production build (GCC's -O3 and
    target clones, as in the shipped library) under valgrind: no invalid access, no leak."""
    if shutil.which("valgrind") is None:
        pytest.skip("valgrind is not installed")
    driver = _build("standalone")
    command = [
        "valgrind", "--quiet", "--leak-check=full", "--show-leak-kinds=definite,indirect,possible",
        "--errors-for-leak-kinds=definite,indirect,possible", "--error-exitcode=99",
        str(driver), f"-runs={LEAK_CHECK_RUNS}", str(CORPUS),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-8000:]
    assert f"ran {len(list(CORPUS.iterdir()))} files and {LEAK_CHECK_RUNS} random inputs" in result.stdout
