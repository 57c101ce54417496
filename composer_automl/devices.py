"""Accelerator, device count and precision: one definition for every stage that trains.

A stage's config carries three fields (``accelerator``, ``devices``, ``precision``)
and uses this module twice:

* :func:`check_fields` in its ``__post_init__`` — the values are known names
  (no CUDA query, so configs validate on any machine);
* :func:`resolve` just before work starts — ``auto`` becomes a concrete choice and
  the choice is checked against this machine (a GPU run without a visible CUDA
  device, more devices than visible GPUs, a precision the device cannot run).

Every failure is one :class:`~composer_automl.config.ConfigError` naming the field
(``accelerator``, ``precision``, ``devices``; the loader adds the section the user typed,
e.g. ``trainer.accelerator``) and the allowed values. The resolved :class:`Device`
also says whether to ask Lightning for deterministic algorithms: only on CPU
(CUDA kernels without deterministic variants would raise or slow down).

Example::

    devices.check_fields(cfg.accelerator, cfg.precision, cfg.devices)   # __post_init__
    with located("pretrain"):                                            # where the command knows the path
        device = devices.resolve(cfg.accelerator, cfg.precision, cfg.devices)
    L.Trainer(accelerator=device.accelerator, devices=device.devices,
              precision=device.precision, deterministic=device.deterministic)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

from composer_automl.config import ConfigError, choice

ACCELERATORS = ("auto", "cpu", "gpu")
"""``auto`` = ``gpu`` when a CUDA device is visible, else ``cpu``."""

PRECISIONS = ("auto", "32-true", "bf16-mixed", "bf16-true", "16-mixed")
"""Lightning precision strings we accept; ``auto`` = :data:`AUTO_PRECISION` of the device."""

DEVICE_PRECISIONS = {
    "cpu": ("32-true", "bf16-mixed", "bf16-true"),
    "gpu": ("32-true", "bf16-mixed", "bf16-true", "16-mixed"),
}
"""Precisions each accelerator runs (fp16 autocast does not exist on CPU)."""

AUTO_PRECISION = {"cpu": "32-true", "gpu": "bf16-mixed"}


@dataclass(frozen=True)
class Device:
    """A concrete hardware choice: what a Lightning ``Trainer`` is given."""

    accelerator: str
    """``cpu`` or ``gpu`` (never ``auto``)."""
    devices: int
    """Devices (processes) per node."""
    precision: str
    """A Lightning precision string (never ``auto``)."""

    @property
    def deterministic(self) -> bool:
        """Lightning's ``deterministic`` flag: on for CPU runs only."""
        return self.accelerator == "cpu"

    @property
    def torch_type(self) -> str:
        """``cpu`` or ``cuda``: the ``torch.device`` type of this choice (code outside Lightning places tensors)."""
        return "cuda" if self.accelerator == "gpu" else "cpu"


def check_fields(accelerator: str, precision: str, devices: int = 1) -> None:
    """Static check of the three fields (allowed names, devices ≥ 1); no CUDA query."""
    choice(accelerator, ACCELERATORS, "accelerator")
    choice(precision, PRECISIONS, "precision")
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ConfigError(f"={devices!r} must be a positive integer", key="devices")
    if accelerator != "auto" and precision != "auto" and precision not in DEVICE_PRECISIONS[accelerator]:
        raise _precision_error(accelerator, precision)


def resolve(accelerator: str, precision: str, devices: int = 1) -> Device:
    """Resolve ``auto`` and check the choice against this machine (one ConfigError if it cannot run)."""
    import torch

    check_fields(accelerator, precision, devices)
    cuda = torch.cuda.is_available()
    if accelerator == "auto":
        accelerator = "gpu" if cuda else "cpu"
    if accelerator == "gpu":
        if not cuda:
            raise ConfigError("=gpu but no CUDA device is visible; use accelerator=cpu", key="accelerator")
        visible = torch.cuda.device_count()
        if devices > visible:
            raise ConfigError(f"={devices} but only {visible} CUDA device(s) are visible", key="devices")
    if precision == "auto":
        precision = AUTO_PRECISION[accelerator]
    if precision not in DEVICE_PRECISIONS[accelerator]:
        raise _precision_error(accelerator, precision)
    if accelerator == "gpu" and precision.startswith("bf16") and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"={precision} but this GPU has no bfloat16 support; use 16-mixed or 32-true",
                          key="precision")
    return Device(accelerator, devices, precision)


def _precision_error(accelerator: str, precision: str) -> ConfigError:
    return ConfigError(f"={precision!r} does not run on {accelerator}; "
                       f"choose one of {list(DEVICE_PRECISIONS[accelerator])} (or auto)", key="precision")


@contextlib.contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch intra-op threads (0: torch's default), restored afterwards. One thread avoids OpenMP
    oversubscription where processes share cores (tiny models ran ~10× slower with two threads on a busy 2-core box)."""
    import torch

    saved = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)
