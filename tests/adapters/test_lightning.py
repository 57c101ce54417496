"""The Lightning adapter: the fit loop's accumulation flag and the checkpoint's batch counters exist, and a
resume through rewritten counters logs at the uninterrupted run's steps."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger
from torch.utils.data import DataLoader, TensorDataset

from composer_automl.adapters.lightning import BATCH_PROGRESS, COUNTERS, is_last_micro_batch, set_batch_progress


class Tiny(L.LightningModule):
    def __init__(self, accum: int = 1):
        super().__init__()
        self.w = torch.nn.Linear(2, 1)
        self.accum = accum
        self.last: list[bool] = []

    def training_step(self, batch, batch_idx):
        self.last.append(is_last_micro_batch(self.trainer))
        loss = self.w(batch[0]).pow(2).mean()
        self.log("loss", loss)
        return loss

    def on_load_checkpoint(self, checkpoint):
        set_batch_progress(checkpoint, checkpoint["global_step"] * self.accum)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Steps(Logger):
    """Records the step of every logged ``loss``."""

    name, version = "steps", 0

    def __init__(self):
        super().__init__()
        self.steps: list[int] = []

    def log_metrics(self, metrics, step=None):
        if "loss" in metrics:
            self.steps.append(step)

    def log_hyperparams(self, params, *args, **kwargs):
        pass


def fit(tmp_path, accum: int, max_steps: int, ckpt_path=None) -> Steps:
    logger = Steps()
    trainer = L.Trainer(max_steps=max_steps, accumulate_grad_batches=accum, logger=logger, log_every_n_steps=1,
                        callbacks=[ModelCheckpoint(dirpath=tmp_path, filename="s{step}", every_n_train_steps=2,
                                                   save_top_k=-1, auto_insert_metric_name=False)],
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(Tiny(accum), DataLoader(TensorDataset(torch.randn(64, 2)), batch_size=2), ckpt_path=ckpt_path)
    return logger


def test_accumulation_flag_and_checkpoint_counters(tmp_path):
    """With accumulate_grad_batches=3 every third micro-batch is the last; a checkpoint holds the batch
    counters at the path the adapter rewrites, and rewriting them moves every counter by the same amount."""
    module = Tiny()
    trainer = L.Trainer(max_steps=2, accumulate_grad_batches=3, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, DataLoader(TensorDataset(torch.randn(12, 2)), batch_size=2))
    assert module.last == [False, False, True, False, False, True]
    trainer.save_checkpoint(tmp_path / "c.ckpt")
    checkpoint = torch.load(tmp_path / "c.ckpt", weights_only=False)
    progress = checkpoint[BATCH_PROGRESS[0]][BATCH_PROGRESS[1]][BATCH_PROGRESS[2]]
    assert progress["total"]["completed"] == 6 and set(COUNTERS) <= set(progress["total"])
    progress["total"]["completed"] = 5  # as a checkpoint written at a batch's end has it
    set_batch_progress(checkpoint, 4)
    assert [progress["total"][name] for name in COUNTERS] == [4, 4, 4, 3]
    assert all(progress["current"][name] == 4 for name in COUNTERS)


def test_resume_with_other_accumulation_logs_at_the_uninterrupted_steps(tmp_path):
    """Saved at step 2 of 4 (accumulation 2), resumed with accumulation 1 through the rewritten counters:
    the resumed run logs steps 2 and 3, exactly the uninterrupted run's last two (not 1 and 2)."""
    full = fit(tmp_path / "full", accum=2, max_steps=4)
    assert full.steps == [0, 1, 2, 3]
    resumed = fit(tmp_path / "resumed", accum=1, max_steps=4, ckpt_path=tmp_path / "full" / "s2.ckpt")
    assert resumed.steps == [2, 3]
