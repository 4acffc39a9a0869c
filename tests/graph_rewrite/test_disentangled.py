"""DeBERTa's disentangled attention terms, read off its exports and moved into FusedMHA.

The tables must equal the model's own position projections of its normalized relative embeddings and
the bucketing its config's; a term computed from the query or key that is not FusedMHA's is refused,
naming the node, rather than dropped. End-to-end accuracy against Hugging Face is in
tests/exporter/test_architectures.py and tests/exporter/test_deberta.py.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from bytetx.exporter import export_to_onnx, load_hf_model
from bytetx.graph_rewrite import RewriteError, rewrite_padding_free
from fixtures.tiny_models import MAX_RELATIVE_POSITIONS, POSITION_BUCKETS
from transformers.models.deberta_v2 import modeling_deberta_v2

from bytetx import ops


@pytest.fixture(scope="module")
def deberta(tiny_model_dirs):
    return load_hf_model(tiny_model_dirs("deberta-v2"))


def _fused_blocks(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type == ops.FUSED_MHA and n.domain == ops.DOMAIN]


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_each_block_reads_the_model_projections_of_its_relative_embeddings(deberta, exporter):
    rewritten, reports = rewrite_padding_free(export_to_onnx(deberta, exporter))
    blocks = _fused_blocks(rewritten)
    tables = {t.name: onnx.numpy_helper.to_array(t) for t in rewritten.graph.initializer}
    with torch.no_grad():
        relative = deberta.model.encoder.get_rel_embedding()[: 2 * POSITION_BUCKETS]
        for block, layer in zip(blocks, deberta.model.encoder.layer):
            attention = layer.attention.self  # share_att_key: the content projections
            assert list(block.input[4:]) == [ops.POSITIONS, "", block.input[6], block.input[7]]
            np.testing.assert_allclose(tables[block.input[6]], attention.key_proj(relative).numpy(), atol=1e-5)
            np.testing.assert_allclose(tables[block.input[7]], attention.query_proj(relative).numpy(), atol=1e-5)
            attributes = {a.name: onnx.helper.get_attribute_value(a) for a in block.attribute}
            assert attributes["position_buckets"] == POSITION_BUCKETS
            assert attributes["max_relative_positions"] == MAX_RELATIVE_POSITIONS
            assert attributes["scale"] == pytest.approx(1 / np.sqrt(8 * 3))
    assert len(blocks) == 2 and not any(n.op_type == "Softmax" for n in rewritten.graph.node)


def test_running_twice_changes_nothing(deberta):
    once, _ = rewrite_padding_free(export_to_onnx(deberta))
    twice, reports = rewrite_padding_free(once)
    assert [r.changed for r in reports] == [0, 0]
    assert twice.SerializeToString() == once.SerializeToString()


def test_another_bucketing_is_refused_not_dropped(tiny_model_dirs, monkeypatch):
    """Buckets one wider than transformers' log buckets would be misread if taken for them."""
    bucket = modeling_deberta_v2.make_log_bucket_position
    monkeypatch.setattr(modeling_deberta_v2, "make_log_bucket_position",
                        lambda relative, size, max_position: bucket(relative, size, max_position) * 2)
    exported = export_to_onnx(load_hf_model(tiny_model_dirs("deberta-v2")))
    with pytest.raises(RewriteError, match="attention block 0: matching stopped at Add node .*not DeBERTa's "
                                           "disentangled attention: its buckets .* are neither"):
        rewrite_padding_free(exported)


def test_a_term_scaled_unlike_the_scores_is_refused(tiny_model_dirs, monkeypatch):
    """The position terms divided by another scale than Q K^T cannot be FusedMHA's."""
    scaled = modeling_deberta_v2.scaled_size_sqrt
    monkeypatch.setattr(modeling_deberta_v2, "scaled_size_sqrt",
                        lambda layer, factor: scaled(layer, factor) * (1.0 if layer.size(-2) != 2 * POSITION_BUCKETS
                                                                       else 2.0))
    exported = export_to_onnx(load_hf_model(tiny_model_dirs("deberta-v2")))
    with pytest.raises(RewriteError, match="not DeBERTa's disentangled attention: .*not FusedMHA's disentangled "
                                           "terms|not DeBERTa's disentangled attention: its buckets"):
        rewrite_padding_free(exported)
