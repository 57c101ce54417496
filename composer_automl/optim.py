"""The optimizer of every training loop: AdamW with linear warm-up and a cosine schedule.

One config (:class:`OptimConfig`), one schedule (:func:`lr_factor`) and one builder
(:func:`build_optimizer`) serve pretraining, MAD runs and tensor-parallel training; MAD's
reference protocol differs only in fields (decay on every parameter, a cosine stepped per
epoch, a floor of 1e-6).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from composer_automl.config import ConfigError, choice

SCHEDULES = ("cosine-step", "cosine-epoch")
"""``cosine-step``: cosine stepped every optimizer step after the warm-up; ``cosine-epoch``: held within
an epoch and annealed over the run's epochs (torch's CosineAnnealingLR stepped per epoch, MAD's reference)."""


@dataclass
class OptimConfig:
    """AdamW with linear warm-up then cosine decay, stepped every optimizer step."""

    lr: float = 3e-3
    """Peak learning rate."""
    weight_decay: float = 0.1
    """Decoupled weight decay (matrices only, unless ``decay_all``)."""
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    warmup_steps: int = 10
    """Linear warm-up from 0 to ``lr``."""
    max_steps: int = 100
    """Length of the schedule; the cosine reaches ``min_lr_ratio·lr`` here."""
    min_lr_ratio: float = 0.1
    """Final learning rate as a fraction of the peak."""
    schedule: str = "cosine-step"
    """One of :data:`SCHEDULES`."""
    steps_per_epoch: int = 1
    """Optimizer steps per epoch (``cosine-epoch`` anneals once per epoch)."""
    decay_all: bool = False
    """Weight decay on every parameter (MAD's reference) instead of matrices only (never norms or biases)."""
    fused: Optional[bool] = None
    """AdamW as one fused kernel per step (``torch.optim.AdamW(fused=True)``); null = fused when the parameters
    are on a GPU, torch's default otherwise (so a CPU run keeps its numbers)."""

    def __post_init__(self) -> None:
        choice(self.schedule, SCHEDULES, "schedule")
        checks = {
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "beta1": 0 <= self.beta1 < 1,
            "beta2": 0 <= self.beta2 < 1,
            "eps": self.eps > 0,
            "warmup_steps": self.warmup_steps >= 0,
            "max_steps": self.max_steps >= 1,
            "min_lr_ratio": 0 <= self.min_lr_ratio <= 1,
            "steps_per_epoch": self.steps_per_epoch >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"={getattr(self, name)!r} is out of range", key=name)


def lr_factor(step: int, o: OptimConfig) -> float:
    """Multiplier of the peak lr at optimizer ``step``: linear warm-up, then cosine to ``min_lr_ratio``."""
    if step < o.warmup_steps:
        return (step + 1) / o.warmup_steps
    if o.schedule == "cosine-epoch":
        epochs = math.ceil(o.max_steps / o.steps_per_epoch)
        progress = min(1.0, (step // o.steps_per_epoch) / epochs)
    else:
        progress = min(1.0, (step - o.warmup_steps) / max(1, o.max_steps - o.warmup_steps))
    return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def param_groups(model: nn.Module, weight_decay: float, decay_all: bool = False) -> list[dict]:
    """Decay matrices (linears, embeddings), never norms or biases (ndim < 2) — or every parameter."""
    params = [p for p in model.parameters() if p.requires_grad]
    if decay_all:
        return [{"params": params, "weight_decay": weight_decay}]
    return [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, optim: OptimConfig) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over :func:`param_groups` (fused per ``optim.fused``) and its :func:`lr_factor` schedule."""
    groups = param_groups(model, optim.weight_decay, optim.decay_all)
    fused = optim.fused
    if fused is None:
        fused = all(p.is_cuda for group in groups for p in group["params"]) or None  # None: torch's default
    optimizer = torch.optim.AdamW(groups, lr=optim.lr, betas=(optim.beta1, optim.beta2), eps=optim.eps, fused=fused)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, optim))
    return optimizer, scheduler


def lightning_optimizers(model: nn.Module, optim: OptimConfig) -> dict:
    """What a LightningModule's ``configure_optimizers`` returns: the optimizer, its schedule stepped per step."""
    optimizer, scheduler = build_optimizer(model, optim)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
