"""The exported model folder: ``model.safetensors`` (HybridLM weights) + ``model.yaml`` (its ModelSpec).

Light: needs torch and safetensors only (no megatron), so inference code can
``load_hybrid(folder)`` anywhere.
"""

from __future__ import annotations

from pathlib import Path

import torch

from composer_automl.model import HybridLM
from composer_automl.spec import ModelSpec

WEIGHTS = "model.safetensors"
SPEC = "model.yaml"


def load_hybrid(folder: str | Path, device: str | torch.device = "cpu") -> HybridLM:
    """The exported model as a :class:`HybridLM` (eval mode) on ``device``: one call."""
    from safetensors.torch import load_file

    folder = Path(folder)
    model = HybridLM(ModelSpec.load_yaml(folder / SPEC))
    model.load_state_dict(load_file(str(folder / WEIGHTS)))
    return model.to(device).eval()
