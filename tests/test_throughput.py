"""TokenThroughput: the clock counts training only, and MFU follows the given peak."""

from __future__ import annotations

import time

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from composer_automl.throughput import TokenThroughput, device_peak_flops

TRAIN_SLEEP_S, VAL_SLEEP_S, STEPS = 0.01, 0.1, 12


class SleepyModule(L.LightningModule):
    """A one-parameter module whose steps take a known time."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def training_step(self, batch, batch_idx):
        time.sleep(TRAIN_SLEEP_S)
        return (self.weight - batch[0].float().mean()) ** 2

    def validation_step(self, batch, batch_idx):
        time.sleep(VAL_SLEEP_S)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(tmp_path, throughput: TokenThroughput) -> L.Trainer:
    tokens = torch.zeros(64, 8, dtype=torch.long)
    loader = DataLoader(TensorDataset(tokens), batch_size=4)
    trainer = L.Trainer(accelerator="cpu", max_steps=STEPS, val_check_interval=4, limit_val_batches=2,
                        num_sanity_val_steps=0, log_every_n_steps=1, callbacks=[throughput],
                        logger=L.pytorch.loggers.CSVLogger(tmp_path), enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(SleepyModule(), loader, loader)
    return trainer


def test_validation_time_is_not_training_time(tmp_path):
    """3 validations of 2 × 0.1 s dwarf 12 training steps of 0.01 s; the clock leaves them out."""
    throughput = TokenThroughput(tokens_per_step=32, window=4)
    _fit(tmp_path, throughput)
    assert throughput.tokens == STEPS * 32
    assert STEPS * TRAIN_SLEEP_S <= throughput.seconds < STEPS * TRAIN_SLEEP_S + 0.5
    assert throughput.tokens_per_s == pytest.approx(throughput.tokens / throughput.seconds)


def test_windowed_rate_and_mfu_are_logged(tmp_path):
    """Every `window` steps: global and per-device tokens/s, and MFU = flops/token × rate / peak."""
    throughput = TokenThroughput(tokens_per_step=32, flops_per_token=1e6, peak_flops=1e9, window=4)
    trainer = _fit(tmp_path, throughput)
    metrics = trainer.callback_metrics
    rate = float(metrics["perf/tokens_per_s"])
    assert 0 < rate <= 32 / TRAIN_SLEEP_S
    assert float(metrics["perf/tokens_per_s_per_device"]) == pytest.approx(rate)
    assert float(metrics["perf/mfu"]) == pytest.approx(1e6 * rate / 1e9, rel=1e-5)


def test_peak_flops_come_from_lightnings_table_at_the_run_precision(monkeypatch):
    """Lightning's table: H100 SXM bf16 989 TFLOP/s (fp16 the same), A100 bf16 312; CPUs and unknown
    GPUs have no peak (MFU is then not logged unless trainer.peak_tflops is set)."""
    names = {0: "NVIDIA H100 80GB HBM3", 1: "NVIDIA A100-SXM4-80GB", 2: "Some Future GPU"}
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: names[torch.device(device).index])
    assert device_peak_flops(torch.device("cuda", 0), "bf16-mixed") == pytest.approx(989.4e12, rel=1e-3)
    assert device_peak_flops(torch.device("cuda", 0), "16-mixed") == pytest.approx(989.4e12, rel=1e-3)
    assert device_peak_flops(torch.device("cuda", 1), "bf16-true") == 312e12
    assert device_peak_flops(torch.device("cuda", 2), "bf16-mixed") is None
    assert device_peak_flops(torch.device("cpu"), "32-true") is None


def test_clock_is_read_only_on_logging_steps(tmp_path, monkeypatch):
    """With window=4 over 12 steps, the clock (and so any CUDA synchronisation) is read at the
    first batch, at each window end and around validations — not on every step."""
    throughput = TokenThroughput(tokens_per_step=32, window=4)
    readings = []
    original = throughput._now
    monkeypatch.setattr(throughput, "_now", lambda module: readings.append(1) or original(module))
    _fit(tmp_path, throughput)
    assert throughput.tokens == STEPS * 32
    # first batch 1 + window ends 3 + 3 validations × (pause, resume) 6 + end 1; per-step reading gave > 19
    assert len(readings) <= 11 < STEPS
