"""TokenThroughput: the clock counts training only, and MFU follows the given peak."""

from __future__ import annotations

import math
import time
import warnings

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from composer_automl import throughput
from composer_automl.throughput import TokenThroughput, peak_flops

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
    throughput = TokenThroughput(tokens_per_step=32, flops_per_token=1e6, peak_tflops=1e-3, window=4)
    trainer = _fit(tmp_path, throughput)
    metrics = trainer.callback_metrics
    rate = float(metrics["perf/tokens_per_s"])
    assert 0 < rate <= 32 / TRAIN_SLEEP_S
    assert float(metrics["perf/tokens_per_s_per_device"]) == pytest.approx(rate)
    assert float(metrics["perf/mfu"]) == pytest.approx(1e6 * rate / 1e9, rel=1e-5)
    assert float(metrics["perf/peak_tflops"]) == pytest.approx(1e-3)


DEVICE_PEAKS = {  # what torch.cuda.get_device_name reports → dense bf16 TFLOP/s and whose table gives it
    "NVIDIA H100 80GB HBM3": (989.4, "Lightning"),        # H100 SXM
    "NVIDIA H100 PCIe": (756.0, "Lightning"),
    "NVIDIA H100 80GB HBM2e": (756.0, "Lightning"),       # the PCIe card's memory
    "NVIDIA H100 NVL": (835.5, "H100 NVL column"),        # Lightning: two bridged cards (1978.8)
    "NVIDIA H100": (989.4, "H100 SXM"),
    "NVIDIA H200": (989.5, "H200 SXM"),                   # Lightning knows only 'h200 sxm1' (sparse figures)
    "NVIDIA H200 NVL": (835.5, "H200 NVL"),
    "NVIDIA GH200 480GB": (989.5, "GH200"),
    "NVIDIA GH200 144G HBM3e": (989.5, "GH200"),
    "NVIDIA H800": (989.4, "H800 SXM5"),
    "NVIDIA H800 PCIe": (756.0, "H800 PCIe"),
    "NVIDIA A100-SXM4-80GB": (312.0, "Lightning"),
    "NVIDIA A100-SXM4-40GB": (312.0, "Lightning"),
    "NVIDIA A100-PCIE-40GB": (312.0, "Lightning"),
    "NVIDIA A100 80GB PCIe": (312.0, "Lightning"),
    "NVIDIA A800-SXM4-80GB": (312.0, "A800"),
}


@pytest.fixture
def device_name(monkeypatch):
    """Make CUDA device 0 report the given name (no GPU needed)."""
    def set_name(name: str) -> torch.device:
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
        monkeypatch.setattr(throughput, "_warned", set())
        return torch.device("cuda", 0)
    return set_name


@pytest.mark.parametrize("name", DEVICE_PEAKS)
def test_every_h100_h200_a100_name_has_its_dense_bf16_peak(device_name, name):
    """Each name the CUDA runtime reports for an H100/H200/A100 variant → its dense bf16 peak (fp16 the same),
    from Lightning's table where it is right, else ours with the datasheet it comes from; no warning."""
    tflops, source = DEVICE_PEAKS[name]
    device = device_name(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for precision in ("bf16-mixed", "bf16-true", "16-mixed"):
            peak = peak_flops(device, precision)
            assert peak.flops == pytest.approx(tflops * 1e12, rel=1e-3), precision
            assert name in peak.source and source in peak.source


def test_fp32_peak_is_tf32_unless_matmuls_run_at_highest_precision(device_name):
    device = device_name("NVIDIA H200")
    saved = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")
        assert peak_flops(device, "32-true").flops == pytest.approx(494.5e12)
        torch.set_float32_matmul_precision("highest")
        assert peak_flops(device, "32-true").flops == pytest.approx(67e12)
    finally:
        torch.set_float32_matmul_precision(saved)


def test_unknown_device_is_nan_with_one_warning_and_the_override_wins(device_name):
    """An unknown name gives NaN and one warning naming trainer.peak_tflops (not Lightning's own as well), however
    often it is asked; trainer.peak_tflops wins over every table; CPUs have no peak and no warning."""
    device = device_name("Some Future GPU")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert math.isnan(peak_flops(device, "bf16-mixed").flops)
        assert math.isnan(peak_flops(device, "bf16-mixed").flops)
        assert math.isnan(peak_flops(torch.device("cpu"), "32-true").flops)
    assert [str(w.message) for w in caught] == [
        "no peak FLOP/s known for 'Some Future GPU' at precision bf16-mixed: perf/mfu is not logged; give the "
        "device's dense peak as trainer.peak_tflops"]
    assert peak_flops(device, "bf16-mixed", override_tflops=500.0).flops == 500e12
    assert peak_flops(device_name("NVIDIA H200"), "bf16-mixed", override_tflops=900.0) == \
        throughput.PeakFlops(900e12, "trainer.peak_tflops")


def test_mfu_is_not_logged_without_a_peak(tmp_path):
    """On CPU without trainer.peak_tflops: tokens/s are logged, MFU and the peak are not."""
    trainer = _fit(tmp_path, TokenThroughput(tokens_per_step=32, flops_per_token=1e6, window=4))
    assert "perf/tokens_per_s" in trainer.callback_metrics
    assert "perf/mfu" not in trainer.callback_metrics and "perf/peak_tflops" not in trainer.callback_metrics


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
