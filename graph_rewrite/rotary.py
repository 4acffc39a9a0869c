"""Rotary embeddings of Q and K (ModernBERT's), recognized on the head rows and checked by evaluation.

transformers applies them as ``x * cos + rotate_half(x) * sin`` with ``rotate_half(x) =
concat(-x[..., d/2:], x[..., :d/2])`` and ``cos``, ``sin`` of ``position * inv_freq`` repeated twice
along the head, positions numbered from the start of the padded row. The Add and its two products
are matched; cos and sin are evaluated (probe.py) and must equal those of the one constant of
``d / 2`` frequencies found among their inputs, which FusedMHA then takes as ``rotary_frequencies``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_graphsurgeon as gs

from .base import constant_value, producer
from .probe import ProbeError, RowProbe, ancestor_constants, squeeze_leading

# The longest length covers angles far from 0 (where a wrong frequency would show); the others
# check that the angles grow with the position from the row's start.
_PROBE_LENGTHS = (513, 37, 1)
# float32 cos and sin of the same float32 angle, from ONNX Runtime and NumPy.
_COS_SIN_ATOL = 1e-5
_HEAD_AXES = (-1, 3)


class NotARotary(ValueError):
    """cos and sin are not rotary embeddings FusedMHA can compute; the message says why."""


@dataclass(frozen=True)
class Rotation:
    """``x * cos + rotate_half(x) * sin`` on the head rows ``x`` [B, heads, S, d]."""

    x: gs.Tensor
    cos: gs.Tensor
    sin: gs.Tensor


def _skip_casts(tensor: gs.Tensor) -> gs.Tensor:
    node = producer(tensor)
    while node is not None and node.op in ("Cast", "Identity"):
        tensor = node.inputs[0]
        node = producer(tensor)
    return tensor


def _last_axis_slice(node: gs.Node | None) -> tuple[gs.Tensor, int, int] | None:
    """(data, start, end) of a Slice over the head axis with step 1."""
    if node is None or node.op != "Slice" or len(node.inputs) < 4:
        return None
    starts, ends, axes = (constant_value(t) for t in node.inputs[1:4])
    steps = constant_value(node.inputs[4]) if len(node.inputs) > 4 and node.inputs[4].name else np.ones(1)
    if any(v is None or v.size != 1 for v in (starts, ends, axes, steps)) or int(steps.item()) != 1:
        return None
    if int(axes.item()) not in _HEAD_AXES:
        return None
    return node.inputs[0], int(starts.item()), int(ends.item())


def _rotate_half_source(tensor: gs.Tensor) -> gs.Tensor | None:
    """``y`` where ``tensor = concat(-y[..., d/2:], y[..., :d/2])``, else None."""
    concat = producer(tensor)
    if concat is None or concat.op != "Concat" or concat.attrs.get("axis") not in _HEAD_AXES or len(concat.inputs) != 2:
        return None
    neg = producer(concat.inputs[0])
    if neg is None or neg.op != "Neg":
        return None
    upper, lower = _last_axis_slice(producer(neg.inputs[0])), _last_axis_slice(producer(concat.inputs[1]))
    if upper is None or lower is None or _skip_casts(upper[0]) is not _skip_casts(lower[0]):
        return None
    y = _skip_casts(upper[0])
    d = y.shape[-1] if y.shape else None
    if not isinstance(d, int) or d % 2:
        return None
    if upper[1] != d // 2 or upper[2] < d or lower[1] != 0 or lower[2] != d // 2:
        return None
    return y


def match_rotation(add: gs.Node) -> Rotation | None:
    """The rotation that ``add`` finishes, in any operand order, else None."""
    if add.op != "Add":
        return None
    products = [producer(t) for t in add.inputs]
    if any(p is None or p.op != "Mul" for p in products):
        return None
    for plain, rotated in (products, products[::-1]):
        for half_index in (0, 1):
            y = _rotate_half_source(rotated.inputs[half_index])
            if y is None:
                continue
            for x_index in (0, 1):
                if _skip_casts(plain.inputs[x_index]) is y:
                    return Rotation(plain.inputs[x_index], plain.inputs[1 - x_index], rotated.inputs[1 - half_index])
    return None


def _frequency_candidates(tensor: gs.Tensor, half: int) -> list[np.ndarray]:
    """The float constants of ``half`` values among the inputs of ``tensor``."""
    return [v.astype(np.float32).reshape(-1) for v in ancestor_constants(tensor) if v.dtype.kind == "f" and v.size == half]


def rotary_frequencies(graph: gs.Graph, rotation: Rotation, head_size: int) -> np.ndarray:
    """The ``head_size / 2`` frequencies whose cos and sin ``rotation`` applies; NotARotary otherwise."""
    half = head_size // 2
    candidates = _frequency_candidates(rotation.cos, half)
    if not candidates:
        raise NotARotary(f"no constant of {half} frequencies (head size / 2) among the inputs of '{rotation.cos.name}'")
    try:
        probe = RowProbe(graph, [rotation.cos, rotation.sin])
        values = {length: [squeeze_leading(v, 2) for v in probe(length)] for length in _PROBE_LENGTHS}
    except ProbeError as error:
        raise NotARotary(str(error)) from None
    for frequencies in candidates:
        if all(_is_rotary(cos, sin, frequencies, length) for length, (cos, sin) in values.items()):
            return frequencies
    raise NotARotary(f"'{rotation.cos.name}' and '{rotation.sin.name}' are not cos and sin of the position in the "
                     f"row times a constant of {half} frequencies, each repeated twice along the head")


def _is_rotary(cos: np.ndarray, sin: np.ndarray, frequencies: np.ndarray, length: int) -> bool:
    angles = np.arange(length, dtype=np.float32)[:, None] * frequencies[None, :]
    angles = np.concatenate([angles, angles], axis=1)
    expected = (np.cos(angles), np.sin(angles))
    return all(value.shape == e.shape and np.allclose(value, e, rtol=0, atol=_COS_SIN_ATOL)
               for value, e in zip((cos, sin), expected))
