"""The ``surrogate`` rung: a model fitted on a calibration table that answers any pattern of its length in
milliseconds.

Optimizers can only differ where the space is too large to evaluate whole; HybridBench-16 (16 layers,
65,534 patterns) is measured on a sample, and this rung turns the sample into a benchmark. The loss of
(pattern, seed) is the model's prediction for the pattern plus seed noise: a Gaussian with the standard
deviation the table's repeated seeds show, drawn deterministically from (pattern, rung, seed), so two
seeds of the surrogate agree about as well as two seeds of the real rung (its noise ceiling). The cost
(reported as the evaluation's time) comes from a linear cost model of the table's CPU seconds (wall seconds
where a row has none) in the pattern's layer counts: CPU time of a one-thread evaluation does not grow when a
busy machine slows the wall clock. How well the surrogate ranks patterns it was not fitted on is measured by k-fold
cross-validation over patterns (:func:`cross_validate`), in the table's report.
"""

from __future__ import annotations

import functools
import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean

import numpy as np

from composer_automl.config import ConfigError, choice
from composer_automl.patterns import ATTENTION, Pattern
from composer_automl.rungs.base import RungKind, RungResult
from composer_automl.rungs.tabular import load_table, table_path
from composer_automl.spec import SearchWidth

MODELS = ("ridge", "gradient_boosting", "random_forest")
"""scikit-learn regressors the surrogate may use (chosen on HybridBench-6: README, HybridBench-16)."""


def features(pattern: Pattern | str) -> np.ndarray:
    """A pattern as numbers: which layers are attention, which adjacent pairs are both attention, the attention
    fraction (and its square), where attention starts, its mean position and how many attention runs there are."""
    p = Pattern.parse(pattern)
    a = np.array([kind == ATTENTION.symbol for kind in p], dtype=float)  # (n,)
    n = len(a)
    positions = np.flatnonzero(a)
    frac = a.mean()
    runs = int(a[0]) + int(np.sum((a[1:] == 1) & (a[:-1] == 0))) if n else 0
    summary = [frac, frac**2, positions[0] / n if len(positions) else 1.0,
               positions.mean() / max(n - 1, 1) if len(positions) else 1.0, runs / n]
    return np.concatenate([a, a[1:] * a[:-1], summary])


def make_model(name: str, seed: int = 0):
    """An unfitted regressor of :data:`MODELS` (fixed hyperparameters, seeded)."""
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    from sklearn.linear_model import RidgeCV

    choice(name, MODELS, "model")
    if name == "ridge":
        return RidgeCV(alphas=np.logspace(-3, 3, 13))
    if name == "gradient_boosting":
        return GradientBoostingRegressor(n_estimators=300, max_depth=3, learning_rate=0.05, subsample=0.8,
                                         random_state=seed)
    return RandomForestRegressor(n_estimators=300, min_samples_leaf=2, random_state=seed)


def seed_mean_losses(table: Path, rung: str) -> dict[str, float]:
    """Pattern → mean loss over its recorded seeds at ``rung``."""
    return {p: fmean(r.loss for r in rows) for p, rows in load_table(table)[rung].items()}


def seed_noise_std(table: Path, rung: str) -> float:
    """The standard deviation of one seed's loss about the pattern's mean, from patterns with several seeds
    (pooled within-pattern variance); 0 when no pattern has two."""
    groups = [np.array([r.loss for r in rows]) for rows in load_table(table)[rung].values() if len(rows) > 1]
    dof = sum(len(g) - 1 for g in groups)
    return math.sqrt(sum(((g - g.mean()) ** 2).sum() for g in groups) / dof) if dof else 0.0


@dataclass(frozen=True)
class Fitted:
    """A surrogate fitted on one rung of one table."""

    model: object
    n_layers: int
    noise_std: float
    cost_coef: tuple[float, float, float]
    """Seconds = c0 + c1 · attention layers + c2 · MLP layers (least squares on the table's CPU seconds)."""

    def predict(self, patterns: list[str]) -> np.ndarray:
        return self.model.predict(np.stack([features(p) for p in patterns]))

    def cost(self, pattern: str) -> float:
        n_attn = pattern.count(ATTENTION.symbol)
        return max(0.0, self.cost_coef[0] + self.cost_coef[1] * n_attn + self.cost_coef[2] * (len(pattern) - n_attn))


