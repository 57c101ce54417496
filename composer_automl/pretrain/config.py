"""PretrainConfig: one small pretraining run (the ``pretrain`` rung and ``composer-automl pretrain``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from composer_automl import devices
from composer_automl.config import ConfigError
from composer_automl.data.config import DataConfig


@dataclass
class PretrainConfig:
    """Train a pattern for a token budget, then score it on a fixed held-out token set."""

    data: DataConfig = field(default_factory=lambda: DataConfig(name="stdlib", valid_fraction=0.1))
    """The corpus (prepared once, then reused from the cache)."""
    seq_len: int = 128
    """Tokens per training/validation window."""
    batch_size: int = 16
    """Windows per optimizer step."""
    train_tokens: int = 262_144
    """Token budget of the run (the rung's budget knob): steps = ceil(train_tokens / (batch_size·seq_len))."""
    valid_tokens: int = 32_768
    """Held-out tokens scored at the end: ``valid_tokens // seq_len`` windows spread evenly over
    the valid split, identical for every trial (capped by what the split holds)."""
    lr: float = 3e-3
    """Peak AdamW learning rate (warm-up, then cosine to ``min_lr_ratio·lr``)."""
    weight_decay: float = 0.1
    warmup_steps: int = 10
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    """Clip the gradient L2 norm to this (0 = off); tiny models at high lr spike without it."""
    d_model: Optional[int] = None
    """Override the search width's d_model for this rung (a narrower, cheaper model); None keeps it."""
    ffn_hidden: Optional[int] = None
    """Override the search width's SwiGLU hidden size; None keeps it."""
    eval_every_steps: int = 0
    """Also validate every this many steps (0: only at the end)."""
    accelerator: str = "cpu"
    """``cpu``, ``gpu`` or ``auto`` (see :mod:`composer_automl.devices`)."""
    devices: int = 1
    """Devices the run trains on: one (a search gives each worker its own GPU, ``search.gpus_per_worker``)."""
    precision: str = "32-true"
    """Lightning precision: ``32-true``, ``bf16-mixed``, ``bf16-true``, ``16-mixed`` (GPU) or ``auto``."""
    cpu_threads: int = 1
    """torch intra-op threads when training on CPU (1 avoids OpenMP oversubscription when runs
    share cores, which slowed tiny models ~10× in tests; 0 keeps torch's default)."""
    compile: bool = False
    """``torch.compile`` each layer (Inductor's fused kernels). Compiled once per layer kind and width in a
    process: a search worker pays it on its first trial only (worth it on GPU). Off keeps eager numerics, which
    the shipped CPU rung costs and HybridBench-6 used."""
    progress_bar: bool = False
    """Show Lightning's progress bar (off inside a search)."""
    log_every_n_steps: int = 10
    """TensorBoard logging interval of training metrics."""

    def __post_init__(self) -> None:
        devices.check_fields(self.accelerator, self.precision, self.devices)
        if self.devices != 1:
            raise ConfigError(f"={self.devices}: a pretraining run trains one model on one device; give each "
                              "search worker its own GPU with search.gpus_per_worker", key="devices")
        for name in ("d_model", "ffn_hidden"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"={getattr(self, name)} must be a positive integer or null", key=name)
        for name in ("seq_len", "batch_size", "train_tokens", "valid_tokens", "log_every_n_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"={getattr(self, name)} must be a positive integer", key=name)
        if self.valid_tokens < self.seq_len:
            raise ConfigError(f"={self.valid_tokens} must be ≥ seq_len={self.seq_len}", key="valid_tokens")
        bounds = {"lr": self.lr > 0, "weight_decay": self.weight_decay >= 0, "warmup_steps": self.warmup_steps >= 0,
                  "min_lr_ratio": 0 <= self.min_lr_ratio <= 1, "grad_clip": self.grad_clip >= 0,
                  "cpu_threads": self.cpu_threads >= 0, "eval_every_steps": self.eval_every_steps >= 0}
        for name, ok in bounds.items():
            if not ok:
                raise ConfigError(f"={getattr(self, name)} is out of range (need lr > 0, 0 ≤ min_lr_ratio ≤ 1, "
                                  "the others ≥ 0)", key=name)

    @property
    def max_steps(self) -> int:
        tokens_per_step = self.batch_size * self.seq_len
        return -(-self.train_tokens // tokens_per_step)
