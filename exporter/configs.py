"""One export config per tested architecture, registered in one table, and the config of any other
model type, read off the loaded model.

A config says which inputs the architecture's base model takes; similar architectures inherit. A model
type without a config of its own (CamemBERT, say, whose graph is RoBERTa's) is accepted by structure:
its config comes from the model's forward signature, and the export stands only if the rewrite
matches its graph and verification against Hugging Face passes.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import ClassVar


class UnsupportedModelError(ValueError):
    """The model is not one of the BERT-family architectures bytetx supports."""


class EncoderExportConfig:
    """An encoder taking token ids, an attention mask and token type ids."""

    model_type: ClassVar[str] = ""
    inputs: ClassVar[tuple[str, ...]] = ("input_ids", "attention_mask", "token_type_ids")
    # Token id written into padding positions of verification batches.
    default_pad_token_id: ClassVar[int] = 0
    # Read off the model rather than registered: its export must be verified.
    by_structure: ClassVar[bool] = False

    @classmethod
    def refusal(cls, config: object) -> str | None:
        """Why this model's config has a part the padding-free graph cannot run, or None."""
        return None


class BertExportConfig(EncoderExportConfig):
    """BERT, and the MiniLM / BGE sentence encoders built on it."""

    model_type = "bert"


class AlbertExportConfig(BertExportConfig):
    model_type = "albert"


class ElectraExportConfig(BertExportConfig):
    model_type = "electra"


class RobertaExportConfig(EncoderExportConfig):
    """No token types in practice (one type only), and padding id 1 drives its position ids."""

    model_type = "roberta"
    inputs = ("input_ids", "attention_mask")
    default_pad_token_id = 1


class XLMRobertaExportConfig(RobertaExportConfig):
    model_type = "xlm-roberta"


class MPNetExportConfig(RobertaExportConfig):
    """RoBERTa's inputs and positions; a relative position bias on every layer's scores."""

    model_type = "mpnet"


class ModernBertExportConfig(EncoderExportConfig):
    """No token types; rotary embeddings, and a sliding window in all layers but every
    ``global_attn_every_n_layers``-th."""

    model_type = "modernbert"
    inputs = ("input_ids", "attention_mask")


class DebertaV2ExportConfig(EncoderExportConfig):
    """DeBERTa-v2 and v3: no token types (their checkpoints have none); disentangled attention."""

    model_type = "deberta-v2"
    inputs = ("input_ids", "attention_mask")

    @classmethod
    def refusal(cls, config: object) -> str | None:
        kernel_size = int(getattr(config, "conv_kernel_size", 0) or 0)
        if kernel_size > 0:
            # The convolution mixes neighbouring tokens of the padded sequence; packed, its neighbours
            # would come from other sequences.
            return (f"DeBERTa-v2's ConvLayer (conv_kernel_size={kernel_size}, as in deberta-v2-xlarge and -xxlarge) "
                    "convolves over the padded sequence next to the first layer; bytetx does not run it "
                    "padding-free yet (models with conv_kernel_size 0, as DeBERTa-v3, are supported)")
        return None


class DistilBertExportConfig(EncoderExportConfig):
    model_type = "distilbert"
    inputs = ("input_ids", "attention_mask")


EXPORT_CONFIGS: dict[str, type[EncoderExportConfig]] = {
    config.model_type: config
    for config in (
        BertExportConfig,
        RobertaExportConfig,
        XLMRobertaExportConfig,
        DistilBertExportConfig,
        AlbertExportConfig,
        ElectraExportConfig,
        MPNetExportConfig,
        ModernBertExportConfig,
        DebertaV2ExportConfig,
    )
}


# Model types whose graph would match in part only, refused by name before any export.
REFUSED_MODEL_TYPES: dict[str, str] = {
    "deberta": "DeBERTa (v1) fuses Q, K and V into one projection with separate query and value biases and scales "
               "its position-to-content term differently from DeBERTa-v2/v3, which bytetx runs padding-free "
               "(model type 'deberta-v2'); DeBERTa v1 is not supported yet",
}


def config_by_structure(model_type: str, forward_parameters: Collection[str],
                        type_vocab_size: int) -> type[EncoderExportConfig]:
    """The config of a model type with none of its own: token ids and attention mask, and token types
    where its forward takes them and it has more than one; UnsupportedModelError if it takes neither
    ids nor a mask (no encoder bytetx can make padding-free)."""
    if model_type in REFUSED_MODEL_TYPES:
        raise UnsupportedModelError(f"model type '{model_type}': {REFUSED_MODEL_TYPES[model_type]}")
    missing = [name for name in ("input_ids", "attention_mask") if name not in forward_parameters]
    if missing:
        raise UnsupportedModelError(
            f"model type '{model_type}' is not a BERT-family encoder: its forward takes no {' or '.join(missing)}; "
            "bytetx exports encoders like these: " + ", ".join(sorted(EXPORT_CONFIGS)))
    token_types = "token_type_ids" in forward_parameters and type_vocab_size > 1
    return type(f"StructuralExportConfig[{model_type}]", (EncoderExportConfig,), {
        "model_type": model_type,
        "inputs": ("input_ids", "attention_mask") + (("token_type_ids",) if token_types else ()),
        "by_structure": True,
    })
