"""composer_automl.devices: one definition of accelerator/devices/precision and their checks."""

from __future__ import annotations

import pytest
import torch

from composer_automl import devices
from composer_automl.config import ConfigError, located


def fake_gpus(monkeypatch, count: int, bf16: bool = True) -> None:
    """Make torch report ``count`` CUDA devices (the checks only ask these three questions)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)


@pytest.mark.parametrize("accelerator, precision, n, message", [
    ("tpu", "auto", 1, "x.accelerator='tpu' is not allowed; choose one of ['auto', 'cpu', 'gpu']"),
    ("cpu", "fp8", 1, "x.precision='fp8' is not allowed"),
    ("cpu", "16-mixed", 1, "x.precision='16-mixed' does not run on cpu; choose one of ['32-true', 'bf16-mixed', 'bf16-true']"),
    ("gpu", "auto", 0, "x.devices=0 must be a positive integer"),
])
def test_static_check_names_the_field_and_allowed_values(accelerator, precision, n, message):
    """Unknown names, a precision the accelerator cannot run and devices < 1 fail without a CUDA query; the
    field is named relative to the config, the caller adds the section (here ``x``)."""
    with pytest.raises(ConfigError) as err:
        with located("x"):
            devices.check_fields(accelerator, precision, n)
    assert str(err.value).startswith(message)


def test_resolve_on_a_machine_without_cuda(monkeypatch):
    """auto → cpu with fp32 and deterministic; gpu → one clear error naming the field."""
    fake_gpus(monkeypatch, 0)
    assert devices.resolve("auto", "auto") == devices.Device("cpu", 1, "32-true")
    assert devices.resolve("cpu", "bf16-mixed").deterministic
    with pytest.raises(ConfigError, match=r"^pretrain.accelerator=gpu but no CUDA device is visible; use accelerator=cpu$"):
        with located("pretrain"):
            devices.resolve("gpu", "auto")


def test_resolve_on_a_machine_with_gpus(monkeypatch):
    """auto → gpu with bf16-mixed, not deterministic; cpu stays cpu; too many devices or bf16 on a
    GPU without bf16 is one error."""
    fake_gpus(monkeypatch, 2)
    gpu = devices.resolve("auto", "auto", 2)
    assert (gpu.accelerator, gpu.devices, gpu.precision, gpu.deterministic) == ("gpu", 2, "bf16-mixed", False)
    assert devices.resolve("cpu", "auto").accelerator == "cpu"  # the config decides, not CUDA
    assert devices.resolve("gpu", "16-mixed").precision == "16-mixed"
    with pytest.raises(ConfigError, match=r"^devices=4 but only 2 CUDA device\(s\) are visible$"):
        devices.resolve("gpu", "auto", 4)
    fake_gpus(monkeypatch, 1, bf16=False)
    with pytest.raises(ConfigError, match="^precision=bf16-mixed but this GPU has no bfloat16 support"):
        devices.resolve("gpu", "auto")


def test_cpu_threads_sets_and_restores_torch_threads():
    import torch

    from composer_automl.devices import cpu_threads

    before = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with cpu_threads(0):
        assert torch.get_num_threads() == before
