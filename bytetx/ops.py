"""The identity of the bytetx ops, written once: their ONNX domain and op set, their names, the
TensorRT plugins' versions and namespace, and the packed-layout tensors the rewrite creates.

docs/ops.md gives each op's contract; the C++ shells and plugins register under these names.
"""

from __future__ import annotations

# ONNX: the domain of every bytetx node, and the version of its op set in a model's opset_import.
DOMAIN = "com.bytetx"
OP_SET_VERSION = 1

REMOVE_PADDING = "RemovePadding"
FUSED_MHA = "FusedMHA"
REBUILD_PADDING = "RebuildPadding"
OPS = (REMOVE_PADDING, FUSED_MHA, REBUILD_PADDING)

# TensorRT: each op is a plugin of the same name, in this namespace, at its own version (a new
# behaviour is a new version).
PLUGIN_NAMESPACE = "com.bytetx"
PLUGIN_VERSIONS = {REMOVE_PADDING: "1", FUSED_MHA: "1", REBUILD_PADDING: "1"}

# The packed layout: RemovePadding writes cu_seqlens [B + 1] and token_offset [B, S] (int32) under
# these names; every FusedMHA reads the first, RebuildPadding the second. T, the packed token count,
# is the symbolic first dimension of the packed tensors; the TensorRT flavour also gives RemovePadding
# an int64 scalar output holding T (its size tensor).
CU_SEQLENS = "bytetx_cu_seqlens"
# Each packed token's slot in its padded row (token_offset mod S), int32 [T]: the positions of a
# FusedMHA with a relative position bias.
POSITIONS = "bytetx_positions"
TOKEN_OFFSET = "bytetx_token_offset"
TOKENS_DIM = "bytetx_total_tokens"
NUM_TOKENS = "bytetx_num_tokens"
