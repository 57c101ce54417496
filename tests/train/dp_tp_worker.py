"""torchrun worker for the TP×DP test: trains via the real plan/trainer and records per-rank facts."""

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


class RecordRank(L.Callback):
    """Per step loss; at the end a norm weight and this rank's first sharded weight."""

    def __init__(self, out: Path):
        self.out, self.losses = out, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))

    def on_train_end(self, trainer, pl_module):
        from megatron.core import parallel_state

        params = dict(pl_module.model.named_parameters())
        record = {
            "rank": dist.get_rank(),
            "tp_rank": parallel_state.get_tensor_model_parallel_rank(),
            "dp_rank": parallel_state.get_data_parallel_rank(),
            "losses": self.losses,
            "norm": params["decoder.layers.0.input_layernorm.weight"].tolist(),
            "shard": params["decoder.layers.0.self_attention.linear_qkv.weight"].flatten()[:64].tolist(),
        }
        (self.out / f"rank{dist.get_rank()}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    data, out = sys.argv[1], Path(sys.argv[2])
    torch.set_num_threads(1)
    config = to_dataclass(TrainConfig, {
        "model": "tiny", "data": {"path": data}, "out_dir": str(out),
        "trainer": {"accelerator": "cpu", "devices": 4, "max_steps": 3, "seq_len": 32, "micro_batch_size": 2,
                    "log_every": 1, "val_every": 0, "ckpt_every": 0, "grad_clip": 0.05},
        "parallel": {"tp": 2}, "optim": {"max_steps": 3, "warmup_steps": 1, "lr": 1e-2},
    }, "train")
    train(plan(config), callbacks=[RecordRank(out)])
