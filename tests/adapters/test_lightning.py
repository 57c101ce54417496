"""The Lightning adapter: the fit loop's accumulation flag and the checkpoint's batch counters exist."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from composer_automl.adapters.lightning import BATCH_PROGRESS, COUNTERS, is_last_micro_batch, set_batch_progress


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Linear(2, 1)
        self.last: list[bool] = []

    def training_step(self, batch, batch_idx):
        self.last.append(is_last_micro_batch(self.trainer))
        return self.w(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_accumulation_flag_and_checkpoint_counters(tmp_path):
    """With accumulate_grad_batches=3 every third micro-batch is the last; a checkpoint holds the batch
    counters at the path the adapter rewrites, and rewriting them sets every counter."""
    module = Tiny()
    trainer = L.Trainer(max_steps=2, accumulate_grad_batches=3, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, DataLoader(TensorDataset(torch.randn(12, 2)), batch_size=2))
    assert module.last == [False, False, True, False, False, True]
    trainer.save_checkpoint(tmp_path / "c.ckpt")
    checkpoint = torch.load(tmp_path / "c.ckpt", weights_only=False)
    progress = checkpoint[BATCH_PROGRESS[0]][BATCH_PROGRESS[1]][BATCH_PROGRESS[2]]
    assert progress["total"]["completed"] == 6 and set(COUNTERS) <= set(progress["total"])
    set_batch_progress(checkpoint, 4)
    assert all(progress[part][name] == 4 for part in ("total", "current") for name in COUNTERS)
