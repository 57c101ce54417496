"""Evaluate a pattern on MAD: a fresh model per (setting, lr, wd), trained by Lightning.

:class:`MADConfig` is one rung of cost (which settings, how long, which lr/wd sweep,
which optimizer and schedule, which device); its defaults are the MAD reference
protocol's (athms/mad-lab), and a cheaper rung states each difference as a field.
:func:`evaluate_pattern` runs it and scores it the MAD way
(:mod:`composer_automl.mad.scoring`): every run reports its evaluation with the lowest
test loss, as the reference reports its lowest-test-perplexity checkpoint.

Deliberate differences of ``mad-full`` from the reference protocol (task-level ones are
listed in :mod:`composer_automl.mad.tasks`):

- the layers are Composer's primitives at the search width (``A``: grouped-query
  attention with RoPE, ``M``: SwiGLU, pre-norm residual), not MAD's layer zoo: the
  point is to rank *our* search space;
- compression's encoder output passes through the pattern model's final RMSNorm
  before the decoder (the reference pools the raw residual stream): the encoder is
  the same :class:`~composer_automl.model.HybridLM` stack as every other task, and the
  decoder starts with a norm in both;
- data come from the trial's seed (train and test from independent child streams);
  the reference seeds every dataset with 12345. The memorization map keeps the fixed
  seed 12345, so it is one map for every trial;
- the best evaluation is taken from the run's own history of test evaluations instead
  of reloading a best checkpoint (the same numbers, no checkpoint files).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping
from torch.utils.data import DataLoader, TensorDataset

from composer_automl import devices
from composer_automl.config import ConfigError, choice
from composer_automl.files import atomic_write_text
from composer_automl.mad.data import MADData, load_or_generate
from composer_automl.mad.models import ACCURACIES, MADModule, best_evaluation
from composer_automl.mad.scoring import SCORES, RunResult, mad_score, task_scores, task_seconds
from composer_automl.mad.settings import BASE_SETTINGS, SettingId, protocol
from composer_automl.mad.tasks import TASKS, get_task
from composer_automl.patterns import Pattern
from composer_automl.optim import SCHEDULES, OptimConfig
from composer_automl.quiet import quiet_lightning
from composer_automl.spec import SearchWidth
from composer_automl.spec import ModelSpec
from composer_automl.trainer import build_trainer

TRAIN_ON = ("all", "scored")
"""``all``: the recall family trains on every next token (the reference); ``scored``: only on scored positions."""


@dataclass
class MADConfig:
    """One MAD rung: which settings, how long each run trains, which sweep, optimizer and device.

    The defaults are the MAD reference protocol (``fidelity/mad-full.yaml``); a cheaper rung
    overrides fields, so every difference from the reference is named in its file.
    """

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
    evals_per_run: Optional[int] = None
    """Test-set evaluations per run, evenly spaced; None = after every epoch (the reference)."""
    early_stop_accuracy: float = 0.999
    """Stop a run once test accuracy reaches this (MAD: 0.999), checked at every evaluation."""
    train_on: str = "all"
    """Training targets of the recall family: ``all`` next tokens (the reference) or ``scored`` positions only."""
    accuracy: str = "macro"
    """``macro`` (torchmetrics' multiclass default per batch, averaged over batches: the reference) or ``micro``."""
    score: str = "accuracy"
    """The rung's loss: ``accuracy`` (1 − MAD score) or ``loss`` (mean normalized test loss, see scoring)."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """AdamW betas (the reference: torch's defaults)."""
    decay_all_params: bool = True
    """Weight decay on every parameter (the reference) or on matrices only."""
    warmup_fraction: float = 0.0
    """Share of a run's steps spent in linear lr warm-up (the reference: none)."""
    lr_schedule: str = "cosine-epoch"
    """``cosine-epoch`` (the reference) or ``cosine-step`` (see ``composer_automl.optim.lr_factor``)."""
    min_lr: float = 1e-6
    """Floor of the cosine schedule (the reference: 1e-6)."""
    d_model: Optional[int] = None
    """Override the search width's d_model for this rung (cheaper models); None keeps it."""
    ffn_hidden: Optional[int] = None
    """Override the search width's SwiGLU hidden size; None keeps it."""
    accelerator: str = "cpu"
    """``cpu``, ``gpu`` or ``auto`` (GPU when one is visible); see ``composer_automl.devices``."""
    devices: int = 1
    """Devices per run: 1 (MAD models are tiny; run one search worker per GPU instead)."""
    precision: str = "32-true"
    """Lightning precision; ``auto`` = bf16-mixed on GPU, 32-true on CPU."""
    cache_dir: Optional[str] = None
    """Dataset cache folder; None uses the default (see ``composer_automl.mad.data``)."""
    progress_bar: bool = False
    """Show Lightning's per-step progress bar (off: one line per run is the progress)."""

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ConfigError(f"must name at least one task from {list(TASKS)}", key="tasks")
        for key, names in (("tasks", self.tasks), ("overrides", list(self.overrides))):
            for task in names:
                choice(task, TASKS, key)
        if not self.lrs or any(lr <= 0 for lr in self.lrs):
            raise ConfigError(f"must be a non-empty list of positive numbers, got {list(self.lrs)}", key="lrs")
        if not self.weight_decays or any(wd < 0 for wd in self.weight_decays):
            raise ConfigError(f"must be a non-empty list of numbers >= 0, got {list(self.weight_decays)}",
                              key="weight_decays")
        positive = {k: getattr(self, k) for k in ("batch_size", "max_steps", "epochs", "num_test_examples")}
        if self.evals_per_run is not None:
            positive["evals_per_run"] = self.evals_per_run
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"must be >= 1, got {value}", key=name)
        if not 0 < self.train_examples_scale:
            raise ConfigError(f"must be > 0, got {self.train_examples_scale}", key="train_examples_scale")
        choice(self.train_on, TRAIN_ON, "train_on")
        choice(self.accuracy, ACCURACIES, "accuracy")
        choice(self.score, SCORES, "score")
        choice(self.lr_schedule, SCHEDULES, "lr_schedule")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"must be two numbers in [0, 1), got {list(self.betas)}", key="betas")
        if not 0 <= self.warmup_fraction < 1:
            raise ConfigError(f"must be in [0, 1), got {self.warmup_fraction}", key="warmup_fraction")
        if not 0 <= self.min_lr <= min(self.lrs):
            raise ConfigError(f"must be in [0, min(lrs)={min(self.lrs):g}], got {self.min_lr}", key="min_lr")
        devices.check_fields(self.accelerator, self.precision, self.devices)
        if self.devices != 1:
            raise ConfigError(f"={self.devices}: a MAD run uses one device; give each search worker its own GPU "
                              "instead", key="devices")
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
                raise ConfigError(f"has unknown field(s) {unknown}; allowed: {sorted(vars(base))}",
                                  key=f"overrides.{sid.task}")
            # a variation keeps its own value for the field it varies; overrides replace the rest of the base
            setting = setting.replace(**{k: v for k, v in overrides.items() if getattr(setting, k) == getattr(base, k)})
            n_train = max(1, round(setting.num_train_examples * self.train_examples_scale))
            out.append(SettingId(sid.task, setting.replace(num_train_examples=n_train), sid.name))
        return out

    def width(self, width: SearchWidth) -> SearchWidth:
        """The search width with this rung's d_model / ffn_hidden overrides."""
        return width.narrowed(self.d_model, self.ffn_hidden)


