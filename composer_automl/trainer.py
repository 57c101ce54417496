"""The Lightning ``Trainer`` of every training loop: pretraining, MAD runs and tensor-parallel training."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import lightning as L
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
