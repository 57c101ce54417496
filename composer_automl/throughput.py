"""Training throughput (tokens/s) and model FLOPs utilisation (MFU) of a Lightning run.

Lightning's own ``ThroughputMonitor`` assumes every rank trains on distinct samples;
under tensor parallelism the ranks of a TP group share one batch, so the global
token count is given here explicitly (micro-batch × sequence × data-parallel size).

MFU needs the device's dense peak FLOP/s at the run's precision (:func:`peak_flops`):
``trainer.peak_tflops`` when given, else Lightning's table
(``lightning.fabric.utilities.throughput.get_available_flops``), else :data:`PEAKS` for the
names Lightning misses — and for the names whose Lightning figure is not one GPU's dense peak
(H200: its with-sparsity figures; H100 NVL: a pair of NVLink-bridged cards).
"""

from __future__ import annotations

import math
import re
import time
import warnings
from dataclasses import dataclass

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

PRECISION_DTYPES = {"bf16": torch.bfloat16, "16": torch.float16, "32": torch.float32, "64": torch.float64}
"""Leading part of a Lightning precision string (``bf16-mixed`` → ``bf16``) → the matmul dtype."""


@dataclass(frozen=True)
class Peak:
    """Dense (no 2:4 sparsity) tensor-core peak TFLOP/s of one GPU model, as its datasheet gives it."""

    pattern: str
    """Regular expression searched in the lower-cased CUDA device name."""
    tflops_16: float
    """bf16 and fp16 (datasheets print twice this "with sparsity")."""
    tflops_tf32: float
    tflops_32: float
    """fp32 without tensor cores (``torch.set_float32_matmul_precision("highest")``)."""
    source: str
    replaces_lightning: bool = False
    """Lightning's table has this name but not one GPU's dense peak: ours is used instead."""


PEAKS = (
    Peak(r"\bh100 nvl\b", 835.5, 417.5, 60.0, "NVIDIA H100 datasheet, H100 NVL column, per GPU "
         "(BF16 1,671 / TF32 835 TFLOPS with sparsity); Lightning's entry is two bridged cards", True),
    Peak(r"\bh200 nvl\b", 835.5, 417.5, 60.0, "NVIDIA H200 datasheet, H200 NVL (BF16 1,671 / TF32 835 TFLOPS "
         "with sparsity); Lightning's h200 entries are the with-sparsity figures", True),
    Peak(r"\bgh200\b", 989.5, 494.5, 67.0, "NVIDIA GH200 Grace Hopper datasheet (BF16 1,979 / TF32 989 TFLOPS "
         "with sparsity)"),
    Peak(r"\bh200\b", 989.5, 494.5, 67.0, "NVIDIA H200 datasheet, H200 SXM, which CUDA calls 'NVIDIA H200' "
         "(BF16 1,979 / TF32 989 TFLOPS with sparsity); Lightning's h200 entries are the with-sparsity figures", True),
    Peak(r"\bh800 pcie\b", 756.0, 378.0, 51.2, "NVIDIA H800 PCIe datasheet: the H100 PCIe's tensor cores"),
    Peak(r"\bh800\b", 989.4, 494.7, 66.9, "NVIDIA H800 SXM5 datasheet: the H100 SXM's tensor cores"),
    Peak(r"\ba800\b", 312.0, 156.0, 19.5, "NVIDIA A800 datasheet: the A100's tensor cores"),
    Peak(r"\bh100\b", 989.4, 494.7, 66.9, "NVIDIA H100 datasheet, H100 SXM: an H100 name without 'HBM3', "
         "'PCIe', 'HBM2e' or 'NVL' (e.g. 'NVIDIA H100') is an SXM part"),
)
"""Our peaks, first match wins; consulted only where Lightning's table has no figure (or a wrong one)."""


@dataclass(frozen=True)
class PeakFlops:
    """The peak an MFU figure is measured against, and where it came from."""

    flops: float
    """Dense peak FLOP/s of one device at the run's precision; NaN when unknown."""
    source: str

    @property
    def known(self) -> bool:
        return math.isfinite(self.flops)


_warned: set[tuple[str, str]] = set()


