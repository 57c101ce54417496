"""HybridLMModule: next-token training of a HybridLM under a Lightning Trainer."""

from __future__ import annotations

import math
from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
import torchmetrics
from torch import nn

from composer_automl.config import ConfigError
from composer_automl.model import HybridLM
from composer_automl.spec import ModelSpec
from composer_automl.tokens import IGNORE_INDEX


@dataclass
class OptimConfig:
    """AdamW with linear warm-up then cosine decay, stepped every optimizer step."""

    lr: float = 3e-3
    """Peak learning rate."""
    weight_decay: float = 0.1
    """Decoupled weight decay for matrices (never norms or biases)."""
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    warmup_steps: int = 10
    """Linear warm-up from 0 to ``lr``."""
    max_steps: int = 100
    """Length of the schedule; the cosine reaches ``min_lr_ratio·lr`` here."""
    min_lr_ratio: float = 0.1
    """Final learning rate as a fraction of the peak."""

    def __post_init__(self) -> None:
        checks = {
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "beta1": 0 <= self.beta1 < 1,
            "beta2": 0 <= self.beta2 < 1,
            "eps": self.eps > 0,
            "warmup_steps": self.warmup_steps >= 0,
            "max_steps": self.max_steps >= 1,
            "min_lr_ratio": 0 <= self.min_lr_ratio <= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"optim.{bad[0]}={getattr(self, bad[0])!r} is out of range")


def lr_factor(step: int, warmup_steps: int, max_steps: int, min_lr_ratio: float) -> float:
    """Multiplier of the peak lr at ``step``: linear warm-up, cosine to ``min_lr_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices (linears, embeddings); never norms or biases (ndim < 2)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, optim: OptimConfig) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over :func:`param_groups` and its warm-up + cosine schedule."""
    optimizer = torch.optim.AdamW(
        param_groups(model, optim.weight_decay), lr=optim.lr, betas=(optim.beta1, optim.beta2), eps=optim.eps
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, optim.warmup_steps, optim.max_steps, optim.min_lr_ratio)
    )
    return optimizer, scheduler


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over positions whose target is not ``IGNORE_INDEX``."""
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX)


class HybridLMModule(L.LightningModule):
    """Trains a :class:`HybridLM` on ``(inputs, targets)`` batches of token ids.

    Targets are already shifted (``targets[t]`` is the token after ``inputs[t]``);
    positions with target −100 do not count. Logs ``train/loss``, ``train/lr`` and
    ``train/tokens`` every step and ``val/loss``, ``val/ppl``, ``val/acc`` per epoch.
    """

    def __init__(self, spec: ModelSpec, optim: OptimConfig | None = None):
        super().__init__()
        self.spec = spec
        self.optim = optim or OptimConfig()
        self.save_hyperparameters({"model": spec.to_dict(), "optim": vars(self.optim)})
        self.model = HybridLM(spec)
        self.val_loss = torchmetrics.MeanMetric()
        self.val_ppl = torchmetrics.text.Perplexity(ignore_index=IGNORE_INDEX)
        self.val_acc = torchmetrics.classification.MulticlassAccuracy(
            num_classes=spec.vocab_size, ignore_index=IGNORE_INDEX, average="micro"
        )
        self.tokens_seen = 0

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(idx)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        loss = next_token_loss(self(inputs), targets)
        self.tokens_seen += inputs.numel()
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/tokens", float(self.tokens_seen))
        self.log("train/lr", self.lr_schedulers().get_last_lr()[0])
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        inputs, targets = batch
        logits = self(inputs)
        n_scored = (targets != IGNORE_INDEX).sum()
        self.val_loss.update(next_token_loss(logits, targets), weight=n_scored)
        self.val_ppl.update(logits.float(), targets)
        self.val_acc.update(logits.flatten(0, 1), targets.flatten())
        self.log("val/loss", self.val_loss, prog_bar=True)
        self.log("val/ppl", self.val_ppl)
        self.log("val/acc", self.val_acc, prog_bar=True)

    def configure_optimizers(self):
        optimizer, scheduler = build_optimizer(self.model, self.optim)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
