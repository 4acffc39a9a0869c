"""One export config per supported architecture, registered in one table.

A config says which inputs the architecture's base model takes; similar architectures inherit.
"""

from __future__ import annotations

from typing import ClassVar


class UnsupportedModelError(ValueError):
    """The model is not one of the BERT-family architectures bytetx supports."""


class EncoderExportConfig:
    """An encoder taking token ids, an attention mask and token type ids."""

    model_type: ClassVar[str] = ""
    inputs: ClassVar[tuple[str, ...]] = ("input_ids", "attention_mask", "token_type_ids")
    # Token id written into padding positions of verification batches.
    default_pad_token_id: ClassVar[int] = 0


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
    )
}


def export_config_for(model_type: str) -> type[EncoderExportConfig]:
    """The export config of ``model_type``; UnsupportedModelError names the supported list."""
    try:
        return EXPORT_CONFIGS[model_type]
    except KeyError:
        raise UnsupportedModelError(
            f"model type '{model_type}' is not supported; bytetx exports these BERT-family encoders: "
            + ", ".join(sorted(EXPORT_CONFIGS))
        ) from None
