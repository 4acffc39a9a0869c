"""bytetx-serve end to end: the real tritonserver of nvidia-pytriton with its Python backend, on loopback
ports chosen at run time, serving the bundled all-MiniLM-L6-v2.

Ragged requests from several threads, malformed ones mixed in, against Hugging Face PyTorch (1e-4,
float32); every good request is answered exactly once with its own result, every bad one with an error
naming the problem; the server keeps serving and stops on SIGTERM to its PID.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from bytetx.exporter.verify import FP32_TOLERANCE, pool

from bytetx.serving.server import free_local_ports

STARTUP_TIMEOUT_S = 300
STOP_TIMEOUT_S = 60
VOCAB = 30522
THREADS = 8
# Lengths 1 and the maximum (512) on purpose, the rest ragged.
GOOD_LENGTHS = [1, 2, 17, 97, 512, 255, 3, 64] + list(np.random.default_rng(0).integers(1, 200, size=40))
BAD_REQUESTS = {
    "int32": ("INT32", np.ones((1, 4), np.int32), None, "data-type is 'INT32', but model 'bytetx' expects 'INT64'"),
    "rank 3": ("INT64", np.ones((1, 1, 4), np.int64), None, "unexpected shape for input 'input_ids'"),
    "empty": ("INT64", np.zeros((1, 0), np.int64), None, "empty (length 0)"),
    "too long": ("INT64", np.ones((1, 513), np.int64), None, "513 tokens; the model's positions allow at most 512"),
    "vocabulary": ("INT64", np.array([[101, VOCAB, 102]]), None, f"= {VOCAB} is outside the vocabulary"),
    "negative": ("INT64", np.array([[101, -7, 102]]), None, "= -7 is negative"),
    "type shape": ("INT64", np.array([[101, 102]]), np.zeros((1, 3), np.int64), "'token_type_ids' has shape [1, 3]"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    http, grpc, metrics = free_local_ports(3)
    log = tmp_path_factory.mktemp("serve") / "stderr.log"
    command = [str(Path(sys.executable).parent / "bytetx-serve"), "--http-port", str(http), "--grpc-port", str(grpc),
               "--metrics-port", str(metrics), "--max-queue-delay-us", "20000"]
    with open(log, "w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
    first_line: list[str] = []
    reader = threading.Thread(target=lambda: first_line.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(STARTUP_TIMEOUT_S)
    try:
        assert first_line and first_line[0].startswith("bytetx-serve: serving bytetx, bytetx_text"), log.read_text()
        assert f"http://127.0.0.1:{http} (HTTP)" in first_line[0]
        yield {"http": http, "grpc": grpc, "process": process}
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def reference(minilm_dir):
    """Hugging Face PyTorch outputs for the good requests: one right-padded batch, sliced per sequence."""
    from bytetx.exporter import load_hf_model
    from bytetx.exporter.verify import run_torch

    rng = np.random.default_rng(1)
    sequences = [rng.integers(1000, VOCAB, size=n) for n in GOOD_LENGTHS]
    types = [rng.integers(0, 2, size=n) if i % 3 == 0 else None for i, n in enumerate(GOOD_LENGTHS)]
    width = max(GOOD_LENGTHS)
    mask = (np.arange(width)[None, :] < np.array(GOOD_LENGTHS)[:, None]).astype(np.int64)
    ids = np.zeros(mask.shape, np.int64)
    type_ids = np.zeros(mask.shape, np.int64)
    for row, (sequence, type_row) in enumerate(zip(sequences, types)):
        ids[row, :len(sequence)] = sequence
        if type_row is not None:
            type_ids[row, :len(type_row)] = type_row
    loaded = load_hf_model(minilm_dir)
    hidden = run_torch(loaded.model, {"input_ids": ids, "attention_mask": mask, "token_type_ids": type_ids},
                       ("last_hidden_state",))["last_hidden_state"]
    sentence = pool(hidden, mask, "mean", normalize=True)
    return [(s, t, hidden[row, :len(s)], sentence[row]) for row, (s, t) in enumerate(zip(sequences, types))]


def _infer(client, grpc_module, request_id: str, dtype: str, ids: np.ndarray, types: np.ndarray | None):
    inputs = [grpc_module.InferInput("input_ids", list(ids.shape), dtype)]
    inputs[0].set_data_from_numpy(ids)
    if types is not None:
        inputs.append(grpc_module.InferInput("token_type_ids", list(types.shape), "INT64"))
        inputs[1].set_data_from_numpy(types)
    return client.infer("bytetx", inputs, request_id=request_id)


def test_ragged_concurrent_requests_with_malformed_ones_mixed_in(server, reference):
    from tritonclient import grpc
    from tritonclient.utils import InferenceServerException

    work = [("good", i) for i in range(len(reference))]
    bad = [("bad", name) for name in BAD_REQUESTS]
    for position, item in enumerate(bad):  # spread the bad requests through the stream
        work.insert(position * len(work) // len(bad), item)
    answers: dict[str, list] = {}
    lock = threading.Lock()
    local = threading.local()

    def send(item):
        kind, key = item
        if not hasattr(local, "client"):
            local.client = grpc.InferenceServerClient(f"127.0.0.1:{server['grpc']}")
        request_id = f"{kind}-{key}"
        if kind == "good":
            ids, types = reference[key][0][None], None if reference[key][1] is None else reference[key][1][None]
            dtype = "INT64"
        else:
            dtype, ids, types, _ = BAD_REQUESTS[key]
        try:
            result = _infer(local.client, grpc, request_id, dtype, ids, types)
            answer = (result.get_response().id, result.as_numpy("last_hidden_state"),
                      result.as_numpy("sentence_embedding"))
        except InferenceServerException as error:
            answer = error.message()
        with lock:
            answers.setdefault(request_id, []).append(answer)

    with ThreadPoolExecutor(THREADS) as pool_:
        list(pool_.map(send, work))

    assert sorted(answers) == sorted(f"{k}-{key}" for k, key in work)
    assert all(len(a) == 1 for a in answers.values()), "every request answered exactly once"
    for index, (sequence, _, hidden, sentence) in enumerate(reference):
        answer = answers[f"good-{index}"][0]
        assert not isinstance(answer, str), f"good request {index} (length {len(sequence)}) failed: {answer}"
        response_id, got_hidden, got_sentence = answer
        assert response_id == f"good-{index}"
        assert got_hidden.shape == (1, len(sequence), 384) and got_sentence.shape == (1, 384)
        assert np.abs(got_hidden[0] - hidden).max() <= FP32_TOLERANCE, f"length {len(sequence)}"
        assert np.abs(got_sentence[0] - sentence).max() <= FP32_TOLERANCE, f"length {len(sequence)}"
    for name, (_, _, _, message) in BAD_REQUESTS.items():
        answer = answers[f"bad-{name}"][0]
        assert isinstance(answer, str) and message in answer, f"{name}: {answer}"

    client = grpc.InferenceServerClient(f"127.0.0.1:{server['grpc']}")
    stats = client.get_inference_statistics("bytetx", as_json=True)["model_stats"][0]
    # Requests were batched together (ragged, unpadded): fewer executions than inferences.
    assert int(stats["execution_count"]) < int(stats["inference_count"])
    assert client.is_server_ready()


def test_text_ensemble_matches_sentence_transformers(server, minilm_dir):
    from sentence_transformers import SentenceTransformer
    from tritonclient import http
    from tritonclient.utils import InferenceServerException

    texts = ["padding-free from the request to the response", "", "a", "word " * 400]
    client = http.InferenceServerClient(f"127.0.0.1:{server['http']}")
    embeddings = []
    for text in texts:
        tensor = http.InferInput("text", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[text.encode()]], dtype=object))
        embeddings.append(client.infer("bytetx_text", [tensor]).as_numpy("sentence_embedding")[0])
    expected = SentenceTransformer(str(minilm_dir), device="cpu").encode(texts)
    assert np.abs(np.stack(embeddings) - expected).max() <= FP32_TOLERANCE
    tensor = http.InferInput("text", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[b"caf\xe9"]], dtype=object))
    with pytest.raises(InferenceServerException, match="not valid UTF-8: byte 0xe9 at offset 3"):
        client.infer("bytetx_text", [tensor])
    assert client.is_server_ready()


def test_stops_on_sigterm_to_its_pid(server):
    process = server["process"]
    process.terminate()
    assert process.wait(STOP_TIMEOUT_S) == 0
    for port in (server["http"], server["grpc"]):
        with socket.socket() as probe:
            # Free again (past connections may linger in TIME_WAIT): tritonserver stopped too.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))
