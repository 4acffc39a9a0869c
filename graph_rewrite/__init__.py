"""ONNX rewrites that make BERT-family encoders padding-free (installed as ``bytetx.graph_rewrite``)."""

from .base import BYTETX_DOMAIN, GraphPass, PassReport, RewriteError
from .fuse_attention import FuseAttention
from .pack_tokens import PackTokens
from .pipeline import heads_per_softmax, infer_shapes, rewrite_padding_free

__all__ = [
    "BYTETX_DOMAIN",
    "FuseAttention",
    "GraphPass",
    "PackTokens",
    "PassReport",
    "RewriteError",
    "heads_per_softmax",
    "infer_shapes",
    "rewrite_padding_free",
]
