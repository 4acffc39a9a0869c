"""What an attention mask masks beyond padding, found by evaluating it with every token valid.

The masks are built here as transformers' exports write them: slot differences from Range, a
comparison, And with the padding mask, Where to 0 / the most negative float. Anything but a
symmetric window must be refused: FusedMHA would otherwise drop it.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs
import pytest
from bytetx.graph_rewrite.sliding_window import NotAWindow, find_sliding_window

MASKED = np.float32(np.finfo(np.float32).min)


def _constant(name: str, value) -> gs.Constant:
    return gs.Constant(name, np.asarray(value))


def _mask_graph(keep: str, window: int = 0, kept_value: float = 0.0) -> tuple[gs.Graph, gs.Tensor, gs.Tensor]:
    """(graph, additive term [B, 1, S, S], boolean keep [B, 1, S, S]) keeping the valid keys where
    ``keep`` holds: "all", "window" (|i - j| <= window) or "causal" (j <= i)."""
    ids = gs.Variable("input_ids", np.int64, ["batch", "sequence"])
    mask = gs.Variable("attention_mask", np.int64, ["batch", "sequence"])
    graph = gs.Graph(inputs=[ids, mask], opset=17)

    def node(op: str, inputs: list, dtype, **attrs) -> gs.Variable:
        output = gs.Variable(f"{op}_{len(graph.nodes)}", dtype)
        graph.nodes.append(gs.Node(op, inputs=inputs, outputs=[output], attrs=attrs))
        return output

    count = node("Squeeze", [node("Shape", [ids], np.int64, start=1, end=2), _constant("axis0", [0])], np.int64)
    slots = node("Range", [_constant("zero", 0), count, _constant("one", 1)], np.int64)
    difference = node("Sub", [node("Unsqueeze", [slots, _constant("axis1", [1])], np.int64),
                              node("Unsqueeze", [slots, _constant("axis0b", [0])], np.int64)], np.int64)
    if keep == "window":
        distance = node("Abs", [difference], np.int64)
        kept = node("LessOrEqual", [distance, _constant("window", np.int64(window))], bool)
    elif keep == "causal":
        kept = node("GreaterOrEqual", [difference, _constant("zero_distance", np.int64(0))], bool)
    else:
        kept = node("Equal", [difference, difference], bool)
    valid_keys = node("Unsqueeze", [node("Cast", [mask], bool, to=9), _constant("axes12", [1, 2])], bool)
    keep_scores = node("And", [kept, valid_keys], bool)
    term = node("Where", [keep_scores, _constant("kept_value", np.float32(kept_value)), _constant("masked", MASKED)],
                np.float32)
    return graph, term, keep_scores


def test_a_padding_mask_masks_nothing_else():
    graph, term, _ = _mask_graph("all")
    assert find_sliding_window(graph, term, "additive") is None


@pytest.mark.parametrize("window", [0, 3, 100])
def test_the_window_is_read_off_the_mask(window):
    """100: longer than the shortest probes; the longest exceeds twice the graph's integer constants."""
    graph, term, _ = _mask_graph("window", window)
    assert find_sliding_window(graph, term, "additive") == window


def test_a_boolean_mask_of_a_where_in_either_sense():
    graph, _, keep = _mask_graph("window", 5)
    assert find_sliding_window(graph, keep, "keep_where_true") == 5
    dropped = gs.Variable("dropped", bool)
    graph.nodes.append(gs.Node("Not", inputs=[keep], outputs=[dropped]))
    assert find_sliding_window(graph, dropped, "keep_where_false") == 5


def test_a_causal_mask_is_refused():
    graph, term, _ = _mask_graph("causal")
    with pytest.raises(NotAWindow, match="masks scores at sequence length .*, and not as a sliding window"):
        find_sliding_window(graph, term, "additive")


def test_a_mask_that_adds_to_the_kept_scores_is_refused():
    graph, term, _ = _mask_graph("window", 4, kept_value=0.5)
    with pytest.raises(NotAWindow, match="adds values other than 0 to the scores it keeps"):
        find_sliding_window(graph, term, "additive")
