"""TokensPerSecond: training throughput of a Lightning run, validation time excluded."""

from __future__ import annotations

import time

import lightning as L
import torch


class TokensPerSecond(L.Callback):
    """Logs ``train/tokens_per_s`` = input tokens trained on / seconds spent in the training loop.

    The clock starts at the first training batch (so set-up is excluded), pauses during
    validation, and counts data loading, forward, backward and the optimizer step.
    """

    def __init__(self) -> None:
        self.tokens = 0
        self.seconds = 0.0
        self._since: float | None = None

    def _now(self, module: L.LightningModule) -> float:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)  # kernels are async: time finished work
        return time.perf_counter()

    def _pause(self, module: L.LightningModule) -> None:
        if self._since is not None:
            self.seconds += self._now(module) - self._since
            self._since = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._since is None:
            self._since = self._now(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.tokens += batch[0].numel()
        if trainer.global_step % trainer.log_every_n_steps == 0:
            pl_module.log("train/tokens_per_s", self.value(pl_module))

    def on_validation_start(self, trainer, pl_module) -> None:
        self._pause(pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self._pause(pl_module)

    def value(self, module: L.LightningModule) -> float:
        """Tokens per second so far."""
        seconds = self.seconds + (self._now(module) - self._since if self._since is not None else 0.0)
        return self.tokens / seconds if seconds > 0 else 0.0
