"""ONNX rewrites that make BERT-family encoders padding-free (installed as ``bytetx.graph_rewrite``)."""

from .base import BYTETX_DOMAIN, GraphPass, PassReport, RewriteError
from .fuse_attention import FuseAttention
from .pack_tokens import PackTokens
from .packed_inputs import POOLINGS, PackedInputs
from .pipeline import heads_per_softmax, infer_shapes, rewrite_padding_free, to_packed_inputs

__all__ = [
    "BYTETX_DOMAIN",
    "POOLINGS",
    "FuseAttention",
    "GraphPass",
    "PackTokens",
    "PackedInputs",
    "PassReport",
    "RewriteError",
    "heads_per_softmax",
    "infer_shapes",
    "rewrite_padding_free",
    "to_packed_inputs",
]
