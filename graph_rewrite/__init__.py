"""ONNX rewrites that make BERT-family encoders padding-free (installed as ``bytetx.graph_rewrite``),
and the edits that make a rewritten model ready for TensorRT."""

from .attention_placeholder import AttentionPlaceholder, AttentionSite, without_fused_mha
from .base import GraphPass, PassReport, RewriteError, run_on_model
from .fuse_attention import FuseAttention
from .pack_tokens import PackTokens
from .pipeline import heads_per_softmax, infer_shapes, rewrite_padding_free
from .tensorrt_flavour import TensorRTFlavour, is_tensorrt_flavour, to_tensorrt

__all__ = [
    "AttentionPlaceholder",
    "AttentionSite",
    "FuseAttention",
    "GraphPass",
    "PackTokens",
    "PassReport",
    "RewriteError",
    "TensorRTFlavour",
    "heads_per_softmax",
    "infer_shapes",
    "is_tensorrt_flavour",
    "rewrite_padding_free",
    "run_on_model",
    "to_tensorrt",
    "without_fused_mha",
]
