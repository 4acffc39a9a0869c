"""Serving requests on the packed-input model: validate each sequence, concatenate a batch, split the outputs.

Pure NumPy, shared by the Python-backend model and its tests. One request carries one sequence:
``input_ids`` int64 ``[1, L]`` and optionally ``token_type_ids`` of the same shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from bytetx.graph_rewrite.pipeline import MAX_LENGTH_KEY, TYPE_VOCAB_SIZE_KEY, VOCAB_SIZE_KEY


class RequestError(ValueError):
    """A request that cannot be served; the message names the input and the problem."""


@dataclass(frozen=True)
class ModelLimits:
    """What a valid sequence must respect, from the packed model's metadata."""

    vocab_size: int
    max_length: int | None = None  # None: the model has no position table to bound it
    type_vocab_size: int | None = None  # None: the model takes no token types

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]) -> ModelLimits:
        """From ``session.get_modelmeta().custom_metadata_map`` of a packed model (to_packed_inputs)."""
        if VOCAB_SIZE_KEY not in metadata:
            raise ValueError("the model is not a bytetx packed-input model (no bytetx_vocab_size metadata)")
        optional = {key: int(metadata[key]) if key in metadata else None for key in (MAX_LENGTH_KEY, TYPE_VOCAB_SIZE_KEY)}
        return cls(int(metadata[VOCAB_SIZE_KEY]), optional[MAX_LENGTH_KEY], optional[TYPE_VOCAB_SIZE_KEY])


@dataclass
class Sequence:
    ids: np.ndarray  # int64 [L]
    types: np.ndarray | None  # int64 [L]


def check_sequence(ids: np.ndarray | None, types: np.ndarray | None, limits: ModelLimits) -> Sequence:
    """One request's tensors as a Sequence; RequestError names what is wrong with them."""
    if ids is None:
        raise RequestError("input 'input_ids' is missing")
    _check_layout("input_ids", ids)
    if ids.shape[1] == 0:
        raise RequestError("input 'input_ids' is empty (length 0): a sequence needs at least one token")
    if limits.max_length is not None and ids.shape[1] > limits.max_length:
        raise RequestError(f"input 'input_ids' has {ids.shape[1]} tokens; the model's positions allow at most "
                           f"{limits.max_length}")
    _check_range("input_ids", ids, limits.vocab_size, "the vocabulary")
    if types is not None:
        if limits.type_vocab_size is None:
            raise RequestError("input 'token_type_ids' was sent, but this model takes no token types")
        _check_layout("token_type_ids", types)
        if types.shape != ids.shape:
            raise RequestError(f"input 'token_type_ids' has shape {list(types.shape)}, input_ids has "
                               f"{list(ids.shape)}: they must match")
        _check_range("token_type_ids", types, limits.type_vocab_size, "the token types")
    return Sequence(ids[0], None if types is None else types[0])


def _check_layout(name: str, tensor: np.ndarray) -> None:
    if tensor.dtype != np.int64:
        raise RequestError(f"input '{name}' must be INT64, got {tensor.dtype}")
    if tensor.ndim != 2 or tensor.shape[0] != 1:
        raise RequestError(f"input '{name}' must have shape [1, L] (one sequence per request), got "
                           f"{list(tensor.shape)}")


def _check_range(name: str, tensor: np.ndarray, size: int, what: str) -> None:
    bad = np.flatnonzero((tensor[0] < 0) | (tensor[0] >= size))
    if bad.size:
        position = int(bad[0])
        value = int(tensor[0, position])
        why = "is negative" if value < 0 else f"is outside {what} (size {size})"
        raise RequestError(f"input '{name}'[0, {position}] = {value} {why}"
                           + (f"; {bad.size} such tokens" if bad.size > 1 else ""))


@dataclass
class Accepted:
    index: int  # the request's position in the batch
    sequence: Sequence
    outputs: tuple[str, ...]  # what the client asked for


def accept(requests: list, read: Callable[[object, str], np.ndarray | None], limits: ModelLimits,
           all_outputs: tuple[str, ...]) -> tuple[list[Accepted], dict[int, str]]:
    """Check every request of a batch: those to run, and an error message by index for the others.

    ``read(request, name)`` gives an input as an array (None when absent); a request asks for its
    outputs with ``requested_output_names()`` (all of them when it names none), as Triton's do.
    """
    accepted, errors = [], {}
    for index, request in enumerate(requests):
        try:
            sequence = check_sequence(read(request, "input_ids"), read(request, "token_type_ids"), limits)
        except RequestError as error:
            errors[index] = str(error)
            continue
        accepted.append(Accepted(index, sequence, tuple(request.requested_output_names() or all_outputs)))
    return accepted, errors


def pack(sequences: list[Sequence], with_types: bool) -> dict[str, np.ndarray]:
    """The packed model's feeds for ``sequences`` (at least one): concatenated ids [T], ``cu_seqlens``
    int32 [B + 1], ``max_seqlen`` int32 [S] (only its length matters), token types [T] (zeros where a
    sequence brought none) when the model takes them."""
    lengths = np.array([len(s.ids) for s in sequences])
    feeds = {
        "input_ids": np.concatenate([s.ids for s in sequences]),
        "cu_seqlens": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32),
        "max_seqlen": np.zeros(int(lengths.max()), np.int32),
    }
    if with_types:
        feeds["token_type_ids"] = np.concatenate(
            [s.types if s.types is not None else np.zeros(len(s.ids), np.int64) for s in sequences])
    return feeds


def split(hidden: np.ndarray, sentence: np.ndarray, cu_seqlens: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per sequence: its tokens' hidden states [1, L, H] and its sentence embedding [1, H]."""
    return [(hidden[None, start:end], sentence[b:b + 1])
            for b, (start, end) in enumerate(pairwise(cu_seqlens))]
