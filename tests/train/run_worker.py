"""Runs ``composer-automl train`` runs through the real plan/trainer and records per-step facts.

``python run_worker.py RUNS.json`` where the file holds a list of
``{"config": {...TrainConfig...}, "out": "record.json"}``; runs execute in
order in this process (or in every process of a torchrun world). Rank 0 writes,
per run, the loss and TP-global gradient norm of each optimizer step, the host reads of tensors
(``.item()``, ``float()``, …: syncs on a GPU) of each training batch, the
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


HOST_READS = ("item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__", "__index__")
"""Tensor methods that make the host wait for the device (on a GPU: a synchronisation)."""


class RecordSteps(L.Callback):
    """Loss and gradient norm of each optimizer step (as logged), the host reads of tensors each training
    batch made (from its start to the next one's), then the final weights."""

    counting: RecordSteps | None = None
    """The recorder whose current batch counts host reads (None: nobody counts)."""

    def __init__(self, out: Path):
        self.out, self.steps, self.host_reads = out, {}, []

    @staticmethod
    def count_host_reads() -> None:
        """Make every HOST_READS method of torch.Tensor count into the counting recorder's current batch."""
        def counted(method):
            def call(tensor, *args, **kwargs):
                if RecordSteps.counting is not None:
                    RecordSteps.counting.host_reads[-1] += 1
                return method(tensor, *args, **kwargs)
            return call

        for name in HOST_READS:
            setattr(torch.Tensor, name, counted(getattr(torch.Tensor, name)))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.host_reads.append(0)
        RecordSteps.counting = self

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not trainer.fit_loop._should_accumulate():  # the optimizer just stepped
            RecordSteps.counting = None  # our own reads of the logged values do not count
            metrics = trainer.callback_metrics
            self.steps[trainer.global_step] = {k: float(metrics[k]) for k in ("train/loss", "train/grad_norm")}
            RecordSteps.counting = self

    def on_train_end(self, trainer, pl_module):
        RecordSteps.counting = None
        from megatron.core.tensor_parallel import gather_from_tensor_model_parallel_region

        from composer_automl.parallel import gather_to_hybrid

        weights = gather_to_hybrid(pl_module.model.state_dict(), pl_module.spec)
        with torch.no_grad():
            idx = (torch.arange(24) * 7 % pl_module.spec.vocab_size).reshape(2, 12)
            logits = gather_from_tensor_model_parallel_region(pl_module.model(idx, None, None))  # (2, 12, V)
        if dist.get_rank() == 0:
            torch.save(weights, self.out.with_suffix(".weights.pt"))
            torch.save(logits, self.out.with_suffix(".logits.pt"))
            self.out.write_text(json.dumps({"steps": self.steps, "host_reads": self.host_reads, "val": {
                k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}}))


if __name__ == "__main__":
    torch.set_num_threads(1)
    RecordSteps.count_host_reads()
    for run in json.loads(Path(sys.argv[1]).read_text()):
        config = to_dataclass(TrainConfig, run["config"], "train")
        train(plan(config), callbacks=[RecordSteps(Path(run["out"]))])
    if dist.is_initialized():
        dist.destroy_process_group()
