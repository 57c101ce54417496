"""Training throughput (tokens/s) and model FLOPs utilisation (MFU) of a Lightning run.

Lightning's own ``ThroughputMonitor`` assumes every rank trains on distinct samples;
under tensor parallelism the ranks of a TP group share one batch, so the global
token count is given here explicitly (micro-batch × sequence × data-parallel size).
"""

from __future__ import annotations

import time

import lightning as L
import torch

PRECISION_DTYPES = {"bf16": torch.bfloat16, "16": torch.float16, "32": torch.float32, "64": torch.float64}
"""Leading part of a Lightning precision string (``bf16-mixed`` → ``bf16``) → the matmul dtype."""


def device_peak_flops(device: torch.device, precision: str = "bf16-mixed") -> float | None:
    """Dense peak FLOP/s of one device at ``precision``, from Lightning's device table
    (``lightning.fabric.utilities.throughput.get_available_flops``); None for CPUs and unknown devices."""
    from lightning.fabric.utilities.throughput import get_available_flops

    if device.type != "cuda":
        return None
    dtype = PRECISION_DTYPES.get(str(precision).split("-")[0])
    flops = get_available_flops(device, dtype) if dtype is not None else None
    return float(flops) if flops else None


class TokenThroughput(L.Callback):
    """Logs ``perf/tokens_per_s`` (global), ``perf/tokens_per_s_per_device`` and ``perf/mfu``.

    The clock runs from the first training batch on (set-up excluded) and pauses during
    validation, so it counts data loading, forward, backward and the optimizer step. Every
    ``window`` steps the rate over those steps is logged; :attr:`tokens_per_s` is the rate
    over the whole run. MFU = flops_per_token · tokens/s / (world size · peak FLOP/s), with
    the model's ``flops_per_token`` (forward + backward); it is logged only when the peak is
    known (``peak_flops``, i.e. ``trainer.peak_tflops``, or Lightning's device table at the
    run's precision). The clock is read — and CUDA synchronised — only at window ends (the
    steps that log), at validation start and at the end of training, never on other steps.
    ``tokens_per_step`` counts one training batch (a micro-batch under accumulation).
    """

    def __init__(self, tokens_per_step: int, flops_per_token: float | None = None,
                 peak_flops: float | None = None, window: int = 10):
        self.tokens_per_step, self.flops_per_token = tokens_per_step, flops_per_token
        self.peak_flops, self.window = peak_flops, window
        self.tokens, self.seconds = 0, 0.0
        self._since: float | None = None
        self._window_steps, self._window_seconds = 0, 0.0

    @property
    def tokens_per_s(self) -> float:
        """Global training tokens per second over the run so far (validation excluded)."""
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.peak_flops is None:
            self.peak_flops = device_peak_flops(pl_module.device, trainer.precision)

    def _now(self, pl_module: L.LightningModule) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)  # kernels are asynchronous: time finished work
        return time.perf_counter()

    def _advance_clock(self, pl_module: L.LightningModule, running: bool) -> None:
        """Add the time since the last reading to the totals; keep the clock running or stop it."""
        if self._since is None:
            return
        now = self._now(pl_module)
        self.seconds += now - self._since
        self._window_seconds += now - self._since
        self._since = now if running else None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._since is None:
            self._since = self._now(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.tokens += self.tokens_per_step
        self._window_steps += 1
        if self._window_steps < self.window:
            return  # no clock reading, so no CUDA synchronisation, between logging steps
        self._advance_clock(pl_module, running=True)
        rate = self.tokens_per_step * self._window_steps / self._window_seconds
        metrics = {"perf/tokens_per_s": rate, "perf/tokens_per_s_per_device": rate / trainer.world_size}
        if self.peak_flops and self.flops_per_token:
            metrics["perf/mfu"] = self.flops_per_token * rate / (trainer.world_size * self.peak_flops)
        pl_module.log_dict(metrics, rank_zero_only=True)
        self._window_steps, self._window_seconds = 0, 0.0

    def on_validation_start(self, trainer, pl_module) -> None:
        self._advance_clock(pl_module, running=False)

    def on_train_end(self, trainer, pl_module) -> None:
        self._advance_clock(pl_module, running=False)