@dataclass(frozen=True)
class MADResult:
    """Every run's result plus the MAD aggregates (both scores) and the device used."""

    runs: list[RunResult]
    task_scores: dict[str, float]
    """Task → accuracy score."""
    task_losses: dict[str, float]
    """Task → normalized loss score."""
    task_seconds: dict[str, float]
    """Task → wall seconds of its runs."""
    score: float
    """MAD accuracy score."""
    loss_score: float
    """Mean normalized test loss (see :mod:`composer_automl.mad.scoring`)."""
    wall_time_s: float
    device: str
    """Where the runs trained, e.g. ``cpu, 32-true`` or ``gpu (NVIDIA H100), bf16-mixed``."""

    def rung_loss(self, score: str) -> float:
        """What the rung minimises: 1 − accuracy score, or the loss score."""
        return 1.0 - self.score if score == "accuracy" else self.loss_score


def run_schedule(n_train: int, config: MADConfig) -> tuple[int, int, int]:
    """(total steps, steps between evaluations, steps per epoch) of one run.

    Steps = min(max_steps, epochs × batches per epoch). Without ``evals_per_run`` the run
    evaluates after every epoch (the reference); with it, at that many even intervals
    (the step count rounded up to whole intervals).
    """
    per_epoch = math.ceil(n_train / config.batch_size)
    steps = min(config.max_steps, config.epochs * per_epoch)
    if config.evals_per_run is None:
        return steps, min(per_epoch, steps), per_epoch
    interval = math.ceil(steps / config.evals_per_run)
    return interval * math.ceil(steps / interval), interval, per_epoch


def loaders(data: MADData, batch_size: int, seed: int, train_on: str) -> tuple[DataLoader, DataLoader]:
    """Shuffled (seeded) train loader and an ordered test loader of the same batch size."""
    train = TensorDataset(torch.from_numpy(data.train_inputs), torch.from_numpy(data.train_targets(train_on)))
    test = TensorDataset(torch.from_numpy(data.test_inputs), torch.from_numpy(data.test_targets))
    generator = torch.Generator().manual_seed(seed)
    return (
        DataLoader(train, batch_size=batch_size, shuffle=True, generator=generator),
        DataLoader(test, batch_size=batch_size),
    )


def run_tag(sid: SettingId, lr: float, weight_decay: float) -> str:
    """``<task>/<setting>-lr..-wd..``: the TensorBoard tag prefix of one run."""
    return f"{sid.task}/{sid.name}-lr{lr:g}-wd{weight_decay:g}"


