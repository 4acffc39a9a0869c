"""Triton Python-backend model of serving_benchmark.py's padded peer: the plain export after ONNX Runtime's
own BERT fusions (``optimize_model``), each dynamic batch right-padded to its longest request, as a
server without bytetx runs it.

Same client interface as bytetx's encoder model (``input_ids`` INT64 [1, L], optional
``token_type_ids``; ``last_hidden_state`` [1, L, H] and ``sentence_embedding`` [1, H]), the same
request checks, and the model's own pooling from ``settings.json`` (written by the benchmark).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

from bytetx.serving.requests import ModelLimits, accept

OUTPUTS = ("last_hidden_state", "sentence_embedding")


def _input(request, name: str) -> np.ndarray | None:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy()


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        folder = Path(args["model_repository"]) / args["model_version"]
        settings = json.loads((folder / "settings.json").read_text())
        self.session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.limits = ModelLimits(**settings["limits"])
        self.pad_token_id = settings["pad_token_id"]
        self.pooling = settings["pooling"]
        self.normalize = settings["normalize"]

    def execute(self, requests: list) -> list:
        accepted, errors = accept(requests, _input, self.limits, OUTPUTS)
        responses = [pb_utils.InferenceResponse(error=pb_utils.TritonError(errors[i])) if i in errors else None
                     for i in range(len(requests))]
        if not accepted:
            return responses
        lengths = [len(a.sequence.ids) for a in accepted]
        ids = np.full((len(accepted), max(lengths)), self.pad_token_id, np.int64)
        types = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        for row, a in enumerate(accepted):
            ids[row, :lengths[row]] = a.sequence.ids
            mask[row, :lengths[row]] = 1
            if a.sequence.types is not None:
                types[row, :lengths[row]] = a.sequence.types
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        hidden = self.session.run(["last_hidden_state"], {k: v for k, v in feeds.items() if k in self.input_names})[0]
        sentence = self._pool(hidden, mask)
        for row, a in enumerate(accepted):
            outputs = {"last_hidden_state": hidden[row:row + 1, :lengths[row]], "sentence_embedding": sentence[row:row + 1]}
            responses[a.index] = pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor(name, np.ascontiguousarray(outputs[name])) for name in OUTPUTS if name in a.outputs])
        return responses

    def _pool(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        if self.normalize:
            pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32)
