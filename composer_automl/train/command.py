"""``composer-automl train model=SPEC.yaml data.path=DIR trainer.num_nodes=… trainer.devices=… parallel.tp=…``.

Checks everything (model spec, TP layout, dataset, checkpoint) before any
process group exists, then trains the megatron tensor-parallel model under a
Lightning ``Trainer`` with :class:`MegatronDDPStrategy`. Outputs in ``out_dir``:
``tensorboard/`` (loss, lr, grad norm, tokens/s, MFU, val loss/ppl) and
``checkpoints/step_NNNNNN.ckpt/`` (megatron dist-checkpoints, reshardable to another TP/DP size;
the newest ``trainer.keep_last_k`` are kept).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from omegaconf import DictConfig

from composer_automl.cli import run_hydra_app
from composer_automl.config import ConfigError, located, to_dataclass
from composer_automl.devices import Device
from composer_automl.devices import resolve as resolve_device
from composer_automl.files import check_writable
from composer_automl.presets import load_spec
from composer_automl.spec import ModelSpec
from composer_automl.train.config import TrainConfig

if TYPE_CHECKING:
    from composer_automl.parallel.kernels import Kernels

LAUNCH_ENV = ("LOCAL_RANK", "SLURM_NTASKS", "TORCHELASTIC_RUN_ID")
"""Variables showing that a launcher (torchrun, srun, Lightning's own) already started every process."""


@dataclass(frozen=True)
class TrainPlan:
    """A validated run: the model, where the checkpoint to resume is, the hardware choice."""

    config: TrainConfig
    spec: ModelSpec
    resume: Path | None
    device: Device
    kernels: Kernels
    consumed_samples: int = 0
    """Training samples the resumed checkpoint had consumed (0 for a new run): where the data stream continues."""


def plan(config: TrainConfig) -> TrainPlan:
    """Validate the whole run up front; every bad input is one ConfigError."""
    from composer_automl.parallel import checkpoint
    from composer_automl.parallel.kernels import select_kernels
    from composer_automl.parallel.model import check_layout
    from composer_automl.train.data import check_dataset

    spec = load_spec(config.model)
    check_writable(Path(config.out_dir), "out_dir")
    trainer = config.trainer
    check_layout(spec, config.parallel.tp, trainer.world_size)
    if trainer.seq_len > spec.max_seq_len:
        raise ConfigError(f"trainer.seq_len={trainer.seq_len} exceeds model max_seq_len={spec.max_seq_len}")
    check_dataset(config.data.path, spec.vocab_size, config.data.valid_path, validate=trainer.val_every > 0)
    with located("trainer"):
        device = resolve_device(trainer.accelerator, trainer.precision, trainer.devices)
    kernels = select_kernels(config.parallel.impl, config.parallel.fusions, on_cpu=device.accelerator == "cpu")
    resume = None
    if config.resume == "latest":
        resume = checkpoint.latest_checkpoint(Path(config.out_dir) / "checkpoints")
    elif config.resume:
        resume = Path(config.resume)
    consumed = 0
    if resume is not None:
        consumed = checkpoint.check_checkpoint(resume, spec, layout(config), kernels.impl)["consumed_samples"]
    return TrainPlan(config, spec, resume, device, kernels, consumed)


def announce_resume(p: TrainPlan) -> None:
    """Say (once, on rank 0) where the run starts: the checkpoint it continues, or that ``resume=latest`` found none."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank != 0:
        return
    if p.resume is not None:
        print(f"resuming from {p.resume} (step {p.consumed_samples // layout(p.config).global_batch})")
    elif p.config.resume == "latest":
        print(f"resume=latest: no complete checkpoint in {Path(p.config.out_dir) / 'checkpoints'}; "
              "starting a new run at step 0")


def layout(config: TrainConfig):
    """The run's data layout (what a checkpoint stores and a resume must keep reading the same way)."""
    from composer_automl.parallel.checkpoint import Layout

    t = config.trainer
    return Layout(tp=config.parallel.tp, dp=t.world_size // config.parallel.tp, micro_batch_size=t.micro_batch_size,
                  grad_accum=t.grad_accum, seq_len=t.seq_len)


def build_run(p: TrainPlan, callbacks: Sequence = ()):
    """The Lightning trainer, module and data module of a validated plan."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from composer_automl.parallel.strategy import MegatronDDPStrategy
    from composer_automl.throughput import TokenThroughput
    from composer_automl.train.data import WindowData, check_dataset
    from composer_automl.train.module import ParallelLMModule
    from composer_automl.trainer import build_trainer

    c, t = p.config, p.config.trainer
    L.seed_everything(c.seed, workers=True)
    dp_size = t.world_size // c.parallel.tp
    on_cpu = p.device.accelerator == "cpu"  # the config decides, never CUDA's presence
    throughput = TokenThroughput(
        flops_per_token=p.spec.flops_per_token(t.seq_len),
        tokens_per_step=t.micro_batch_size * t.seq_len * dp_size,  # per micro-batch (one training batch)
        peak_tflops=t.peak_tflops,
        window=t.log_every,
    )
    checkpoints = [  # the newest keep_last_k by step; Lightning deletes older ones through the strategy
        ModelCheckpoint(dirpath=Path(c.out_dir) / "checkpoints", filename="step_{step:06d}", auto_insert_metric_name=False,
                        every_n_train_steps=t.ckpt_every, monitor="step", mode="max", save_top_k=t.keep_last_k,
                        save_last=False)
    ] if t.ckpt_every else []
    trainer = build_trainer(
        p.device, c.out_dir, "tensorboard", max_steps=t.max_steps, callbacks=[throughput, *checkpoints, *callbacks],
        progress_bar=True, log_every_n_steps=t.log_every, enable_checkpointing=bool(checkpoints),
        num_nodes=t.num_nodes,
        strategy=MegatronDDPStrategy(tp=c.parallel.tp, seed=c.seed, layout=layout(c), on_cpu=on_cpu, impl=p.kernels.impl),
        accumulate_grad_batches=t.grad_accum,
        gradient_clip_val=t.grad_clip or None,
        val_check_interval=t.val_every * t.grad_accum or None,  # counted in micro-batches by Lightning
        check_val_every_n_epoch=None,
        limit_val_batches=t.val_batches if t.val_every else 0,
        use_distributed_sampler=False,  # WindowData shards by data-parallel rank itself
    )
    module = ParallelLMModule(p.spec, c.parallel.tp, c.optim, on_cpu=on_cpu, kernels=p.kernels,
                              activation_checkpointing=t.activation_checkpointing, compile=c.parallel.compile)
    train_prefix, valid_prefix = check_dataset(c.data.path, p.spec.vocab_size, c.data.valid_path, t.val_every > 0)
    data = WindowData(train_prefix, valid_prefix, t.seq_len, t.micro_batch_size, t.val_batches, c.seed,
                      p.consumed_samples)
    return trainer, module, data


def train(p: TrainPlan, callbacks: Sequence = ()):
    """Run (or continue) the training described by ``p``; returns the finished trainer."""
    trainer, module, data = build_run(p, callbacks)
    trainer.fit(module, datamodule=data, ckpt_path=str(p.resume) if p.resume else None)
    return trainer


def _task(cfg: DictConfig, argv: list[str]) -> None:
    logging.getLogger("megatron").setLevel(logging.WARNING)  # per-file index-reader chatter
    p = plan(to_dataclass(TrainConfig, cfg))
    announce_resume(p)
    if not any(name in os.environ for name in LAUNCH_ENV):
        # Lightning starts the other local processes by re-running this command line.
        sys.argv = [str(Path(__file__).resolve().parents[1] / "__main__.py"), "train", *argv]
    train(p)


def main(argv: list[str]) -> None:
    # ``data=PATH`` is accepted as ``data.path=PATH`` (Hydra would read a bare ``data=`` as
    # a choice from the ``data`` config group of the data subcommand).
    argv = [f"data.path={arg[5:]}" if arg.startswith("data=") else arg for arg in argv]
    run_hydra_app("train", functools.partial(_task, argv=argv), argv)
