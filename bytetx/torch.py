"""Padding-free Hugging Face encoders in PyTorch: ``padding_free(model)``.

The wrapped model runs the model's own embeddings on the padded batch, then ``RemovePadding``; every
layer's linear layers, LayerNorms and activation by PyTorch on the packed ``[T, H]`` tokens, with one
merged Q/K/V projection and ``FusedMHA`` by bytetx; then ``RebuildPadding`` (zeros at padding) and the
model's pooler. The bytetx ops come from the C ABI (:mod:`bytetx.kernels`): the CPU kernels for CPU
tensors (float32), the CUDA kernels on PyTorch's current stream for CUDA tensors (float32, float16,
bfloat16). Inference only: nothing is recorded for autograd.

Architectures are recognised by structure: post-norm encoder layers of BERT's shape (BERT, RoBERTa,
XLM-RoBERTa, ELECTRA, CamemBERT, ...), DistilBERT's and ALBERT's (shared layers).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bytetx import kernels as capi

_DTYPES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16",
           torch.int32: "int32", torch.int64: "int64"}


class UnsupportedEncoderError(ValueError):
    """The model is not an encoder whose layers bytetx.torch recognises."""


@dataclass
class _Layer:
    """A post-norm transformer layer: attention (merged Q/K/V projection), then the feed-forward block."""

    qkv: nn.Linear  # [3H, H], the Q, K and V projections stacked; its bias goes to FusedMHA
    num_heads: int
    scale: float | None
    attention_output: nn.Linear
    attention_norm: nn.LayerNorm
    intermediate: nn.Linear
    activation: Callable[[torch.Tensor], torch.Tensor]
    output: nn.Linear
    output_norm: nn.LayerNorm


def _merged_qkv(query: nn.Linear, key: nn.Linear, value: nn.Linear) -> nn.Linear:
    merged = nn.Linear(query.in_features, 3 * query.out_features, bias=True,
                       device=query.weight.device, dtype=query.weight.dtype)
    with torch.no_grad():
        merged.weight.copy_(torch.cat([query.weight, key.weight, value.weight]))
        biases = [p.bias if p.bias is not None else torch.zeros_like(p.weight[:, 0]) for p in (query, key, value)]
        merged.bias.copy_(torch.cat(biases))
    return merged


def _bert_layer(layer: nn.Module) -> _Layer:
    attention = layer.attention.self
    return _Layer(_merged_qkv(attention.query, attention.key, attention.value), attention.num_attention_heads,
                  getattr(attention, "scaling", None), layer.attention.output.dense, layer.attention.output.LayerNorm,
                  layer.intermediate.dense, layer.intermediate.intermediate_act_fn, layer.output.dense,
                  layer.output.LayerNorm)


def _distilbert_layer(layer: nn.Module) -> _Layer:
    attention = layer.attention
    return _Layer(_merged_qkv(attention.q_lin, attention.k_lin, attention.v_lin), attention.n_heads,
                  getattr(attention, "scaling", None), attention.out_lin, layer.sa_layer_norm, layer.ffn.lin1,
                  layer.ffn.activation, layer.ffn.lin2, layer.output_layer_norm)


def _albert_layer(layer: nn.Module) -> _Layer:
    attention = layer.attention
    return _Layer(_merged_qkv(attention.query, attention.key, attention.value), attention.num_attention_heads,
                  getattr(attention, "scaling", None), attention.dense, attention.LayerNorm, layer.ffn,
                  layer.activation, layer.ffn_output, layer.full_layer_layer_norm)


@dataclass
class _Structure:
    embeddings: nn.Module
    projection: nn.Module | None  # embeddings narrower than hidden (ALBERT, ELECTRA)
    layers: list[_Layer]
    pooler: Callable[[torch.Tensor], torch.Tensor] | None  # first-token [B, H] -> pooled [B, H]


def _structure(model: nn.Module) -> _Structure:
    """The encoder's parts, found by structure; shared layers (ALBERT) are merged once."""
    transformer = getattr(model, "transformer", None)
    encoder = getattr(model, "encoder", None)
    try:
        if transformer is not None and hasattr(transformer, "layer"):
            layers = [_distilbert_layer(layer) for layer in transformer.layer]
            return _Structure(model.embeddings, None, layers, None)
        if encoder is not None and hasattr(encoder, "albert_layer_groups"):
            config = model.config
            groups = [[_albert_layer(layer) for layer in group.albert_layers] for group in encoder.albert_layer_groups]
            per_group = config.num_hidden_layers / config.num_hidden_groups
            layers = [layer for i in range(config.num_hidden_layers) for layer in groups[int(i / per_group)]]
            pooler = None
            if getattr(model, "pooler", None) is not None:
                pooler = lambda first: model.pooler_activation(model.pooler(first))
            return _Structure(model.embeddings, encoder.embedding_hidden_mapping_in, layers, pooler)
        if encoder is not None and hasattr(encoder, "relative_attention_bias"):
            raise UnsupportedEncoderError(
                f"{type(model).__name__} adds a relative position bias to its attention scores (MPNet's), which "
                "bytetx.torch does not take yet; export it to ONNX (bytetx-export) to run it padding-free")
        if hasattr(model, "rotary_emb"):
            raise UnsupportedEncoderError(
                f"{type(model).__name__} applies rotary embeddings (and ModernBERT's sliding window) in its "
                "attention, which bytetx.torch does not take yet; export it to ONNX (bytetx-export) to run it "
                "padding-free")
        if encoder is not None and hasattr(encoder, "layer"):
            layers = [_bert_layer(layer) for layer in encoder.layer]
            pooler = getattr(model, "pooler", None)
            return _Structure(model.embeddings, getattr(model, "embeddings_project", None), layers,
                              (lambda first: pooler.activation(pooler.dense(first))) if pooler is not None else None)
    except AttributeError as error:
        raise UnsupportedEncoderError(
            f"{type(model).__name__}: its layers do not have the structure of a BERT, DistilBERT or ALBERT "
            f"encoder layer ({error})") from None
    raise UnsupportedEncoderError(
        f"{type(model).__name__} is not a base encoder bytetx.torch recognises: it has no encoder.layer, "
        "encoder.albert_layer_groups or transformer.layer (pass the base model, e.g. model.base_model)")


