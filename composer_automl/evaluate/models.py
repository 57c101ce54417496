"""The models under evaluation: an export loaded as a HybridLM with its tokenizer, on the configured device.

The device and number format come from the config (``accelerator``, ``precision``) through
:func:`composer_automl.devices.resolve`, never from whether CUDA happens to be present:
``*-true`` precisions cast the weights, ``*-mixed`` keep fp32 weights under ``torch.autocast``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import ContextManager

import torch

from composer_automl import devices
from composer_automl.config import ConfigError
from composer_automl.data.tokenizers import Tokenizer
from composer_automl.export.files import ExportedModel, open_export
from composer_automl.model import HybridLM
from composer_automl.spec import ModelSpec

DTYPES = {"32": torch.float32, "bf16": torch.bfloat16, "16": torch.float16}
"""Leading part of a Lightning precision string → torch dtype."""


@dataclass(frozen=True)
class Runtime:
    """Where and in which number format the models run."""

    device: torch.device
    weights: torch.dtype
    """The dtype the weights are cast to."""
    autocast: torch.dtype | None
    """Compute dtype under ``torch.autocast`` (``*-mixed``), or None."""

    @property
    def dtype_name(self) -> str:
        """The dtype activations and the KV cache are held in (``float32``, ``bfloat16``, ``float16``)."""
        return str(self.autocast or self.weights).removeprefix("torch.")

    def context(self) -> ContextManager:
        """Wrap forward passes in it (autocast for mixed precision, nothing otherwise)."""
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)


def resolve_runtime(accelerator: str, precision: str) -> Runtime:
    """The machine's answer to ``accelerator``/``precision`` (one ConfigError if it cannot run them)."""
    device = devices.resolve(accelerator, precision)
    dtype = DTYPES[device.precision.split("-")[0]]
    mixed = device.precision.endswith("-mixed")
    return Runtime(torch.device(device.torch_type), torch.float32 if mixed else dtype, dtype if mixed else None)


@dataclass
class LoadedModel:
    """One model of the comparison."""

    name: str
    export: ExportedModel
    model: HybridLM
    tokenizer: Tokenizer
    runtime: Runtime

    @property
    def spec(self) -> ModelSpec:
        return self.export.spec

    @property
    def tokenizer_identity(self) -> str:
        """The trained-with tokenizer's identity (compared with a dataset's before token-level losses)."""
        return self.export.tokenizer_info["identity"]

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, V) of token ids (B, T) (any device; moved to the runtime's)."""
        with torch.inference_mode(), self.runtime.context():
            return self.model(idx.to(self.runtime.device))


def open_models(folders: list[str]) -> list[ExportedModel]:
    """Every folder as an export with a tokenizer record; ConfigError naming ``models[i]`` otherwise."""
    exports = [open_export(folder, f"models[{i}]") for i, folder in enumerate(folders)]
    for i, exported in enumerate(exports):
        try:
            exported.tokenizer()
        except ConfigError as err:  # an export that predates tokenizer records: the re-export hint
            raise ConfigError(f"models[{i}]: {err}") from None
    return exports


def load_model(name: str, exported: ExportedModel, runtime: Runtime) -> LoadedModel:
    """Read the weights onto the runtime's device, in its weight dtype."""
    model = exported.load(runtime.device).to(runtime.weights)
    return LoadedModel(name, exported, model, exported.tokenizer(), runtime)
