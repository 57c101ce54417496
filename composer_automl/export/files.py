"""Exported model folders, both formats, read without ``transformers`` or megatron.

* ``native``: ``model.safetensors`` (HybridLM names) + ``model.yaml`` (the ModelSpec, and under
  ``info`` where the weights came from and the tokenizer record) + ``tokenizer.json`` for a
  Hugging Face tokenizer (a verbatim copy).
* ``hf``: what ``transformers`` loads (:mod:`composer_automl.export.hf`): ``config.json``
  (``model_type: composer-hybrid``, the ModelSpec fields, ``export_info``), ``model.safetensors``
  (HybridLM names under ``model.``), the tokenizer files and the modeling code.

:func:`open_export` reads either into one :class:`ExportedModel`, so inference and evaluation code
gets a :class:`~composer_automl.model.HybridLM` and the tokenizer it was trained with in one call.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from composer_automl.config import ConfigError
from composer_automl.data.tokenizers import ByteTokenizer, HFTokenizer, Tokenizer
from composer_automl.model import HybridLM
from composer_automl.spec import ModelSpec

WEIGHTS = "model.safetensors"
SPEC = "model.yaml"
HF_CONFIG = "config.json"
TOKENIZER = "tokenizer.json"
HF_MODEL_TYPE = "composer-hybrid"
"""``model_type`` of :class:`composer_automl.modeling_hybrid.HybridConfig`."""
HF_PREFIX = "model."
"""Where :class:`~composer_automl.modeling_hybrid.HybridForCausalLM` keeps the HybridLM's weights."""
FORMATS = ("native", "hf")


def tokenizer_record(tokenizer: Tokenizer) -> dict[str, Any]:
    """What an export stores about its tokenizer (the file itself lies beside it for ``hf`` tokenizers)."""
    return {"name": tokenizer.name, "identity": tokenizer.identity, "eod_token": getattr(tokenizer, "eod_token", None)}


@dataclass(frozen=True)
class ExportedModel:
    """An export folder: its format, architecture and ``info`` (``exported_from``, ``step``, ``tokenizer``)."""

    folder: Path
    format: str
    spec: ModelSpec
    info: dict[str, Any]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The weights under HybridLM's names."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            weights = load_file(str(self.folder / WEIGHTS))
        except (OSError, SafetensorError) as err:  # truncated, garbled or unreadable
            raise ConfigError(f"{self.folder / WEIGHTS} cannot be read ({err}); export the model again") from None
        if self.format == "hf":
            weights = {k.removeprefix(HF_PREFIX): v for k, v in weights.items()}
        return weights

    def load(self, device: str | torch.device = "cpu") -> HybridLM:
        """The model as a :class:`HybridLM` in eval mode on ``device``."""
        model = HybridLM(self.spec)
        model.load_state_dict(self.state_dict())
        return model.to(device).eval()

    @property
    def tokenizer_info(self) -> dict[str, Any] | None:
        """The tokenizer record (name, identity, eod_token), or None for an export that predates it."""
        return self.info.get("tokenizer")

    def tokenizer(self) -> Tokenizer:
        """The tokenizer the model was trained with; ConfigError when the export does not record one."""
        record = self.tokenizer_info
        if record is None:
            raise ConfigError(
                f"{self.folder} records no tokenizer (exported before exports did); write it again with "
                f"`composer-automl export ckpt={self.folder} out=NEW_FOLDER tokenizer=byte` (or tokenizer=hf "
                "tokenizer_path=…)")
        if record["name"] == "byte":
            return ByteTokenizer()
        return HFTokenizer(str(self.folder / TOKENIZER), record["eod_token"])


def open_export(folder: str | Path, key: str = "model") -> ExportedModel:
    """Read an export folder of either format; ConfigError naming ``key`` when it is not one."""
    folder = Path(folder)
    try:
        if (folder / SPEC).is_file() and (folder / WEIGHTS).is_file():
            doc = yaml.safe_load((folder / SPEC).read_text()) or {}
            return ExportedModel(folder, "native", ModelSpec.from_dict(doc["model"]), doc.get("info") or {})
        if (folder / HF_CONFIG).is_file() and (folder / WEIGHTS).is_file():
            config = json.loads((folder / HF_CONFIG).read_text())
            if config.get("model_type") == HF_MODEL_TYPE:
                fields = {f.name: config[f.name] for f in dataclasses.fields(ModelSpec)}
                return ExportedModel(folder, "hf", ModelSpec.from_dict(fields), config.get("export_info") or {})
    except (KeyError, TypeError, ValueError, yaml.YAMLError) as err:  # unreadable YAML/JSON, missing or bad fields
        raise ConfigError(f"{key}={str(folder)!r} is a damaged export ({type(err).__name__}: {err})") from None
    raise ConfigError(
        f"{key}={str(folder)!r} is not an exported model folder (native: {SPEC} + {WEIGHTS}; hf: {HF_CONFIG} of "
        f"model_type {HF_MODEL_TYPE!r} + {WEIGHTS}); make one with `composer-automl export ckpt=… out=…`")


def load_hybrid(folder: str | Path, device: str | torch.device = "cpu") -> HybridLM:
    """The exported model (either format) as a :class:`HybridLM` (eval mode) on ``device``: one call."""
    return open_export(folder).load(device)