def tensor_ref(tensor: torch.Tensor) -> capi.TensorRef:
    """A contiguous tensor as the kernels take it (its data pointer, dtype and shape)."""
    if tensor.dtype not in _DTYPES:
        raise capi.InvalidKernelArgument(f"tensors of {tensor.dtype} are not taken by the bytetx kernels")
    if not tensor.is_contiguous():
        raise capi.InvalidKernelArgument("the bytetx kernels take contiguous tensors")
    return capi.TensorRef(tensor.data_ptr(), _DTYPES[tensor.dtype], tuple(tensor.shape))


class _Device:
    """Where a call runs: the kernels' device code and, on CUDA, PyTorch's current stream."""

    def __init__(self, tensor: torch.Tensor, kernels: capi.Kernels):
        if tensor.device.type == "cuda":
            if not kernels.has_cuda:
                raise capi.KernelUnavailable("the tensors are on CUDA, but bytetx was built without CUDA (no nvcc)")
            self.code, self.stream = capi.CUDA, torch.cuda.current_stream(tensor.device).cuda_stream
        elif tensor.device.type == "cpu":
            self.code, self.stream = capi.CPU, 0
        else:
            raise capi.InvalidKernelArgument(f"tensors on {tensor.device} are not supported (CPU or CUDA)")


