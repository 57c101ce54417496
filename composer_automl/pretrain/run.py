"""One pretraining run: prepared corpus → Lightning training of a ModelSpec → held-out loss."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from composer_automl.config import ConfigError, located
from composer_automl.data.prepare import PreparedData, prepare
from composer_automl.data.windows import TokenWindows
from composer_automl.devices import resolve as resolve_device
from composer_automl.lightning_module import HybridLMModule
from composer_automl.optim import OptimConfig
from composer_automl.pretrain.config import PretrainConfig
from composer_automl.quiet import quiet_lightning
from composer_automl.spec import ModelSpec
from composer_automl.throughput import TokenThroughput
from composer_automl.trainer import build_trainer

TENSORBOARD_DIR = "tensorboard"
"""Sub-folder of the run's ``out_dir`` holding the TensorBoard event files."""


@dataclass(frozen=True)
class PretrainData:
    """The windows one run trains and validates on."""

    prepared: PreparedData
    train: TokenWindows
    valid: TokenWindows
    """The fixed held-out windows (same for every run with this corpus and seq_len)."""


def held_out_windows(valid: TokenWindows, valid_tokens: int) -> list[int]:
    """``valid_tokens // seq_len`` window indices spread evenly over the valid split (deterministic)."""
    wanted = min(valid_tokens // valid.seq_len, valid.n_windows)
    return sorted({int(i) for i in np.linspace(0, valid.n_windows - 1, wanted).round()})


def load_data(cfg: PretrainConfig) -> PretrainData:
    """Prepare (or reuse) the corpus and check it is big enough for ``seq_len × batch_size``."""
    with located("data"):
        prepared = prepare(cfg.data)
    train = TokenWindows(prepared.prefix("train"), cfg.seq_len)
    valid = TokenWindows(prepared.prefix("valid"), cfg.seq_len)
    if train.n_windows < cfg.batch_size:
        raise ConfigError(f": the train split has {train.n_tokens} tokens, too few for one batch of seq_len × "
                          f"batch_size = {cfg.seq_len} × {cfg.batch_size} (+1); use a bigger corpus or lower "
                          "seq_len / batch_size", key="data")
    if valid.n_windows < 1:
        raise ConfigError(f": the valid split has {valid.n_tokens} tokens, fewer than seq_len + 1 = {cfg.seq_len + 1}; "
                          "raise data.valid_fraction or use a bigger corpus", key="data")
    return PretrainData(prepared, train, valid.subset(held_out_windows(valid, cfg.valid_tokens)))


def run_pretraining(spec: ModelSpec, cfg: PretrainConfig, out_dir: Path, seed: int,
                    data: PretrainData | None = None) -> dict[str, float]:
    """Train ``spec`` for ``cfg.train_tokens`` and return plain-float metrics incl. ``val_loss``.

    Deterministic for a seed: the model init, the shuffling of training windows and
    the held-out windows depend only on ``seed``, the corpus and ``cfg``.
    """
    device = resolve_device(cfg.accelerator, cfg.precision, cfg.devices)
    data = data or load_data(cfg)
    if spec.vocab_size < data.prepared.vocab_size:
        raise ConfigError(f"model vocab_size={spec.vocab_size} is smaller than the tokenizer's "
                          f"{data.prepared.vocab_size}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    L.seed_everything(seed, workers=True, verbose=False)
    optim = OptimConfig(lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps,
                        max_steps=cfg.max_steps, min_lr_ratio=cfg.min_lr_ratio)
    module = HybridLMModule(spec, optim)
    if cfg.compile:
        module.model.compile_layers()  # in place: parameter names (and checkpoints) stay those of the eager model
    train_loader = DataLoader(data.train, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                              generator=torch.Generator().manual_seed(seed))
    valid_loader = DataLoader(data.valid, batch_size=cfg.batch_size)
    throughput = TokenThroughput(cfg.batch_size * cfg.seq_len, spec.flops_per_token(cfg.seq_len), window=cfg.log_every_n_steps)
    periodic_eval = cfg.eval_every_steps > 0
    with quiet_lightning(), _cpu_threads(cfg):
        trainer = build_trainer(
            device, out_dir, TENSORBOARD_DIR, max_steps=cfg.max_steps, callbacks=[throughput],
            progress_bar=cfg.progress_bar, log_every_n_steps=cfg.log_every_n_steps,
            gradient_clip_val=cfg.grad_clip or None,
            val_check_interval=cfg.eval_every_steps if periodic_eval else None,
            check_val_every_n_epoch=None if periodic_eval else 1,
        )
        trainer.fit(module, train_loader, valid_loader if cfg.eval_every_steps else None)
        train_loss = float(trainer.callback_metrics["train/loss"])
        final = trainer.validate(module, valid_loader, verbose=False)[0]
    return {
        "val_loss": float(final["val/loss"]),
        "val_ppl": float(final["val/ppl"]),
        "val_acc": float(final["val/acc"]),
        "train_loss": train_loss,
        "tokens_per_s": throughput.tokens_per_s,
        "train_tokens": float(throughput.tokens),
        "train_steps": float(trainer.global_step),
        "valid_tokens": float(len(data.valid) * cfg.seq_len),
        "n_params": float(spec.num_params()),
        "wall_time_s": time.perf_counter() - start,
    }


@contextlib.contextmanager
def _cpu_threads(cfg: PretrainConfig):
    """Run with ``cfg.cpu_threads`` torch threads (restored afterwards)."""
    saved = torch.get_num_threads()
    if cfg.cpu_threads:
        torch.set_num_threads(cfg.cpu_threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)
