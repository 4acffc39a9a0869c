"""What an attention mask masks beyond padding: nothing, or a sliding window (ModernBERT's local layers).

FusedMHA masks padding by the packed layout, so the mask term of an export may be dropped only where
it masks nothing else. The term is evaluated (probe.py) with every token valid: it must then mask
nothing, or exactly the keys farther than some ``w`` from the query (transformers' bidirectional
sliding window, ``|i - j| <= w``), which FusedMHA takes as ``sliding_window``. Anything else is refused.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import onnx_graphsurgeon as gs

from .probe import ProbeError, RowProbe, length_beyond_constants, squeeze_leading

# How the term applies: added to the scores, or the condition of a Where keeping the scores where
# it is true (false).
MaskForm = Literal["additive", "keep_where_true", "keep_where_false"]
# Additive masks put the most negative float32 or -10000 where they mask.
_MASKED_BELOW = -1e4
# Probe lengths: a window shows only at lengths beyond it, so the longest exceeds twice the largest
# integer constant the term reads (the window is one of them) and this floor.
_MIN_LONGEST = 64
_MAX_WINDOW_CONSTANT = 1 << 16
_SHORT_LENGTHS = (17, 1)


class NotAWindow(ValueError):
    """The mask masks more than padding, and not as a sliding window; the message says why."""


def _masked(value: np.ndarray, form: MaskForm, length: int) -> np.ndarray:
    """[queries, keys] booleans, true where the term masks; NotAWindow if it differs between heads
    or adds anything but 0 to the scores it keeps."""
    value = squeeze_leading(value, 2)
    if value.ndim > 2:
        if not (value == value[:1]).all():
            raise NotAWindow("it differs between heads")
        value = value.reshape(-1, *value.shape[-2:])[0]
    if value.ndim != 2 or value.shape[0] not in (1, length) or value.shape[1] != length:
        raise NotAWindow(f"at sequence length {length} it has shape {list(value.shape)}, not [.., {length}, {length}]")
    value = np.broadcast_to(value, (length, length))
    if form == "additive":
        masked = value <= _MASKED_BELOW
        if np.any(value[~masked] != 0):
            raise NotAWindow("it adds values other than 0 to the scores it keeps")
        return masked
    return ~value.astype(bool) if form == "keep_where_true" else value.astype(bool)


def find_sliding_window(graph: gs.Graph, term: gs.Tensor, form: MaskForm) -> int | None:
    """The window ``w`` the mask ``term`` of ``graph`` applies, None if it masks only padding."""
    lengths = (length_beyond_constants(term, _MIN_LONGEST, _MAX_WINDOW_CONSTANT), *_SHORT_LENGTHS)
    try:
        probe = RowProbe(graph, [term])
        masks = {length: _masked(probe(length)[0], form, length) for length in lengths}
    except ProbeError as error:
        raise NotAWindow(str(error)) from None
    longest = lengths[0]
    if not masks[longest].any():
        return None
    window = int((~masks[longest][0]).sum()) - 1  # the first query sees keys 0 .. w
    for length, masked in masks.items():
        slots = np.arange(length)
        if not np.array_equal(masked, np.abs(slots[:, None] - slots[None, :]) > window):
            raise NotAWindow(f"with every token valid it masks scores at sequence length {length}, and not as a "
                             "sliding window |i - j| <= w")
    return window
