"""HybridLMModule: next-token training of a HybridLM under a Lightning Trainer."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
import torchmetrics

from composer_automl.model import HybridLM
from composer_automl.optim import OptimConfig, lightning_optimizers
from composer_automl.spec import ModelSpec
from composer_automl.tokens import IGNORE_INDEX
from composer_automl.trainer import log_step_scalars


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
        log_step_scalars(self, loss, tokens=self.tokens_seen, lr=self.lr_schedulers().get_last_lr()[0])
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
        return lightning_optimizers(self.model, self.optim)
