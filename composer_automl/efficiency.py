"""Target-scale cost of a searched pattern, constraints on it, and the scalarized search objective.

A small searched pattern's cost at the scale it will be trained at is exactly computable:
:func:`~composer_automl.extrapolate.fit.fit_depth` extrapolates it (stack or stretch) to the
depth whose parameter count matches the Llama 3.2-style baseline of the target size, and the
:class:`~composer_automl.spec.ModelSpec` gives its parameters, training FLOPs per token and KV
cache. Ratios are hybrid / baseline (lower is cheaper).

The ``scalarized`` objective is ParEGO's (Knowles, "ParEGO: a hybrid algorithm with on-line
landscape approximation for expensive multiobjective optimization problems", IEEE TEVC 2006):
each Hyperband bracket draws a weight vector uniformly from the simplex and minimises the
augmented Tchebycheff function of the normalised objectives, so that successive brackets aim
at different parts of the quality/cost front. Normalisation (:class:`Scalarizer`): each
objective is min-max scaled over the results seen at the same budget, so a weight means the
same at every budget.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from composer_automl.config import ConfigError
from composer_automl.extrapolate.fit import fit_depth
from composer_automl.patterns import Pattern

FIT_TOLERANCE = 0.05
"""Parameter mismatch allowed when costing a pattern (the closest depth; ``params_ratio`` says how close):
wider than ``extrapolate``'s ±2 %, where a few patterns' layer granularity lands just outside."""
COST_SEQ_LEN = 2048
"""Context length at which FLOPs per token and the KV cache of a target-scale model are compared."""
OBJECTIVES = ("loss", "scalarized")
"""``search.objective`` values."""
TCHEBYCHEFF_RHO = 0.05
"""Weight of the linear term of the augmented Tchebycheff function (ParEGO's value)."""
COST_NAMES = ("kv_cache_ratio", "flops_ratio")
"""The cost ratios the scalarized objective and the Pareto front trade against the loss."""


@dataclass(frozen=True)
class TargetCost:
    """A pattern extrapolated to a target size, next to the Llama-style baseline of that size."""

    target: str
    method: str
    n_layers: int
    params: int
    flops_per_token: float
    kv_cache_bytes: int
    params_ratio: float
    flops_ratio: float
    kv_cache_ratio: float

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


@functools.lru_cache(maxsize=4096)
def _target_cost(pattern: str, target: str, method: str, seq_len: int) -> TargetCost:
    fit = fit_depth(Pattern.parse(pattern), target, method, FIT_TOLERANCE)
    hybrid, base = fit.spec, fit.baseline
    return TargetCost(
        target=target, method=method, n_layers=hybrid.n_layers, params=hybrid.num_params(),
        flops_per_token=hybrid.flops_per_token(seq_len), kv_cache_bytes=hybrid.kv_cache_bytes(seq_len),
        params_ratio=hybrid.num_params() / base.num_params(),
        flops_ratio=hybrid.flops_per_token(seq_len) / base.flops_per_token(seq_len),
        kv_cache_ratio=hybrid.kv_cache_bytes(seq_len) / base.kv_cache_bytes(seq_len),
    )


def target_cost(pattern: Pattern | str, target: str = "1B", method: str = "stack",
                seq_len: int = COST_SEQ_LEN) -> TargetCost:
    """Size and cost of ``pattern`` extrapolated to ``target`` with ``method`` (cached; pure)."""
    return _target_cost(str(Pattern.parse(pattern)), target, method, seq_len)


@dataclass
class Constraints:
    """Bounds on a pattern's target-scale cost ratios; a pattern outside them is never evaluated."""

    kv_cache_ratio_max: Optional[float] = None
    """At most this KV cache relative to the baseline (e.g. 0.5: half Llama's)."""
    flops_ratio_max: Optional[float] = None
    """At most this many training FLOPs per token relative to the baseline."""
    params_ratio_min: Optional[float] = None
    params_ratio_max: Optional[float] = None
    """Parameter-count window relative to the baseline (the depth fit matches it within ±2 %)."""

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value is not None and not (isinstance(value, (int, float)) and value > 0):
                raise ConfigError(f"={value!r} must be a positive number or null", key=name)
        if self.params_ratio_min and self.params_ratio_max and self.params_ratio_min > self.params_ratio_max:
            raise ConfigError(f"={self.params_ratio_min} must be <= params_ratio_max={self.params_ratio_max}",
                              key="params_ratio_min")

    @property
    def active(self) -> bool:
        return any(v is not None for v in asdict(self).values())

    def violation(self, cost: TargetCost) -> str | None:
        """Why ``cost`` breaks a bound, or None."""
        checks = (("kv_cache_ratio", cost.kv_cache_ratio, None, self.kv_cache_ratio_max),
                  ("flops_ratio", cost.flops_ratio, None, self.flops_ratio_max),
                  ("params_ratio", cost.params_ratio, self.params_ratio_min, self.params_ratio_max))
        for name, value, low, high in checks:
            if high is not None and value > high + 1e-12:
                return f"{name} {value:.3f} at {cost.target} > {high}"
            if low is not None and value < low - 1e-12:
                return f"{name} {value:.3f} at {cost.target} < {low}"
        return None


def bracket_weights(seed: int, bracket: int, n_objectives: int = 1 + len(COST_NAMES)) -> np.ndarray:
    """The weight vector of one Hyperband bracket: uniform on the simplex, seeded by (seed, bracket)."""
    return np.random.default_rng([seed, bracket]).dirichlet(np.ones(n_objectives))


def tchebycheff(normalized: np.ndarray, weights: np.ndarray) -> float:
    """Augmented Tchebycheff function of objectives normalised to [0, 1] (0 = best seen)."""
    weighted = weights * normalized
    return float(weighted.max() + TCHEBYCHEFF_RHO * weighted.sum())


class Scalarizer:
    """ParEGO's scalarization for a search: objectives (loss, cost ratios) normalised per budget.

    Each objective is min-max normalised over every result seen so far *at the same budget*
    (ParEGO normalises by the observed ranges), so a loss at a cheap rung and one at an
    expensive rung both span [0, 1] and a weight means the same at every budget. Bracket ``i``
    uses :func:`bracket_weights` ``(seed, i)``.
    """

    def __init__(self, seed: int):
        self.seed = seed
        self.seen: dict[float, list[list[float]]] = {}

    def __call__(self, budget: float, bracket: int, objectives: list[float]) -> float:
        history = self.seen.setdefault(float(budget), [])
        history.append([float(v) for v in objectives])
        values = np.array(history)
        low, high = values.min(axis=0), values.max(axis=0)
        span = np.where(high > low, high - low, 1.0)
        return tchebycheff((values[-1] - low) / span, bracket_weights(self.seed, bracket, len(objectives)))
