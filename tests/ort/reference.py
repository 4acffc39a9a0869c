"""NumPy references of the com.bytetx ops (docs/ops.md), computed in float64 and returned as float32."""

from __future__ import annotations

import numpy as np


def remove_padding(x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x [B, S, H]``, ``mask [B, S]`` -> ``packed [T, H]``, ``cu_seqlens [B + 1]``,
    ``token_offset [B, S]``."""
    batch, seq_len = mask.shape
    flat_mask = mask.reshape(-1) != 0
    valid = np.flatnonzero(flat_mask)
    pads = np.flatnonzero(~flat_mask)
    packed = x.reshape(batch * seq_len, x.shape[-1])[valid].astype(np.float32)
    cu_seqlens = np.concatenate([[0], np.cumsum((mask != 0).sum(axis=1))]).astype(np.int32)
    token_offset = np.concatenate([valid, pads]).astype(np.int32).reshape(batch, seq_len)
    return packed, cu_seqlens, token_offset


def fused_mha(
    qkv: np.ndarray,
    qkv_bias: np.ndarray | None,
    cu_seqlens: np.ndarray,
    num_heads: int,
    scale: float | None = None,
) -> np.ndarray:
    """Self-attention of each sequence ``[cu_seqlens[b], cu_seqlens[b + 1])`` of ``qkv [T, 3H]``."""
    num_tokens, width = qkv.shape
    hidden = width // 3
    head_size = hidden // num_heads
    scale = 1.0 / np.sqrt(head_size) if scale is None else scale
    qkv64 = qkv.astype(np.float64)
    if qkv_bias is not None:
        qkv64 = qkv64 + qkv_bias.astype(np.float64)
    heads = qkv64.reshape(num_tokens, 3, num_heads, head_size)
    context = np.zeros((num_tokens, num_heads, head_size), np.float64)
    for begin, end in zip(cu_seqlens[:-1], cu_seqlens[1:]):
        if end == begin:
            continue
        q, k, v = (heads[begin:end, i].transpose(1, 0, 2) for i in range(3))  # [heads, len, d]
        scores = scale * (q @ k.transpose(0, 2, 1))
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
        weights /= weights.sum(axis=-1, keepdims=True)
        context[begin:end] = (weights @ v).transpose(1, 0, 2)
    return context.reshape(num_tokens, hidden).astype(np.float32)


def rebuild_padding(packed: np.ndarray, token_offset: np.ndarray) -> np.ndarray:
    """``packed [T, H]`` scattered to ``[B, S, H]`` by ``token_offset [B, S]``; padding is zero."""
    batch, seq_len = token_offset.shape
    out = np.zeros((batch * seq_len, packed.shape[1]), np.float32)
    out[token_offset.reshape(-1)[: packed.shape[0]]] = packed
    return out.reshape(batch, seq_len, packed.shape[1])


def padded_attention(
    qkv: np.ndarray, qkv_bias: np.ndarray | None, mask: np.ndarray, num_heads: int, scale: float | None = None
) -> np.ndarray:
    """The whole padding-free pipeline on a padded ``qkv [B, S, 3H]``: context ``[B, S, H]``, zero at pads."""
    packed, cu_seqlens, token_offset = remove_padding(qkv, mask)
    return rebuild_padding(fused_mha(packed, qkv_bias, cu_seqlens, num_heads, scale), token_offset)
