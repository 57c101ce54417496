"""The ``simulated`` rung: a cheap, deterministic multi-fidelity objective over patterns.

It lets the search loop (BOHB, workers, resume, failures) be tested and benchmarked
in milliseconds, as syne-tune's simulator backend does. The true loss rewards what
Composer found (about one third attention, attention early) plus a fixed per-pattern
term from a hash; a lower ``fidelity`` adds a larger pattern-dependent error, so low
budgets are a correlated but noisy proxy of high ones. Knobs inject failures
(patterns that raise, or return NaN) and cost (sleep, CPU-bound matmuls).
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

from composer_automl.config import ConfigError
from composer_automl.patterns import ATTENTION, Pattern
from composer_automl.rungs.base import RungKind, RungResult
from composer_automl.spec import SearchWidth


@dataclass
class SimulatedConfig:
    """A simulated rung (``fidelity/simulated.yaml``)."""

    fidelity: float = 1.0
    """In (0, 1]: 1 returns the true loss, lower adds a larger pattern-dependent error."""
    error_scale: float = 0.4
    """Size of the low-fidelity error at fidelity → 0."""
    target_attention_fraction: float = 0.34
    """Attention fraction the true loss prefers."""
    sleep_s: float = 0.0
    """Seconds each evaluation sleeps (wall-clock cost without CPU)."""
    matmuls: int = 0
    """CPU-bound cost: number of 256×256 torch matmuls per evaluation, times the fidelity."""
    fail_when: str | None = None
    """Regex: patterns matching it raise RuntimeError (failure injection)."""
    nan_when: str | None = None
    """Regex: patterns matching it return a NaN loss (failure injection)."""
    hang_when: str | None = None
    """Regex: patterns matching it sleep an hour (a stuck worker, for timeout tests)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.fidelity <= 1.0:
            raise ConfigError(f"must be in (0, 1], got {self.fidelity}", key="fidelity")
        for name in ("sleep_s", "matmuls", "error_scale"):
            if getattr(self, name) < 0:
                raise ConfigError(f"must be >= 0, got {getattr(self, name)}", key=name)
        for name in ("fail_when", "nan_when", "hang_when"):
            try:
                re.compile(getattr(self, name) or "")
            except re.error as err:
                raise ConfigError(f": invalid regex ({err})", key=name) from None


def _unit_hash(text: str) -> float:
    """Deterministic number in [0, 1) from a string."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def true_loss(pattern: Pattern, config: SimulatedConfig) -> float:
    """The simulated loss at full fidelity (deterministic in the pattern)."""
    n = len(pattern)
    attn_positions = [i for i, k in enumerate(pattern) if k == ATTENTION.symbol]
    frac_term = 4.0 * (pattern.attention_fraction - config.target_attention_fraction) ** 2
    early_term = 0.3 * (sum(attn_positions) / len(attn_positions) / max(n - 1, 1)) if attn_positions else 0.3
    return 1.0 + frac_term + early_term + 0.15 * _unit_hash(f"true:{pattern}")


class SimulatedRung(RungKind):
    """``kind: simulated``: a deterministic synthetic loss (tests and benchmarks of the search loop)."""

    config = SimulatedConfig

    def metric(self, config: SimulatedConfig) -> str:
        return "simulated_loss"

    def evaluate(self, pattern: Pattern, config: SimulatedConfig, width: SearchWidth, out_dir: Path,
                 seed: int) -> RungResult:
        """Score ``pattern`` at the configured fidelity; deterministic unless failure knobs fire."""
        start = time.perf_counter()
        text = str(pattern)
        if config.fail_when and re.search(config.fail_when, text):
            raise RuntimeError(f"simulated failure for pattern {text} (fail_when={config.fail_when!r})")
        if config.hang_when and re.search(config.hang_when, text):
            time.sleep(3600)
        if config.sleep_s:
            time.sleep(config.sleep_s)
        if config.matmuls:
            _burn(max(1, round(config.matmuls * config.fidelity)), seed)
        base = true_loss(pattern, config)
        error = config.error_scale * (1.0 - config.fidelity) * (_unit_hash(f"err:{text}") - 0.5)
        loss = float("nan") if config.nan_when and re.search(config.nan_when, text) else base + error
        return RungResult(loss=loss, metrics={"true_loss": base, "fidelity": float(config.fidelity)},
                          wall_time_s=time.perf_counter() - start)


def _burn(n: int, seed: int) -> None:
    """CPU-bound work: ``n`` matmuls of 256×256 (uses this process's torch threads)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(256, 256, generator=gen)
    for _ in range(n):
        a = torch.tanh(a @ a)
