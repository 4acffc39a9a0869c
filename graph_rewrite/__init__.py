"""ONNX rewrites that make BERT-family encoders padding-free (installed as ``bytetx.graph_rewrite``),
and the edits that make a rewritten model ready for TensorRT or for packed inputs."""

from .attention_placeholder import AttentionPlaceholder, AttentionSite, without_fused_mha
from .base import GraphPass, PassReport, RewriteError, run_on_model
from .fuse_attention import FuseAttention
from .pack_tokens import PackTokens
from .packed_inputs import POOLINGS, PackedInputs
from .pipeline import heads_per_softmax, infer_shapes, rewrite_padding_free, to_packed_inputs
from .tensorrt_flavour import TensorRTFlavour, is_tensorrt_flavour, to_tensorrt

__all__ = [
    "AttentionPlaceholder",
    "AttentionSite",
    "POOLINGS",
    "FuseAttention",
    "GraphPass",
    "PackTokens",
    "PackedInputs",
    "PassReport",
    "RewriteError",
    "TensorRTFlavour",
    "heads_per_softmax",
    "infer_shapes",
    "is_tensorrt_flavour",
    "rewrite_padding_free",
    "run_on_model",
    "to_packed_inputs",
    "to_tensorrt",
    "without_fused_mha",
]
