"""``composer-automl pretrain``: train one pattern briefly and report held-out loss and tokens/s.

Defaults train the ``tiny`` preset on the embedded standard-library corpus on
CPU (about a minute on two cores), offline. Outputs in the Hydra run directory:
``tensorboard/`` (event files) and ``metrics.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from composer_automl.cli import run_hydra_app
from composer_automl.config import ConfigError, located, to_dataclass
from composer_automl.devices import resolve as resolve_device
from composer_automl.patterns import parse_pattern
from composer_automl.presets import get_preset
from composer_automl.pretrain.config import PretrainConfig
from composer_automl.pretrain.run import TENSORBOARD_DIR, load_data, run_pretraining
from composer_automl.spec import ModelSpec, SpecError


@dataclass
class PretrainCommandConfig:
    """Top-level keys of ``conf/pretrain.yaml`` besides ``pretrain`` (their defaults are in that file)."""

    model: str
    """Width preset name (``tiny``, ``350M``, ``1B``, ...)."""
    pattern: str | None
    """Layer pattern (``AMMAMM`` / ``2A+4M``); None keeps the preset's pattern."""
    seed: int
    """Seeds model init and data order."""


def build_spec(command: PretrainCommandConfig, run_cfg: PretrainConfig, vocab_size: int) -> ModelSpec:
    """The preset's width (with the run's d_model / ffn_hidden overrides) with the chosen pattern, the
    corpus's vocabulary and the run's sequence length."""
    try:
        spec = get_preset(command.model)
        pattern = parse_pattern(command.pattern, "pattern") if command.pattern else spec.pattern
        return spec.replace(pattern=pattern, vocab_size=vocab_size, max_seq_len=run_cfg.seq_len,
                            d_model=run_cfg.d_model or spec.d_model, ffn_hidden=run_cfg.ffn_hidden or spec.ffn_hidden)
    except SpecError as err:
        raise ConfigError(str(err)) from None


def pretrain_task(cfg: DictConfig) -> dict[str, float]:
    command = to_dataclass(PretrainCommandConfig, {k: v for k, v in cfg.items() if k != "pretrain"})
    run_cfg = to_dataclass(PretrainConfig, cfg.pretrain, "pretrain")
    with located("pretrain"):
        resolve_device(run_cfg.accelerator, run_cfg.precision, run_cfg.devices)
        data = load_data(run_cfg)
    spec = build_spec(command, run_cfg, data.prepared.vocab_size)
    out_dir = Path(HydraConfig.get().runtime.output_dir).resolve()
    print(f"model: {command.model} pattern={spec.pattern} params={spec.num_params():,} | data: {data.prepared.path} "
          f"| {run_cfg.max_steps} steps × {run_cfg.batch_size} × {run_cfg.seq_len} tokens")
    metrics = run_pretraining(spec, run_cfg, out_dir, command.seed, data)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"val_loss: {metrics['val_loss']:.4f}")
    print(f"tokens_per_s: {metrics['tokens_per_s']:.0f}")
    print(f"tensorboard --logdir {out_dir / TENSORBOARD_DIR}")
    return metrics


def main(argv: list[str]) -> None:
    run_hydra_app("pretrain", pretrain_task, argv)