class PaddingFreeEncoder(nn.Module):
    """A Hugging Face encoder running padding-free (module docstring); call it as the model."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        # Not a module attribute: its modules are the model's (registered once, under self.model).
        self._parts = _structure(model)
        # The merged projections are modules of this one, so .to(), .half() and .cuda() move them too.
        unique = {id(layer.qkv): layer.qkv for layer in self._parts.layers}
        self.merged_qkv = nn.ModuleList(unique.values())
        self._embedding_arguments = set(inspect.signature(self._parts.embeddings.forward).parameters)
        self.config = getattr(model, "config", None)

    @torch.no_grad()
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """``input_ids`` [B, S] (or ``inputs_embeds`` [B, S, E]), ``attention_mask`` [B, S] (nonzero: a
        token; all ones when absent) -> ``last_hidden_state`` [B, S, H] with zeros at padding,
        ``pooler_output`` [B, H] where the model has a pooler."""
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        unsupported = sorted(name for name, value in kwargs.items() if value not in (None, False))
        if unsupported:
            raise TypeError(f"padding-free encoders do not support {', '.join(unsupported)} (no attention weights, "
                            "no cache, no head mask)")
        embedded = self._embed(input_ids, token_type_ids, position_ids, inputs_embeds)
        batch, seq_len = embedded.shape[:2]
        if attention_mask is None:
            attention_mask = torch.ones(batch, seq_len, dtype=torch.int64, device=embedded.device)
        mask = attention_mask.to(embedded.device)
        if mask.dtype not in (torch.int32, torch.int64):
            mask = (mask != 0).to(torch.int32)  # bool or float masks: nonzero is a token, as transformers reads them
        kernels = capi.load()
        device = _Device(embedded, kernels)
        embedded, mask = embedded.contiguous(), mask.contiguous()

        num_tokens = int(torch.count_nonzero(mask))  # sizes the packed tensors (one sync on CUDA)
        packed = embedded.new_empty(num_tokens, embedded.shape[2])
        cu_seqlens = torch.empty(batch + 1, dtype=torch.int32, device=embedded.device)
        token_offset = torch.empty(batch, seq_len, dtype=torch.int32, device=embedded.device)
        kernels.remove_padding(device.code, *map(tensor_ref, (embedded, mask, packed, cu_seqlens, token_offset)),
                               device.stream)
        parts = self._parts
        hidden = parts.projection(packed) if parts.projection is not None else packed
        states = []
        for layer in parts.layers:
            if output_hidden_states:
                states.append(hidden)
            hidden = self._layer(layer, hidden, cu_seqlens, token_offset, kernels, device)
        if output_hidden_states:
            states.append(hidden)
        rebuild = [self._rebuild(h, token_offset, kernels, device) for h in (states or [hidden])]
        last = rebuild[-1]
        pooled = parts.pooler(last[:, 0]) if parts.pooler is not None else None
        output = BaseModelOutputWithPooling(last_hidden_state=last, pooler_output=pooled,
                                            hidden_states=tuple(rebuild) if output_hidden_states else None)
        return output if return_dict is not False else output.to_tuple()

    def _embed(self, input_ids, token_type_ids, position_ids, inputs_embeds) -> torch.Tensor:
        given = {"input_ids": input_ids, "token_type_ids": token_type_ids, "position_ids": position_ids,
                 "inputs_embeds": inputs_embeds}
        dropped = sorted(k for k, v in given.items() if v is not None and k not in self._embedding_arguments)
        if dropped:
            raise TypeError(f"{type(self.model).__name__}'s embeddings take no {', '.join(dropped)}")
        return self._parts.embeddings(**{k: v for k, v in given.items() if v is not None})

    def _layer(self, layer: _Layer, hidden: torch.Tensor, cu_seqlens: torch.Tensor, token_offset: torch.Tensor,
               kernels: capi.Kernels, device: _Device) -> torch.Tensor:
        qkv = nn.functional.linear(hidden, layer.qkv.weight)
        context = self.attention(qkv, layer.qkv.bias, cu_seqlens, token_offset, layer.num_heads, layer.scale,
                                 kernels, device)
        attended = layer.attention_norm(layer.attention_output(context) + hidden)
        return layer.output_norm(layer.output(layer.activation(layer.intermediate(attended))) + attended)

    def attention(self, qkv: torch.Tensor, qkv_bias: torch.Tensor, cu_seqlens: torch.Tensor,
                  token_offset: torch.Tensor, num_heads: int, scale: float | None, kernels: capi.Kernels,
                  device: _Device) -> torch.Tensor:
        """``FusedMHA``: ``qkv`` [T, 3H] (bias not yet added) -> context [T, H]. A subclass may put another
        attention here (the GPU benchmark compares PyTorch's own padding-free attention this way)."""
        context = qkv.new_empty(qkv.shape[0], qkv.shape[1] // 3)
        kernels.fused_mha(device.code, *map(tensor_ref, (qkv, qkv_bias, cu_seqlens, token_offset)), num_heads, scale,
                          tensor_ref(context), device.stream)
        return context

    @staticmethod
    def _rebuild(packed: torch.Tensor, token_offset: torch.Tensor, kernels: capi.Kernels,
                 device: _Device) -> torch.Tensor:
        output = packed.new_empty(*token_offset.shape, packed.shape[1])
        kernels.rebuild_padding(device.code, *map(tensor_ref, (packed, token_offset, output)), device.stream)
        return output


def padding_free(model: nn.Module) -> PaddingFreeEncoder:
    """``model`` (a Hugging Face base encoder, in eval mode) wrapped to run padding-free; it shares the
    model's weights, plus one merged Q/K/V projection per distinct layer."""
    if model.training:
        raise ValueError("padding_free is for inference: call model.eval() first (dropout would be skipped)")
    return PaddingFreeEncoder(model)
