"""Evaluate a pattern on MAD: a fresh model per (setting, lr, wd), trained by Lightning.

:class:`MADConfig` is one rung of cost (which settings, how many steps and
examples, which lr/wd); :func:`evaluate_pattern` runs it and scores it the MAD
way (:mod:`composer_automl.mad.scoring`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import DataLoader, TensorDataset

from composer_automl.config import ConfigError
from composer_automl.lightning_module import OptimConfig
from composer_automl.mad.data import MADData, load_or_generate
from composer_automl.mad.models import MADModule
from composer_automl.mad.scoring import RunAccuracy, mad_score, task_scores
from composer_automl.mad.settings import BASE_SETTINGS, SettingId, protocol
from composer_automl.mad.tasks import TASKS, get_task
from composer_automl.patterns import Pattern
from composer_automl.rungs import SearchWidth
from composer_automl.spec import ModelSpec


@dataclass
class MADConfig:
    """One MAD rung: which settings, how long each run trains, which lr × weight-decay sweep."""

    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    """Tasks to run (names from ``composer_automl.mad.tasks.TASKS``)."""
    variations: bool = False
    """Also run each task's one-at-a-time variations (the full MAD protocol), not only its base."""
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Task → field → value replacing the MAD base (variations apply on top), e.g. a shorter seq_len."""
    lrs: list[float] = field(default_factory=lambda: [1e-3])
    """Peak learning rates swept per setting."""
    weight_decays: list[float] = field(default_factory=lambda: [0.0])
    """AdamW weight decays swept per setting (crossed with ``lrs``)."""
    batch_size: int = 128
    """Training batch size (MAD: 128)."""
    max_steps: int = 100_000
    """Cap on optimizer steps per run."""
    epochs: int = 200
    """Epochs per run (MAD: 200); a run stops at whichever of this and ``max_steps`` comes first."""
    train_examples_scale: float = 1.0
    """Multiplies every setting's ``num_train_examples`` (cheap rungs use less data)."""
    num_test_examples: int = 1280
    """Test sequences per setting (MAD: 1280)."""
    evals_per_run: int = 4
    """Test-set evaluations per run; the last one is the run's accuracy."""
    early_stop_accuracy: float = 0.999
    """Stop a run once test accuracy reaches this (MAD: 0.999)."""
    warmup_fraction: float = 0.1
    """Share of a run's steps spent in linear lr warm-up."""
    min_lr_ratio: float = 0.01
    """Final lr of the cosine schedule as a fraction of the peak."""
    d_model: Optional[int] = None
    """Override the search width's d_model for this rung (cheaper models); None keeps it."""
    ffn_hidden: Optional[int] = None
    """Override the search width's SwiGLU hidden size; None keeps it."""
    cache_dir: Optional[str] = None
    """Dataset cache folder; None uses the default (see ``composer_automl.mad.data``)."""
    progress_bar: bool = False
    """Show Lightning's per-step progress bar (off: one line per run is the progress)."""

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ConfigError(f"mad.tasks must name at least one task from {list(TASKS)}")
        for task in [*self.tasks, *self.overrides]:
            get_task(task)
        if not self.lrs or any(lr <= 0 for lr in self.lrs):
            raise ConfigError(f"mad.lrs must be a non-empty list of positive numbers, got {list(self.lrs)}")
        if not self.weight_decays or any(wd < 0 for wd in self.weight_decays):
            raise ConfigError(f"mad.weight_decays must be a non-empty list of numbers >= 0, got {list(self.weight_decays)}")
        positive = {k: getattr(self, k) for k in ("batch_size", "max_steps", "epochs", "num_test_examples", "evals_per_run")}
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"mad.{name} must be >= 1, got {value}")
        if not 0 < self.train_examples_scale:
            raise ConfigError(f"mad.train_examples_scale must be > 0, got {self.train_examples_scale}")
        if not 0 <= self.warmup_fraction < 1 or not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError("mad.warmup_fraction must be in [0, 1) and mad.min_lr_ratio in [0, 1]")
        self.settings()  # impossible settings (after overrides) fail here, before any training

    def settings(self) -> list[SettingId]:
        """The settings this rung trains, with overrides and the example scale applied."""
        out = []
        for sid in protocol(self.tasks, self.variations):
            setting = sid.setting
            base = BASE_SETTINGS[sid.task]
            overrides = self.overrides.get(sid.task, {})
            unknown = sorted(set(overrides) - set(vars(base)))
            if unknown:
                raise ConfigError(f"mad.overrides.{sid.task}: unknown field(s) {unknown}; allowed: {sorted(vars(base))}")
            # a variation keeps its own value for the field it varies; overrides replace the rest of the base
            setting = setting.replace(**{k: v for k, v in overrides.items() if getattr(setting, k) == getattr(base, k)})
            n_train = max(1, round(setting.num_train_examples * self.train_examples_scale))
            out.append(SettingId(sid.task, setting.replace(num_train_examples=n_train), sid.name))
        return out

    def width(self, width: SearchWidth) -> SearchWidth:
        """The search width with this rung's d_model / ffn_hidden overrides."""
        return SearchWidth(
            d_model=self.d_model or width.d_model,
            n_heads=width.n_heads,
            n_kv_heads=width.n_kv_heads,
            ffn_hidden=self.ffn_hidden or width.ffn_hidden,
        )


