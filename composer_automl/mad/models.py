"""Models and the Lightning module of one MAD training run.

The model is a :class:`HybridLM` for every task but compression, which reads the
pattern's layers through an encoder bottleneck and a small decoder (as MAD's
autoencoder backbone does). :class:`MADModule` trains it on one setting and
evaluates the scored test positions: each evaluation's token-weighted test loss and
its accuracy (macro per batch averaged over batches, as the reference logs it, or
micro over all scored positions) are kept, so the run can report the evaluation
with the lowest test loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import lightning as L
import torch
import torchmetrics
from torch import nn
from torchmetrics.functional.classification import multiclass_accuracy

from composer_automl.lightning_module import next_token_loss
from composer_automl.model import INIT_STD, HybridLM
from composer_automl.optim import OptimConfig, lightning_optimizers
from composer_automl.spec import ModelSpec
from composer_automl.tokens import IGNORE_INDEX

ACCURACIES = ("macro", "micro")
"""``macro``: torchmetrics' multiclass default per batch, averaged over batches (the reference);
``micro``: correct / scored over the whole test set."""


def sincos_positions(seq_len: int, dim: int) -> torch.Tensor:
    """Fixed sinusoidal position table (seq_len, dim) that tells the decoder which token to restore."""
    pos = torch.arange(seq_len, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10_000.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    table = torch.zeros(seq_len, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table


class CompressionAutoEncoder(nn.Module):
    """Pattern layers encode the sequence into its last position; an MLP decodes every token.

    encode: HybridLM embedding + residual layers + final norm, keep position T−1
    (causal, so it has seen the whole sequence) → (B, d). decode: add a position
    code per output slot → 2-layer GELU MLP → RMSNorm → vocabulary logits (B, T, V).
    """

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.encoder = HybridLM(spec)  # its (tied) LM head is unused; only the bottleneck is read
        d = spec.d_model
        self.register_buffer("positions", sincos_positions(spec.max_seq_len, d), persistent=False)
        self.decoder = nn.Sequential(
            nn.RMSNorm(d), nn.Linear(d, d), nn.GELU(), nn.RMSNorm(d), nn.Linear(d, d), nn.GELU(), nn.RMSNorm(d)
        )
        self.unembed = nn.Linear(d, spec.vocab_size)
        for module in (*self.decoder, self.unembed):
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=INIT_STD)
                nn.init.zeros_(module.bias)

    def encode(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) → bottleneck (B, d)."""
        lm = self.encoder
        x = lm.embed(idx)  # (B, T, d)
        for layer in lm.layers:
            x = layer(x, lm.rope_cos, lm.rope_sin)
        return lm.final_norm(x)[:, -1]

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) → reconstruction logits (B, T, V)."""
        code = self.encode(idx)
        x = code[:, None, :] + self.positions[: idx.shape[1]]  # (B, T, d)
        return self.unembed(self.decoder(x))


@dataclass(frozen=True)
class Evaluation:
    """One pass over the test set."""

    step: int
    loss: float
    """Token-weighted mean cross-entropy over the scored test positions."""
    accuracy: float


def best_evaluation(evaluations: list[Evaluation]) -> Evaluation:
    """The evaluation with the lowest test loss (the earliest on ties): the one a run reports."""
    if not evaluations:
        raise ValueError("a run needs at least one evaluation")
    return min(evaluations, key=lambda e: (e.loss, e.step))


class MADModule(L.LightningModule):
    """One MAD run: trains on ``(inputs, targets)`` batches, evaluates the scored test positions.

    Metrics are logged under ``<tag>/train_loss``, ``<tag>/test_loss`` and
    ``<tag>/test_acc`` so that every run of a trial can share one TensorBoard run.
    """

    def __init__(self, spec: ModelSpec, optim: OptimConfig, tag: str, autoencoder: bool = False,
                 accuracy: str = "macro"):
        super().__init__()
        self.spec, self.optim, self.tag, self.accuracy = spec, optim, tag, accuracy
        self.model = CompressionAutoEncoder(spec) if autoencoder else HybridLM(spec)
        self.test_loss = torchmetrics.MeanMetric()
        self.test_acc = torchmetrics.MeanMetric() if accuracy == "macro" else \
            torchmetrics.classification.MulticlassAccuracy(spec.vocab_size, ignore_index=IGNORE_INDEX, average="micro")
        self.evaluations: list[Evaluation] = []

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(idx)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        loss = next_token_loss(self(inputs), targets)  # logits (B, T, V)
        self.log(f"{self.tag}/train_loss", loss)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        inputs, targets = batch
        logits = self(inputs)  # (B, T, V)
        n_scored = (targets != IGNORE_INDEX).sum()
        self.test_loss.update(next_token_loss(logits, targets), weight=n_scored)
        logits, targets = logits.flatten(0, 1).float(), targets.flatten()  # (B·T, V), (B·T,)
        if self.accuracy == "macro":
            batch_acc = multiclass_accuracy(logits.argmax(-1), targets, self.spec.vocab_size, average="macro",
                                            ignore_index=IGNORE_INDEX)
            self.test_acc.update(batch_acc, weight=inputs.shape[0])
        else:
            self.test_acc.update(logits, targets)

    def on_validation_epoch_end(self) -> None:
        loss, acc = self.test_loss.compute(), self.test_acc.compute()
        self.test_loss.reset()
        self.test_acc.reset()
        self.evaluations.append(Evaluation(self.global_step, float(loss), float(acc)))
        self.log(f"{self.tag}/test_loss", loss)
        self.log(f"{self.tag}/test_acc", acc)

    def configure_optimizers(self):
        return lightning_optimizers(self.model, self.optim)
