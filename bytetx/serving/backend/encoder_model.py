"""Triton Python-backend model ``bytetx``: the packed-input encoder, one sequence per request.

Triton's dynamic batcher hands ``execute`` the requests of a batch (``allow_ragged_batch`` lets
requests of different lengths share one); their sequences are concatenated without padding and run
once through ``bytetx.InferenceSession``. A malformed request gets an error response naming the problem
and is left out of the batch; the others are answered.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

import bytetx
from bytetx.serving.requests import ModelLimits, accept, pack, split

MODEL_FILE = "model.onnx"
OUTPUTS = ("last_hidden_state", "sentence_embedding")


def _input(request, name: str) -> np.ndarray | None:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy()


def _error(message: str):
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message))


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        folder = Path(args["model_repository"]) / args["model_version"]
        self.session = bytetx.InferenceSession(str(folder / MODEL_FILE))
        self.limits = ModelLimits.from_metadata(self.session.get_modelmeta().custom_metadata_map)
        self.with_types = any(i.name == "token_type_ids" for i in self.session.get_inputs())

    def execute(self, requests: list) -> list:
        accepted, errors = accept(requests, _input, self.limits, OUTPUTS)
        responses = [_error(errors[i]) if i in errors else None for i in range(len(requests))]
        if not accepted:
            return responses
        feeds = pack([a.sequence for a in accepted], self.with_types)
        try:
            hidden, sentence = self.session.run(list(OUTPUTS), feeds)
        except Exception as error:  # noqa: BLE001 - ONNX Runtime's errors fail this batch, not the model
            for a in accepted:
                responses[a.index] = _error(f"inference failed: {error}")
            return responses
        for a, outputs in zip(accepted, split(hidden, sentence, feeds["cu_seqlens"])):
            tensors = [pb_utils.Tensor(name, np.ascontiguousarray(value))
                       for name, value in zip(OUTPUTS, outputs) if name in a.outputs]
            responses[a.index] = pb_utils.InferenceResponse(output_tensors=tensors)
        return responses