@dataclass(frozen=True)
class MADResult:
    """Every run's accuracy plus the MAD aggregates."""

    runs: list[RunAccuracy]
    task_scores: dict[str, float]
    score: float
    wall_time_s: float


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's per-Trainer info lines and data-loader hints (one line per run instead)."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*LitLogger.*")
        warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def run_schedule(n_train: int, config: MADConfig) -> tuple[int, int]:
    """(total steps, steps between evaluations): epochs or max_steps, rounded to whole eval intervals."""
    steps = min(config.max_steps, config.epochs * math.ceil(n_train / config.batch_size))
    interval = math.ceil(steps / config.evals_per_run)
    return interval * math.ceil(steps / interval), interval


def loaders(data: MADData, batch_size: int, seed: int) -> tuple[DataLoader, DataLoader]:
    """Shuffled (seeded) train loader and an ordered test loader."""
    train = TensorDataset(torch.from_numpy(data.train_inputs), torch.from_numpy(data.train_targets))
    test = TensorDataset(torch.from_numpy(data.test_inputs), torch.from_numpy(data.test_targets))
    generator = torch.Generator().manual_seed(seed)
    return (
        DataLoader(train, batch_size=batch_size, shuffle=True, generator=generator),
        DataLoader(test, batch_size=max(batch_size, 256)),
    )


def train_run(
    sid: SettingId,
    data: MADData,
    pattern: Pattern,
    width: SearchWidth,
    lr: float,
    weight_decay: float,
    config: MADConfig,
    out_dir: Path,
    seed: int,
) -> tuple[float, int]:
    """Train one fresh model on one setting; returns (final test accuracy, steps taken)."""
    s = sid.setting
    spec = ModelSpec(pattern, width.d_model, width.n_heads, width.n_kv_heads, width.ffn_hidden,
                     vocab_size=s.vocab_size, max_seq_len=s.seq_len)
    steps, interval = run_schedule(s.num_train_examples, config)
    optim = OptimConfig(lr=lr, weight_decay=weight_decay, warmup_steps=round(config.warmup_fraction * steps),
                        max_steps=steps, min_lr_ratio=config.min_lr_ratio)
    L.seed_everything(seed, workers=True, verbose=False)
    module = MADModule(spec, optim, autoencoder=get_task(sid.task).autoencoder)
    train_loader, test_loader = loaders(data, config.batch_size, seed)
    early_stop = EarlyStopping("val/acc", mode="max", patience=10**9, stopping_threshold=config.early_stop_accuracy,
                               check_on_train_epoch_end=False)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=steps,
        max_epochs=-1,
        val_check_interval=interval,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        logger=TensorBoardLogger(out_dir, name=sid.task, version=f"{sid.name}-lr{lr:g}-wd{weight_decay:g}"),
        log_every_n_steps=max(1, min(50, interval)),
        callbacks=[early_stop],
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=config.progress_bar,
        deterministic=True,
    )
    trainer.fit(module, train_loader, test_loader)
    return float(trainer.callback_metrics["val/acc"]), trainer.global_step


def evaluate_pattern(
    pattern: Pattern | str,
    config: MADConfig,
    width: SearchWidth,
    out_dir: Path,
    seed: int = 0,
    log: Callable[[str], None] = lambda line: print(line, flush=True),
) -> MADResult:
    """Train ``pattern`` on every setting × lr × wd of ``config``; score the MAD way.

    TensorBoard logs go to ``out_dir/<task>/<setting>-lr..-wd..``; the per-run
    accuracies to ``out_dir/mad_results.json``. ``log`` gets one line per run.
    """
    pattern = Pattern.parse(pattern) if isinstance(pattern, str) else pattern
    width = config.width(width)
    settings = config.settings()
    out_dir = Path(out_dir)
    cache_dir = Path(config.cache_dir) if config.cache_dir else None
    start = time.perf_counter()
    runs: list[RunAccuracy] = []
    n_runs = len(settings) * len(config.lrs) * len(config.weight_decays)
    with quiet_lightning():
        for sid in settings:
            data = load_or_generate(sid.task, sid.setting, seed, config.num_test_examples, cache_dir)
            for lr in config.lrs:
                for wd in config.weight_decays:
                    t0 = time.perf_counter()
                    acc, steps = train_run(sid, data, pattern, width, lr, wd, config, out_dir, seed)
                    runs.append(RunAccuracy(sid.task, sid.name, lr, wd, acc))
                    log(f"[mad {len(runs)}/{n_runs}] {pattern} {sid.task} {sid.name} lr={lr:g} wd={wd:g}: "
                        f"acc={acc:.3f} ({steps} steps, {time.perf_counter() - t0:.1f}s)")
    result = MADResult(runs, task_scores(runs), mad_score(runs), time.perf_counter() - start)
    write_results(result, pattern, out_dir)
    return result


def write_results(result: MADResult, pattern: Pattern, out_dir: Path) -> Path:
    """Write ``mad_results.json`` (temp name, then rename)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "mad_results.json"
    payload = {
        "pattern": str(pattern),
        "mad_score": result.score,
        "task_scores": result.task_scores,
        "wall_time_s": result.wall_time_s,
        "runs": [vars(r) for r in result.runs],
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)
    return path
