"""One session shared by many threads: every output identical to a single-threaded run, bad requests
from some threads never disturbing the others, and no memory growth across repeated runs.

Figures (stated in docs/reliability.md): 8 threads x 250 runs of 48 distinct ragged batches of the
tiny BERT (2,000 concurrent runs); 8 threads x 150 op-pipeline runs with every fourth request
malformed; 1,000 + 1,000 runs for the memory check (bound RSS_GROWTH_BOUND); 8 threads creating 300
sessions at once for the registration check (bound SESSION_GROWTH_BOUND). RSS is read after
malloc_trim, so that allocator fragmentation does not pass for growth.
"""

from __future__ import annotations

import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime as ort
import pytest
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

import bytetx
from bytetx.exporter.verify import make_feeds, ragged_lengths, ragged_mask

import op_models
from fixtures import reference

THREADS = 8
RUNS_PER_THREAD = 250
DISTINCT_BATCHES = 48


def _bert_batches(loaded) -> list[dict[str, np.ndarray]]:
    """Ragged batches of 1 to 16 sequences, max length 1 to 64, right/left/hole padding, some rows empty."""
    rng = np.random.default_rng(2024)
    batches = []
    for i in range(DISTINCT_BATCHES):
        batch = int(rng.integers(1, 17))
        max_length = int(rng.integers(1, 65))
        lengths = ragged_lengths(batch, max_length, rng)
        if batch > 2 and i % 3 == 0:
            lengths[1] = 0  # an all-padding row
        mask = ragged_mask(lengths, max_length, ("right", "left", "holes")[i % 3], seed=i)
        config = loaded.config
        batches.append(make_feeds(loaded.input_names, mask, config.vocab_size, loaded.pad_token_id,
                                  config.type_vocab_size, seed=i))
    return batches


def _session(model: bytes, threads: int | None = None) -> ort.InferenceSession:
    options = bytetx.session_options()
    if threads is not None:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def test_shared_session_matches_single_threaded_run(tiny_bert):
    loaded, _, rewritten = tiny_bert
    model = rewritten.SerializeToString()
    batches = _bert_batches(loaded)
    single = _session(model, threads=1)
    expected = [single.run(None, feeds) for feeds in batches]

    shared = _session(model)  # ONNX Runtime's default intra-op pool, shared by all callers
    start = threading.Barrier(THREADS)

    def worker(thread: int) -> list[int]:
        order = np.random.default_rng(thread).integers(0, DISTINCT_BATCHES, RUNS_PER_THREAD)
        start.wait()  # all threads inside the session at once
        mismatches = []
        for index in order:
            got = shared.run(None, batches[index])
            if not all(np.array_equal(g, e) for g, e in zip(got, expected[index])):
                mismatches.append(int(index))
        return mismatches

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(worker, range(THREADS)))
    assert results == [[]] * THREADS, "outputs differ from the single-threaded run"


def _pipeline_request(seed: int):
    """(feeds, expected output or None for a malformed request) for the op pipeline, 2 heads of 16."""
    rng = np.random.default_rng(seed)
    batch, seq_len = int(rng.integers(1, 9)), int(rng.integers(1, 70))
    mask = (rng.random((batch, seq_len)) < rng.uniform(0.1, 1.0, (batch, 1))).astype(np.int64)
    qkv = rng.standard_normal((batch, seq_len, 96)).astype(np.float32)
    bias = rng.standard_normal(96).astype(np.float32)
    if seed % 4 == 3:  # malformed: a bias one column short
        return {"qkv": qkv, "qkv_bias": bias[:95], "attention_mask": mask}, None
    return {"qkv": qkv, "qkv_bias": bias, "attention_mask": mask}, reference.padded_attention(qkv, bias, mask, 2)


def test_bad_requests_do_not_disturb_concurrent_good_ones(ort_library):
    session = _session(op_models.pipeline_model(2))
    requests = [_pipeline_request(seed) for seed in range(32)]
    start = threading.Barrier(THREADS)

    def worker(thread: int) -> tuple[int, int]:
        start.wait()
        served = refused = 0
        for i in range(150):
            feeds, expected = requests[(thread * 7 + i) % len(requests)]
            if expected is None:
                with pytest.raises(InvalidArgument, match=r"input 'qkv_bias' must have shape \[3 \* H\] = \[96\]"):
                    session.run(None, feeds)
                refused += 1
            else:
                (output,) = session.run(None, feeds)
                np.testing.assert_allclose(output, expected, atol=1e-5, rtol=1e-4)
                served += 1
        return served, refused

    with ThreadPoolExecutor(THREADS) as pool:
        counts = list(pool.map(worker, range(THREADS)))
    assert sum(s for s, _ in counts) > 0 and sum(r for _, r in counts) > 0


RSS_GROWTH_BOUND = 8 * 2**20  # bytes over 1,000 runs after a 1,000-run warm-up


def _rss() -> int:
    """Resident memory in bytes, after glibc has returned its free heap pages (malloc_trim): what
    is left is memory in use, not the fragmentation of the per-thread malloc arenas that creating
    sessions and thread pools from 8 threads leaves behind (several MiB, varying from run to run)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except AttributeError:  # not glibc
        pass
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_no_memory_growth_over_a_thousand_runs(tiny_bert):
    """1,000 runs of mixed ragged batches (and failed runs) after a warm-up of as many: RSS grows by
    less than RSS_GROWTH_BOUND (8 MiB, i.e. < 8 KiB a run; a leak of one [T, H] float buffer per run
    would exceed it within the first hundred runs). Warm-up first, because ONNX Runtime's arena and
    the kernels' per-thread scratch grow to the largest batch once and are then reused."""
    loaded, _, rewritten = tiny_bert
    session = _session(rewritten.SerializeToString())
    batches = _bert_batches(loaded)
    ops = _session(op_models.pipeline_model(2))
    requests = [_pipeline_request(seed) for seed in range(8)]

    def runs(count: int) -> None:
        for i in range(count):
            session.run(None, batches[i % len(batches)])
            feeds, expected = requests[i % len(requests)]
            if expected is None:
                with pytest.raises(InvalidArgument):
                    ops.run(None, feeds)
            else:
                ops.run(None, feeds)

    runs(1000)
    before = _rss()
    runs(1000)
    growth = _rss() - before
    assert growth < RSS_GROWTH_BOUND, f"RSS grew by {growth / 2**20:.1f} MiB over 1,000 runs"


SESSION_GROWTH_BOUND = 4 * 2**20  # bytes over 300 sessions after a 100-session warm-up


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_session_churn_from_many_threads(ort_library):
    """Sessions created, run and dropped by 8 threads at once (registration is serialized by the
    library): all serve correctly, and 300 of them grow RSS by less than 4 MiB (~14 KiB a session; a
    leaked session of even this tiny model costs far more). The library keeps one small op-domain
    object per registration for the life of the process (plugins/ort/register_ops.cc: ONNX Runtime
    never says when a session stops using it); that is ~0.2 KiB a session, well inside."""
    model = op_models.pipeline_model(2)
    feeds, expected = _pipeline_request(0)

    def create_and_run(_: int) -> None:
        session = _session(model)
        (output,) = session.run(None, feeds)
        np.testing.assert_allclose(output, expected, atol=1e-5, rtol=1e-4)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(create_and_run, range(100)))
        before = _rss()
        list(pool.map(create_and_run, range(300)))
    growth = _rss() - before
    assert growth < SESSION_GROWTH_BOUND, f"RSS grew by {growth / 2**20:.2f} MiB over 300 sessions"
