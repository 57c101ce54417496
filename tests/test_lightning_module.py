"""HybridLMModule training: overfitting, schedule, weight decay groups, TensorBoard logs."""

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader, TensorDataset

from composer_automl.config import ConfigError
from composer_automl.lightning_module import HybridLMModule
from composer_automl.optim import OptimConfig
from composer_automl.model import HybridLM
from composer_automl.presets import get_preset


def make_fixed_batch(batch: int = 8, seq: int = 32, vocab: int = 256, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (batch, seq + 1), generator=g)
    return tokens[:, :-1].clone(), tokens[:, 1:].clone()


def make_trainer(tmp_path, max_steps: int, **kw) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu", devices=1, max_steps=max_steps, logger=TensorBoardLogger(tmp_path, name="tb"),
        enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=False,
        deterministic=True, log_every_n_steps=1, **kw,
    )


def test_tiny_model_overfits_a_fixed_batch(tmp_path):
    """Loss on one repeated batch falls by at least half within 40 steps on CPU."""
    L.seed_everything(0)
    inputs, targets = make_fixed_batch()
    module = HybridLMModule(get_preset("tiny"), OptimConfig(lr=1e-2, warmup_steps=5, max_steps=40, weight_decay=0.0))
    data = DataLoader(TensorDataset(inputs, targets), batch_size=8)
    with torch.no_grad():
        initial = module.model(inputs)
    initial_loss = torch.nn.functional.cross_entropy(initial.flatten(0, 1), targets.flatten()).item()
    make_trainer(tmp_path, 40).fit(module, data)
    with torch.no_grad():
        final = module.model(inputs)
    final_loss = torch.nn.functional.cross_entropy(final.flatten(0, 1), targets.flatten()).item()
    assert final_loss < 0.5 * initial_loss, (initial_loss, final_loss)


def test_tensorboard_event_files_hold_train_and_val_scalars(tmp_path):
    """Training writes event files whose train/ and val/ scalars read back with the right counts."""
    L.seed_everything(0)
    inputs, targets = make_fixed_batch(batch=4, seq=16)
    targets[:, :4] = -100  # unscored positions must not break the metrics
    module = HybridLMModule(get_preset("tiny"), OptimConfig(max_steps=6, warmup_steps=2))
    data = DataLoader(TensorDataset(inputs, targets), batch_size=2)
    make_trainer(tmp_path, 6, val_check_interval=3, check_val_every_n_epoch=None).fit(module, data, data)
    events = list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(events[0].parent)).Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/tokens", "val/loss", "val/ppl", "val/acc"} <= tags
    assert len(acc.Scalars("train/loss")) == 6
    assert len(acc.Scalars("val/loss")) == 2
    tokens = [e.value for e in acc.Scalars("train/tokens")]
    assert tokens == [32.0 * (i + 1) for i in range(6)]
    ppl = acc.Scalars("val/ppl")[-1].value
    loss = acc.Scalars("val/loss")[-1].value
    assert ppl == pytest.approx(torch.tensor(loss).exp().item(), rel=1e-4)
    assert 0.0 <= acc.Scalars("val/acc")[-1].value <= 1.0
