"""Tokens/s and model FLOPs utilisation (MFU), logged every ``log_every`` steps."""

from __future__ import annotations

import time

import lightning as L
import torch

PEAK_TFLOPS = {"h200": 989.0, "h100": 989.0, "a100": 312.0}
"""Dense bf16 peak TFLOP/s per device (SXM parts), matched as a substring of the device name."""


def device_peak_flops(name: str) -> float | None:
    """Peak FLOP/s for a CUDA device name (``NVIDIA H100 80GB HBM3``), None if unknown."""
    lowered = name.lower()
    for key, tflops in PEAK_TFLOPS.items():
        if key in lowered:
            return tflops * 1e12
    return None


class TokenThroughput(L.Callback):
    """Logs ``perf/tokens_per_s`` (global), ``perf/tokens_per_s_per_device`` and ``perf/mfu``.

    MFU = flops_per_token · global tokens/s / (world size · peak FLOP/s), with the
    model's PaLM-style ``flops_per_token`` (forward + backward). MFU is logged only
    when the peak is known (device table or ``peak_flops``). Time is measured
    over the last ``window`` steps, from batch start to batch end, CUDA-synchronised.
    """

    def __init__(self, flops_per_token: float, tokens_per_step: int, peak_flops: float | None = None, window: int = 10):
        self.flops_per_token, self.tokens_per_step = flops_per_token, tokens_per_step
        self.peak_flops, self.window = peak_flops, window
        self._elapsed, self._steps, self._start = 0.0, 0, 0.0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.peak_flops is None and pl_module.device.type == "cuda":
            self.peak_flops = device_peak_flops(torch.cuda.get_device_name(pl_module.device))

    def _sync(self, pl_module: L.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync(pl_module)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sync(pl_module)
        self._elapsed += time.perf_counter() - self._start
        self._steps += 1
        if self._steps < self.window:
            return
        tokens_per_s = self.tokens_per_step * self._steps / self._elapsed
        metrics = {"perf/tokens_per_s": tokens_per_s, "perf/tokens_per_s_per_device": tokens_per_s / trainer.world_size}
        if self.peak_flops:
            metrics["perf/mfu"] = self.flops_per_token * tokens_per_s / (trainer.world_size * self.peak_flops)
        pl_module.log_dict(metrics, rank_zero_only=True)
        self._elapsed, self._steps = 0.0, 0
