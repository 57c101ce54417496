"""Depth fitting: the number of layers at which an extrapolated pattern matches its baseline's size.

The target preset (``350M``, ``1B``, ``3B``) gives the width, heads, KV heads, FFN
size and vocabulary; its own ``AM``×k pattern is the Llama-style baseline whose
parameter count the hybrid must match within a tolerance (±2% by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from composer_automl.config import ConfigError, choice
from composer_automl.extrapolate.scale import STRATEGIES
from composer_automl.patterns import Pattern
from composer_automl.presets import TARGET_SIZES, get_preset
from composer_automl.spec import ModelSpec


@dataclass(frozen=True)
class DepthFit:
    """The extrapolated spec whose parameter count is closest to the baseline's."""

    source: Pattern
    """The searched pattern that was scaled."""
    method: str
    """Extrapolation strategy (a key of ``STRATEGIES``)."""
    target: str
    """Target preset name."""
    spec: ModelSpec
    """The hybrid at the target width and the chosen depth."""
    baseline: ModelSpec
    """The target preset itself (Llama-style ``AM``×k)."""

    @property
    def rel_error(self) -> float:
        """(hybrid params − baseline params) / baseline params."""
        return self.spec.num_params() / self.baseline.num_params() - 1.0


def fit_depth(pattern: Pattern, target: str, method: str, tolerance: float = 0.02) -> DepthFit:
    """Choose the depth M >= len(pattern) whose extrapolated pattern's params are closest to the baseline.

    Ties go to the shallower model. Raises :class:`ConfigError` when even the
    shallowest extrapolation (M = len(pattern)) is larger than the baseline plus
    ``tolerance`` (the target is smaller than the pattern) or when no depth lands
    within ``tolerance``.
    """
    choice(target, TARGET_SIZES, "target")
    scale = STRATEGIES[choice(method, STRATEGIES, "method")]
    baseline = get_preset(target)
    goal = baseline.num_params()

    def at_depth(depth: int) -> ModelSpec:
        return baseline.replace(pattern=scale(pattern, depth))

    shallowest = at_depth(len(pattern))
    if shallowest.num_params() > goal * (1 + tolerance):
        raise ConfigError(
            f"target={target} is smaller than the pattern {pattern.run_length()}: at its own depth "
            f"({len(pattern)} layers) it has {shallowest.num_params():,} params, more than the "
            f"baseline's {goal:,} + {tolerance:.0%}; choose a larger target from {list(TARGET_SIZES)}"
        )
    # Every layer adds at least the smaller layer kind's weights, so no deeper model can fit.
    fixed = shallowest.num_params() - sum(_layer_params(shallowest, k) for k in pattern)
    smallest_layer = min(baseline.attention_params(), baseline.mlp_params()) + baseline.d_model
    max_depth = int((goal * (1 + tolerance) - fixed) // smallest_layer) + 1
    best = min(
        (at_depth(d) for d in range(len(pattern), max_depth + 1)),
        key=lambda s: (abs(s.num_params() - goal), s.n_layers),
    )
    fit = DepthFit(pattern, method, target, best, baseline)
    if abs(fit.rel_error) > tolerance:
        raise ConfigError(
            f"no depth of {method}({pattern.run_length()}) matches the {target} baseline "
            f"({goal:,} params) within tolerance={tolerance:.1%}; closest is {best.n_layers} "
            f"layers with {best.num_params():,} params ({fit.rel_error:+.2%}); try method="
            f"{[m for m in STRATEGIES if m != method][0]} or a larger tolerance"
        )
    return fit


def _layer_params(spec: ModelSpec, kind: str) -> int:
    """Weights of one residual layer of ``kind``: its mixer plus its RMSNorm."""
    mixer = spec.attention_params() if kind == "A" else spec.mlp_params()
    return mixer + spec.d_model


def cost_report(fit: DepthFit, seq_len: int, kv_dtype: str = "bfloat16") -> dict[str, Any]:
    """Size and cost of the hybrid next to its baseline, for the spec YAML's ``info``.

    FLOPs/token are training FLOPs at ``seq_len``; the KV cache is for one sequence of
    ``seq_len`` tokens in ``kv_dtype``. Ratios are hybrid / baseline; ``kv_cache_reduction`` is
    baseline / hybrid, None (∞) for an attention-free pattern, which keeps no KV cache.
    """

    def costs(spec: ModelSpec) -> dict[str, Any]:
        return {
            "pattern": spec.pattern.run_length(),
            "n_layers": spec.n_layers,
            "attention_fraction": round(spec.pattern.attention_fraction, 6),
            "params": spec.num_params(),
            "flops_per_token": spec.flops_per_token(seq_len),
            "kv_cache_bytes": spec.kv_cache_bytes(seq_len, batch=1, dtype=kv_dtype),
        }

    hybrid, baseline = costs(fit.spec), costs(fit.baseline)
    return {
        "source_pattern": fit.source.run_length(),
        "method": fit.method,
        "target": fit.target,
        "reference_seq_len": seq_len,
        "kv_dtype": kv_dtype,
        **hybrid,
        "baseline": baseline,
        "ratios": {
            key: round(hybrid[key] / baseline[key], 6)
            for key in ("params", "flops_per_token", "kv_cache_bytes")
        },
        # an attention-free pattern keeps no KV cache: the reduction is unbounded, written as null (JSON/YAML)
        "kv_cache_reduction": (round(baseline["kv_cache_bytes"] / hybrid["kv_cache_bytes"], 6)
                               if hybrid["kv_cache_bytes"] else None),
    }
