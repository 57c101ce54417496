"""Runs ``composer-automl train`` runs through the real plan/trainer and records per-step facts.

``python run_worker.py RUNS.json`` where the file holds a list of
``{"config": {...TrainConfig...}, "out": "record.json"}``; runs execute in
order in this process (or in every process of a torchrun world). Rank 0 writes,
per run, the loss and TP-global gradient norm of each optimizer step, the
trained weights in HybridLM layout (``*.weights.pt`` beside the record) and the
parallel model's full-vocabulary logits for a fixed input (``*.logits.pt``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist

from composer_automl.config import to_dataclass
from composer_automl.train.command import plan, train
from composer_automl.train.config import TrainConfig


class RecordSteps(L.Callback):
    """Loss and gradient norm of each optimizer step (as logged), then the final weights."""

    def __init__(self, out: Path):
        self.out, self.steps = out, {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not trainer.fit_loop._should_accumulate():  # the optimizer just stepped
            metrics = trainer.callback_metrics
            self.steps[trainer.global_step] = {k: float(metrics[k]) for k in ("train/loss", "train/grad_norm")}

    def on_train_end(self, trainer, pl_module):
        from megatron.core.tensor_parallel import gather_from_tensor_model_parallel_region

        from composer_automl.parallel import gather_to_hybrid

        weights = gather_to_hybrid(pl_module.model.state_dict(), pl_module.spec)
        with torch.no_grad():
            idx = (torch.arange(24) * 7 % pl_module.spec.vocab_size).reshape(2, 12)
            logits = gather_from_tensor_model_parallel_region(pl_module.model(idx, None, None))  # (2, 12, V)
        if dist.get_rank() == 0:
            torch.save(weights, self.out.with_suffix(".weights.pt"))
            torch.save(logits, self.out.with_suffix(".logits.pt"))
            self.out.write_text(json.dumps({"steps": self.steps, "val": {
                k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}}))


if __name__ == "__main__":
    torch.set_num_threads(1)
    for run in json.loads(Path(sys.argv[1]).read_text()):
        config = to_dataclass(TrainConfig, run["config"], "train")
        train(plan(config), callbacks=[RecordSteps(Path(run["out"]))])
    if dist.is_initialized():
        dist.destroy_process_group()