def train_run(sid: SettingId, data: MADData, pattern: Pattern, width: SearchWidth, lr: float, weight_decay: float,
              config: MADConfig, device: devices.Device, out_dir: Path, seed: int) -> RunResult:
    """Train one fresh model on one setting; its result is the evaluation with the lowest test loss."""
    s = sid.setting
    spec = ModelSpec(pattern, width.d_model, width.n_heads, width.n_kv_heads, width.ffn_hidden,
                     vocab_size=s.vocab_size, max_seq_len=data.train_inputs.shape[1])
    steps, interval, per_epoch = run_schedule(s.num_train_examples, config)
    optim = OptimConfig(lr=lr, weight_decay=weight_decay, beta1=config.betas[0], beta2=config.betas[1],
                        warmup_steps=round(config.warmup_fraction * steps), max_steps=steps,
                        min_lr_ratio=config.min_lr / lr, schedule=config.lr_schedule, steps_per_epoch=per_epoch,
                        decay_all=config.decay_all_params)
    L.seed_everything(seed, workers=True, verbose=False)
    tag = run_tag(sid, lr, weight_decay)
    module = MADModule(spec, optim, tag, autoencoder=get_task(sid.task).autoencoder, accuracy=config.accuracy)
    train_loader, test_loader = loaders(data, config.batch_size, seed, config.train_on)
    early_stop = EarlyStopping(f"{tag}/test_acc", mode="max", patience=10**9,
                               stopping_threshold=config.early_stop_accuracy, check_on_train_epoch_end=False)
    # every run of a trial writes into one TensorBoard run (log name ""), under its own tags
    trainer = build_trainer(device, out_dir, "", max_steps=steps, callbacks=[early_stop],
                            progress_bar=config.progress_bar, log_every_n_steps=max(1, min(50, interval)),
                            val_check_interval=interval, check_val_every_n_epoch=None)
    start = time.perf_counter()
    trainer.fit(module, train_loader, test_loader)
    best = best_evaluation(module.evaluations)
    return RunResult(sid.task, sid.name, lr, weight_decay, best.accuracy, best.loss, s.vocab_size, trainer.global_step,
                     time.perf_counter() - start)


def describe(device: devices.Device) -> str:
    """``cpu, 32-true`` or ``gpu (NVIDIA H100 80GB HBM3), bf16-mixed``."""
    where = device.accelerator
    if device.accelerator == "gpu":
        where += f" ({torch.cuda.get_device_name()})"
    return f"{where}, {device.precision}"


def evaluate_pattern(
    pattern: Pattern | str,
    config: MADConfig,
    width: SearchWidth,
    out_dir: Path,
    seed: int = 0,
    log: Callable[[str], None] = lambda line: print(line, flush=True),
) -> MADResult:
    """Train ``pattern`` on every setting × lr × wd of ``config``; score the MAD way.

    TensorBoard logs of every run go to one run in ``out_dir`` (tags
    ``<task>/<setting>-lr..-wd../test_loss`` …); the per-run results to
    ``out_dir/mad_results.json``. ``log`` gets one line for the device, then one per run.
    """
    pattern = Pattern.parse(pattern) if isinstance(pattern, str) else pattern
    device = devices.resolve(config.accelerator, config.precision, config.devices)
    width = config.width(width)
    settings = config.settings()
    out_dir = Path(out_dir)
    cache_dir = Path(config.cache_dir) if config.cache_dir else None
    start = time.perf_counter()
    runs: list[RunResult] = []
    n_runs = len(settings) * len(config.lrs) * len(config.weight_decays)
    log(f"mad: {pattern} on {describe(device)}, {n_runs} runs")
    with quiet_lightning():
        for sid in settings:
            data = load_or_generate(sid.task, sid.setting, seed, config.num_test_examples, cache_dir)
            for lr in config.lrs:
                for wd in config.weight_decays:
                    run = train_run(sid, data, pattern, width, lr, wd, config, device, out_dir, seed)
                    runs.append(run)
                    log(f"[mad {len(runs)}/{n_runs}] {pattern} {sid.task} {sid.name} lr={lr:g} wd={wd:g}: "
                        f"acc={run.accuracy:.3f} loss={run.loss:.4f} ({run.steps} steps, {run.seconds:.1f}s)")
    result = MADResult(runs, task_scores(runs), task_scores(runs, "loss"), task_seconds(runs), mad_score(runs),
                       mad_score(runs, "loss"), time.perf_counter() - start, describe(device))
    write_results(result, pattern, out_dir)
    return result


def write_results(result: MADResult, pattern: Pattern, out_dir: Path) -> Path:
    """Write ``mad_results.json`` atomically."""
    payload = {
        "pattern": str(pattern),
        "mad_score": result.score,
        "mad_loss": result.loss_score,
        "task_scores": result.task_scores,
        "task_losses": result.task_losses,
        "wall_time_s": result.wall_time_s,
        "device": result.device,
        "runs": [vars(r) for r in result.runs],
    }
    return atomic_write_text(Path(out_dir) / "mad_results.json", json.dumps(payload, indent=2))
