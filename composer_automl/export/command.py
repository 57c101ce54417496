"""``composer-automl export ckpt=OUT/checkpoints/step_NNNNNN.ckpt out=FOLDER``.

Reads a (sharded, any-TP) training checkpoint at TP=1 in this one process —
megatron ``dist_checkpointing`` reassembles the global tensors — maps the
megatron weights to HybridLM names and layout
(:func:`composer_automl.parallel.weights.parallel_to_hybrid`) and writes
``model.safetensors`` + ``model.yaml`` into a new folder. A checkpoint of Transformer
Engine layers (``parallel.impl=te``) is read into local layers under its own weight
names, so exporting needs neither Transformer Engine nor a GPU (written under a
temporary name, then renamed: no half-written export). Optimizer state is not exported.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from composer_automl.cli import run_hydra_app
from composer_automl.config import ConfigError, to_dataclass
from composer_automl.export.files import SPEC, WEIGHTS


@dataclass
class ExportConfig:
    """``composer-automl export``: a training checkpoint to a single-device model folder."""

    ckpt: str = ""
    """A ``checkpoints/step_NNNNNN.ckpt`` folder written by ``composer-automl train``."""
    out: str = ""
    """New folder to create with ``model.safetensors`` and ``model.yaml`` (must not exist)."""

    def __post_init__(self) -> None:
        if not self.ckpt or not self.out:
            raise ConfigError("export needs ckpt=CHECKPOINT_FOLDER and out=NEW_FOLDER")


def check(config: ExportConfig) -> dict:
    """Validate before any work: the checkpoint's meta, and a free ``out``."""
    from composer_automl.parallel.checkpoint import read_meta

    meta = read_meta(config.ckpt, "ckpt")
    if Path(config.out).exists():
        raise ConfigError(f"out={config.out!r} already exists; choose a new folder")
    return meta


def export(config: ExportConfig) -> Path:
    """Write the export folder; return its path."""
    import torch.distributed as dist
    from safetensors.torch import save_file

    from composer_automl.parallel import build_parallel_model, parallel_to_hybrid
    from composer_automl.parallel import state
    from composer_automl.parallel.checkpoint import model_sharded_state
    from composer_automl.parallel.weights import impl_renames
    from composer_automl.spec import ModelSpec

    meta = check(config)
    spec = ModelSpec.from_dict(meta["model"])
    own_world = not dist.is_initialized()
    if own_world:  # a one-process world in memory: megatron's TP=1 groups need one, no network needed
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        state.init_model_parallel(1, on_cpu=True)
        model = build_parallel_model(spec, 1, on_cpu=True)
        from megatron.core import dist_checkpointing

        renames = impl_renames(spec, meta.get("impl", "local"))  # a te checkpoint read into local layers, on CPU
        template = {"state_dict": model_sharded_state(model, renames)}
        loaded = dist_checkpointing.load(template, str(config.ckpt))["state_dict"]
        weights = {k: v.contiguous() for k, v in parallel_to_hybrid([loaded], spec).items()}
    finally:
        state.destroy_model_parallel()
        if own_world:
            dist.destroy_process_group()
    out = Path(config.out)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(weights, str(tmp / WEIGHTS), metadata={"format": "pt", "step": str(meta["step"])})
    spec.save_yaml(tmp / SPEC, extra={"exported_from": str(Path(config.ckpt).resolve()), "step": meta["step"]})
    os.replace(tmp, out)
    return out


def _task(cfg: DictConfig) -> None:
    config = to_dataclass(ExportConfig, cfg)
    check(config)
    out = export(config)
    print(f"exported {config.ckpt} -> {out} ({WEIGHTS}, {SPEC}); load with composer_automl.export.load_hybrid")


def main(argv: list[str]) -> None:
    run_hydra_app("export", _task, argv)
