"""``composer-automl mad``: score one pattern on a MAD rung and print a per-task table.

Outputs in the Hydra run directory: TensorBoard event files per run
(``<task>/<setting>-lr..-wd..``) and ``mad_results.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from composer_automl.cli import run_hydra_app
from composer_automl import devices
from composer_automl.config import ConfigError, located, to_dataclass
from composer_automl.mad.evaluate import MADConfig, MADResult, evaluate_pattern
from composer_automl.patterns import Pattern, parse_pattern
from composer_automl.rungs.registry import rung_from_mapping
from composer_automl.spec import SearchWidth


@dataclass
class MADCommandConfig:
    """Top-level keys of ``conf/mad.yaml`` besides ``fidelity`` (``pattern``, ``seed``, ``threads``: defaults in that
    file; ``width``: :class:`SearchWidth`)."""

    pattern: str
    """Layer pattern (``AMMAMM`` / ``1A+2M+1A+2M``)."""
    seed: int
    """Seeds data generation, model init and data order."""
    threads: int
    """torch CPU threads (0 = torch's default)."""
    width: SearchWidth = field(default_factory=SearchWidth)
    """Search width; the rung may override d_model / ffn_hidden."""

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ConfigError(f"must be >= 0, got {self.threads}", key="threads")


def load_mad_rung(name: str, node: DictConfig | dict) -> MADConfig:
    """Validate the selected ``fidelity`` option (errors name ``fidelity.<key>``); it must be a ``kind: mad``
    rung whose device this machine has."""
    data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    if not isinstance(data, dict) or data.get("kind") != "mad":
        kind = data.get("kind") if isinstance(data, dict) else None
        raise ConfigError(f"fidelity={name} has kind={kind!r}; the mad command needs a 'kind: mad' rung "
                          f"(e.g. mad-quick, mad-standard, mad-full)")
    config = rung_from_mapping(name, data, "fidelity").config
    with located("fidelity"):
        devices.resolve(config.accelerator, config.precision, config.devices)
    return config


def format_table(result: MADResult) -> str:
    """Per-task accuracy and normalized-loss table, then the MAD scores."""
    width = max(len(t) for t in result.task_scores)
    rule = f"{'-' * width}  --------  --------"
    lines = [f"{'task':<{width}}  accuracy  loss/ln V", rule]
    lines += [f"{task:<{width}}  {acc:8.3f}  {result.task_losses[task]:8.3f}" for task, acc in result.task_scores.items()]
    lines += [rule, f"{'MAD score':<{width}}  {result.score:8.3f}  {result.loss_score:8.3f}"]
    return "\n".join(lines)


def prepare(cfg: DictConfig) -> tuple[MADCommandConfig, Pattern, str, MADConfig]:
    """The validated command settings, pattern, rung name and rung config (no side effects)."""
    command = to_dataclass(MADCommandConfig, {k: v for k, v in cfg.items() if k != "fidelity"})
    pattern = parse_pattern(command.pattern, "pattern")
    rung_name = HydraConfig.get().runtime.choices.get("fidelity", "fidelity")
    return command, pattern, rung_name, load_mad_rung(rung_name, cfg.fidelity)


def mad_task(cfg: DictConfig) -> MADResult:
    command, pattern, rung_name, config = prepare(cfg)
    hydra_cfg = HydraConfig.get()
    if command.threads:
        torch.set_num_threads(command.threads)
    out_dir = Path(hydra_cfg.runtime.output_dir).resolve()
    n_runs = len(config.settings()) * len(config.lrs) * len(config.weight_decays)
    print(f"mad: pattern={pattern} fidelity={rung_name} runs={n_runs} out_dir={out_dir}", flush=True)
    result = evaluate_pattern(pattern, config, command.width, out_dir, command.seed)
    print(format_table(result))
    print(f"device: {result.device}")
    print(f"wall_time_s: {result.wall_time_s:.1f}")
    print(f"tensorboard --logdir {out_dir}")
    return result


def main(argv: list[str]) -> None:
    run_hydra_app("mad", mad_task, argv, validate=prepare)