@functools.lru_cache(maxsize=16)
def fit(table: Path, mtime_ns: int, rung: str, model: str) -> Fitted:
    """Fit the surrogate of ``rung`` on every pattern of ``table`` (cached per file version)."""
    means = seed_mean_losses(table, rung)
    patterns = sorted(means)
    lengths = {len(Pattern.parse(p)) for p in patterns}
    if len(lengths) != 1:
        raise ConfigError(f"table {table} mixes pattern lengths {sorted(lengths)} at rung {rung!r}")
    regressor = make_model(model).fit(np.stack([features(p) for p in patterns]), np.array([means[p] for p in patterns]))
    rows = [r for rs in load_table(table)[rung].values() for r in rs]
    n_attn = np.array([r.pattern.count(ATTENTION.symbol) for r in rows], dtype=float)
    design = np.stack([np.ones_like(n_attn), n_attn, len(patterns[0]) - n_attn], axis=1)
    seconds = np.array([r.cpu_time_s or r.wall_time_s for r in rows])
    coef = np.linalg.lstsq(design, seconds, rcond=None)[0]
    return Fitted(regressor, lengths.pop(), seed_noise_std(table, rung), tuple(float(c) for c in coef))


def cross_validate(table: Path, rung: str, model: str, k: int = 5, seed: int = 0, top: float = 0.05) -> dict:
    """k-fold cross-validation over patterns: each fold's patterns are predicted by a model fitted on the other
    folds only. Returns held-out Spearman and Kendall against the seed-mean losses, and the overlap of the
    predicted and the measured top ``top`` share of patterns."""
    from scipy import stats

    means = seed_mean_losses(table, rung)
    if len(means) < 2 * k:
        raise ConfigError(f"rung {rung!r} of {table} has {len(means)} patterns; {k}-fold cross-validation needs "
                          f"at least {2 * k}")
    patterns = np.array(sorted(means))
    y = np.array([means[p] for p in patterns])
    x = np.stack([features(p) for p in patterns])
    folds = np.random.default_rng(seed).permutation(len(patterns)) % k
    predicted = np.empty_like(y)
    for fold in range(k):
        held_out = folds == fold
        predicted[held_out] = make_model(model, seed).fit(x[~held_out], y[~held_out]).predict(x[held_out])
    n_top = max(1, math.ceil(top * len(y)))
    overlap = len(set(np.argsort(predicted)[:n_top]) & set(np.argsort(y)[:n_top])) / n_top
    return {"rung": rung, "model": model, "k": k, "n_patterns": len(y),
            "spearman": float(stats.spearmanr(predicted, y).statistic),
            "kendall": float(stats.kendalltau(predicted, y).statistic), f"top{round(top * 100)}_overlap": overlap}


@dataclass
class SurrogateConfig:
    """A ``kind: surrogate`` rung file."""

    table: str = "hybridbench16"
    """A shipped table's name, a ``table.jsonl`` file or a calibration run directory."""
    rung: str = ""
    """The table's rung the surrogate stands for (required)."""
    model: str = "gradient_boosting"
    """The regressor (:data:`MODELS`; gradient boosting ranked best held out on HybridBench-6, where it was chosen)."""
    time_scale: float = 0.0
    """Sleep the predicted seconds × this per evaluation (0: answer at once, cost still reported)."""

    def __post_init__(self) -> None:
        choice(self.model, MODELS, "model")
        if self.time_scale < 0:
            raise ConfigError(f"must be >= 0, got {self.time_scale}", key="time_scale")
        rungs = sorted(load_table(table_path(self.table)))
        if self.rung not in rungs:
            raise ConfigError(f"={self.rung!r} is not in table {self.table!r}; it has {rungs}", key="rung")

    def fitted(self) -> Fitted:
        path = table_path(self.table).resolve()
        return fit(path, path.stat().st_mtime_ns, self.rung, self.model)


def seed_noise(pattern: str, rung: str, seed: int, std: float) -> float:
    """The deterministic seed noise of (pattern, rung, seed): Gaussian with standard deviation ``std``."""
    digest = hashlib.sha256(f"{rung}|{pattern}|{seed}".encode()).digest()
    return float(np.random.default_rng(int.from_bytes(digest[:8], "big")).normal(0.0, std))


class SurrogateRung(RungKind):
    """``kind: surrogate``: a regressor fitted on a calibration table's rung, plus its measured seed noise."""

    config = SurrogateConfig

    def metric(self, config: SurrogateConfig) -> str:
        return f"surrogate of {config.rung}"

    def evaluate(self, pattern: Pattern, config: SurrogateConfig, width: SearchWidth, out_dir: Path,
                 seed: int) -> RungResult:
        """The predicted loss plus the seed's noise; the predicted seconds are the evaluation's cost."""
        fitted = config.fitted()
        text = str(pattern)
        if len(Pattern.parse(text)) != fitted.n_layers:
            raise ConfigError(f"pattern {text} has {len(Pattern.parse(text))} layers; the surrogate of "
                              f"{config.rung!r} answers {fitted.n_layers}-layer patterns")
        mean = float(fitted.predict([text])[0])
        noise = seed_noise(text, config.rung, seed, fitted.noise_std)
        cost = fitted.cost(text)
        if config.time_scale:
            time.sleep(cost * config.time_scale)
        return RungResult(loss=mean + noise, metrics={"predicted_mean": mean, "seed_noise": noise},
                          wall_time_s=cost)