def peak_flops(device: torch.device, precision: str = "bf16-mixed", override_tflops: float | None = None) -> PeakFlops:
    """Dense peak FLOP/s of one ``device`` at Lightning ``precision``: ``override_tflops`` (``trainer.peak_tflops``)
    wins; then Lightning's table, then :data:`PEAKS`. A CUDA device neither knows gives NaN and one warning per
    name and precision; a CPU gives NaN silently (no table lists CPUs)."""
    if override_tflops is not None:
        return PeakFlops(override_tflops * 1e12, "trainer.peak_tflops")
    if device.type != "cuda":
        return PeakFlops(math.nan, f"no peak for {device.type} devices")
    name = torch.cuda.get_device_name(device)
    key = str(precision).split("-")[0]
    ours = next((p for p in PEAKS if re.search(p.pattern, name.lower())), None)
    if ours is None or not ours.replaces_lightning:
        theirs = _lightning_peak(device, PRECISION_DTYPES.get(key))
        if theirs:
            return PeakFlops(theirs, f"{name}: Lightning's get_available_flops")
    if ours is not None and key in ("bf16", "16", "32"):
        if key == "32":
            tf32 = torch.get_float32_matmul_precision() != "highest"
            return PeakFlops((ours.tflops_tf32 if tf32 else ours.tflops_32) * 1e12, f"{name}: {ours.source}")
        return PeakFlops(ours.tflops_16 * 1e12, f"{name}: {ours.source}")
    if (name, key) not in _warned:
        _warned.add((name, key))
        rank_zero_warn(f"no peak FLOP/s known for {name!r} at precision {precision}: perf/mfu is not logged; "
                       "give the device's dense peak as trainer.peak_tflops")
    return PeakFlops(math.nan, f"{name}: unknown")


def _lightning_peak(device: torch.device, dtype: torch.dtype | None) -> float | None:
    """Lightning's figure, or None (its own 'FLOPs not found' warning is ours to give, once)."""
    from lightning.fabric.utilities.throughput import get_available_flops

    if dtype is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flops = get_available_flops(device, dtype)
    return float(flops) if flops else None


class TokenThroughput(L.Callback):
    """Logs ``perf/tokens_per_s`` (global), ``perf/tokens_per_s_per_device`` and ``perf/mfu``.

    The clock runs from the first training batch on (set-up excluded) and pauses during
    validation, so it counts data loading, forward, backward and the optimizer step. Every
    ``window`` steps the rate over those steps is logged; :attr:`tokens_per_s` is the rate
    over the whole run. MFU = flops_per_token · tokens/s / (world size · peak FLOP/s), with
    the model's ``flops_per_token`` (forward + backward); it is logged, beside
    ``perf/peak_tflops``, only when the peak is known (:func:`peak_flops` at the run's precision,
    ``peak_tflops`` overriding it), and the peak used is announced once at set-up.
    The clock is read — and CUDA synchronised — only at window ends (the
    steps that log), at validation start and at the end of training, never on other steps.
    ``tokens_per_step`` counts one training batch (a micro-batch under accumulation).
    """

    def __init__(self, tokens_per_step: int, flops_per_token: float | None = None,
                 peak_tflops: float | None = None, window: int = 10):
        self.tokens_per_step, self.flops_per_token = tokens_per_step, flops_per_token
        self.peak_tflops, self.window = peak_tflops, window
        self.peak: PeakFlops | None = None
        """The peak MFU is measured against (set at set-up)."""
        self.tokens, self.seconds = 0, 0.0
        self._since: float | None = None
        self._window_steps, self._window_seconds = 0, 0.0

    @property
    def tokens_per_s(self) -> float:
        """Global training tokens per second over the run so far (validation excluded)."""
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.peak = peak_flops(pl_module.device, trainer.precision, self.peak_tflops)
        if self.peak.known and self.flops_per_token:
            rank_zero_info(f"perf/mfu: against a peak of {self.peak.flops / 1e12:.1f} TFLOP/s per device at "
                           f"{trainer.precision} ({self.peak.source})")

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
        if self.peak is not None and self.peak.known and self.flops_per_token:
            metrics["perf/mfu"] = self.flops_per_token * rate / (trainer.world_size * self.peak.flops)
            metrics["perf/peak_tflops"] = self.peak.flops / 1e12
        pl_module.log_dict(metrics, rank_zero_only=True)
        self._window_steps, self._window_seconds = 0, 0.0

    def on_validation_start(self, trainer, pl_module) -> None:
        self._advance_clock(pl_module, running=False)

    def on_train_end(self, trainer, pl_module) -> None:
        self._advance_clock(pl_module, running=False)
