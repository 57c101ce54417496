"""The Lightning ``Trainer`` of every training loop (pretraining, MAD runs, tensor-parallel training), and how
their training steps log scalars."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from composer_automl.devices import Device


def build_trainer(device: Device, out_dir: str | Path, log_name: str, *, max_steps: int,
                  callbacks: Sequence[L.Callback] = (), progress_bar: bool = False, log_every_n_steps: int = 50,
                  enable_checkpointing: bool = False, **options: Any) -> L.Trainer:
    """A Trainer on ``device`` that logs to TensorBoard in ``out_dir/log_name`` (``""``: ``out_dir`` itself).

    Common to every loop: a step budget (epochs unbounded), no sanity validation, no model summary,
    deterministic algorithms on CPU only, and no ``hp_metric`` placeholder session (it would compete
    with the search's own HParams rows). ``options`` are Lightning's (validation interval, strategy,
    accumulation, clipping, ...).
    """
    return L.Trainer(
        accelerator=device.accelerator,
        devices=device.devices,
        precision=device.precision,
        max_steps=max_steps,
        max_epochs=-1,
        num_sanity_val_steps=0,
        logger=TensorBoardLogger(save_dir=str(out_dir), name=log_name, version="", default_hp_metric=False),
        callbacks=list(callbacks),
        log_every_n_steps=log_every_n_steps,
        enable_checkpointing=enable_checkpointing,
        enable_model_summary=False,
        enable_progress_bar=progress_bar,
        deterministic=device.deterministic,
        default_root_dir=str(out_dir),
        **options,
    )


def log_step_scalars(module: L.LightningModule, loss: torch.Tensor, **host_values: float) -> None:
    """Log a training step's ``train/loss`` (a device tensor) and ``train/<name>`` host numbers without making the
    step wait for the device.

    Lightning reads every progress-bar value on the host after every batch, and turns a logged Python number
    into a tensor on the module's device (a blocking copy): on a GPU either is a synchronisation per step. So
    host numbers are logged as host tensors, and the progress bar gets a host copy of the loss taken on
    logging steps only (which synchronise anyway).
    """
    module.log("train/loss", loss)
    for name, value in host_values.items():
        module.log(f"train/{name}", torch.tensor(float(value)))
    trainer = module.trainer
    if (trainer.global_step + 1) % trainer.log_every_n_steps == 0:
        module.log("loss", loss.detach().cpu(), prog_bar=True, logger=False)
