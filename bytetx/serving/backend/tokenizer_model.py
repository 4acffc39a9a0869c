"""Triton Python-backend model ``bytetx_tokenizer``: ``text`` (UTF-8 bytes, one per request) to the
model's token ids with its own tokenizer (``tokenizers``), truncated at the model's maximum length.

The ensemble ``bytetx_text`` feeds its output to ``bytetx``. Text that is not UTF-8 gets an error
response naming the byte; the other requests of the batch are answered.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils
from tokenizers import Tokenizer

TOKENIZER_FILE = "tokenizer.json"
SETTINGS_FILE = "tokenizer_settings.json"


def _text(request) -> str:
    """The request's one text, decoded; ValueError names what is wrong."""
    tensor = pb_utils.get_input_tensor_by_name(request, "text")
    values = tensor.as_numpy() if tensor is not None else None
    if values is None or values.size != 1:
        raise ValueError(f"input 'text' must hold exactly one string, got shape {None if values is None else list(values.shape)}")
    value = values.reshape(-1)[0]
    if isinstance(value, str):
        return value
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"input 'text' is not valid UTF-8: byte 0x{error.object[error.start]:02x} at offset "
                         f"{error.start}") from None


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        folder = Path(args["model_repository"])
        settings = json.loads((folder / SETTINGS_FILE).read_text())
        self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(int(settings["max_length"]))

    def execute(self, requests: list) -> list:
        responses = [None] * len(requests)
        texts = {}
        for index, request in enumerate(requests):
            try:
                texts[index] = _text(request)
            except ValueError as error:
                responses[index] = pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error)))
        encodings = self.tokenizer.encode_batch(list(texts.values())) if texts else []
        for index, encoding in zip(texts, encodings):
            ids = np.asarray(encoding.ids, dtype=np.int64)[None]
            responses[index] = pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("input_ids", ids)])
        return responses
