"""How a model pools its tokens into one sentence embedding, read from its sentence-transformers files.

``modules.json`` lists the modules (Transformer, Pooling, Normalize); the Pooling module's
``config.json`` names the mode, either as ``pooling_mode`` or as the older ``pooling_mode_*`` flags;
``sentence_bert_config.json`` gives the length that sentence-transformers truncates to. A directory
without ``modules.json`` pools by the mean, unnormalized.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .hf_export import ExportError

SUPPORTED_MODES = ("mean", "cls")
_LEGACY_FLAGS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


@dataclass(frozen=True)
class SentencePooling:
    mode: str = "mean"  # one of SUPPORTED_MODES
    normalize: bool = False
    max_seq_length: int | None = None  # sentence-transformers' truncation length, if it sets one


def read_sentence_pooling(model_dir: str | Path) -> SentencePooling:
    """The pooling of a Hugging Face model directory; ExportError names a file or mode bytetx cannot serve."""
    model_dir = Path(model_dir)
    max_seq_length = _read_json(model_dir / "sentence_bert_config.json", {}).get("max_seq_length")
    modules = _read_json(model_dir / "modules.json", None)
    if modules is None:
        return SentencePooling(max_seq_length=max_seq_length)
    if not isinstance(modules, list):
        raise ExportError(f"{model_dir / 'modules.json'} is not a list of modules")
    mode, normalize = None, False
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1] if isinstance(module, dict) else ""
        if kind == "Pooling":
            mode = _pooling_mode(model_dir / str(module.get("path", "")) / "config.json")
        elif kind == "Normalize":
            normalize = True
        elif kind != "Transformer":
            raise ExportError(f"{model_dir / 'modules.json'}: module {module!r} is not supported; bytetx serves "
                              "Transformer, Pooling and Normalize modules")
    if mode is None:
        raise ExportError(f"{model_dir / 'modules.json'} has no Pooling module")
    return SentencePooling(mode, normalize, max_seq_length)


def _pooling_mode(path: Path) -> str:
    config = _read_json(path, None)
    if not isinstance(config, dict):
        raise ExportError(f"{path} is missing or not a pooling configuration")
    mode = config.get("pooling_mode")
    if mode is None:
        mode = [name for flag, name in _LEGACY_FLAGS.items() if config.get(flag)]
    modes = [mode] if isinstance(mode, str) else list(mode)
    if len(modes) != 1 or modes[0] not in SUPPORTED_MODES:
        raise ExportError(f"{path}: pooling {'+'.join(modes) or 'none'} is not supported; bytetx pools by "
                          + " or ".join(SUPPORTED_MODES))
    return modes[0]


def _read_json(path: Path, default):
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExportError(f"cannot read {path}: {error}") from None
