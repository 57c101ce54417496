"""``composer-automl extrapolate pattern=2A+4M target=1B method=stack|stretch out=…``.

Scales a searched pattern to the target preset's width, fits the depth so the
parameter count matches the Llama-style baseline within ``tolerance``, and writes
a ``ModelSpec`` YAML (atomically) with size and cost figures next to the baseline's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig

from composer_automl.config import ConfigError, choice, to_dataclass
from composer_automl.extrapolate.fit import DepthFit, cost_report, fit_depth
from composer_automl.extrapolate.scale import STRATEGIES
from composer_automl.patterns import Pattern, parse_pattern
from composer_automl.presets import TARGET_SIZES
from composer_automl.spec import DTYPE_BYTES
from composer_automl.files import atomic_write, check_writable


@dataclass
class ScaleOptions:
    """How to extrapolate (shared by ``extrapolate`` and ``aggregate``'s ``extrapolate:`` node)."""

    target: Optional[str] = "1B"
    """Target preset: one of 350M, 1B, 3B (under ``aggregate``, null = do not extrapolate)."""
    method: str = "stack"
    """``stack`` (repeat the block, stretched tail) or ``stretch`` (scale each run)."""
    out: Optional[str] = None
    """Spec YAML path; null = ``model_<target>.yaml`` in the Hydra run dir (or the search's run dir)."""
    tolerance: float = 0.02
    """Largest allowed |params − baseline params| / baseline params."""
    seq_len: int = 2048
    """Reference sequence length for FLOPs/token and KV-cache bytes in the report."""
    kv_dtype: str = "bfloat16"
    """Element type of the KV cache in the report."""

    def __post_init__(self) -> None:
        if self.target is not None:
            choice(self.target, TARGET_SIZES, "target")
        choice(self.method, STRATEGIES, "method")
        choice(self.kv_dtype, DTYPE_BYTES, "kv_dtype")
        if not 0 < self.tolerance < 1:
            raise ConfigError(f"={self.tolerance} must be in (0, 1), e.g. 0.02 for ±2%", key="tolerance")
        if self.seq_len < 1:
            raise ConfigError(f"={self.seq_len} must be a positive integer", key="seq_len")


@dataclass
class ExtrapolateConfig(ScaleOptions):
    """The ``extrapolate`` subcommand: options plus the pattern to scale."""

    pattern: str = ""
    """Searched pattern, compact (``AAMMMM``) or run-length (``2A+4M``)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.target is None:
            raise ConfigError(f"is required; choose one of {list(TARGET_SIZES)}", key="target")
        parse_pattern(self.pattern, "pattern")


def write_spec(fit: DepthFit, info: dict[str, Any], path: Path) -> Path:
    """Write the fitted spec and its ``info`` as YAML via a temporary file renamed into place."""
    return atomic_write(path, lambda tmp: fit.spec.save_yaml(tmp, extra=info))


def spec_path(options: ScaleOptions, default_dir: Path, key: str = "out") -> Path:
    """Where the spec YAML goes (``out``, else ``model_<target>.yaml`` in ``default_dir``), checked writable."""
    out = Path(options.out) if options.out else default_dir / f"model_{options.target}.yaml"
    check_writable(out, key, file=True)
    return out


def run_extrapolation(pattern: Pattern, options: ScaleOptions, default_dir: Path) -> tuple[DepthFit, Path]:
    """Fit, report and write; prints the key figures. Returns the fit and the YAML path."""
    out = spec_path(options, default_dir)
    fit = fit_depth(pattern, options.target, options.method, options.tolerance)
    info = cost_report(fit, options.seq_len, options.kv_dtype)
    write_spec(fit, info, out)
    print(describe(info))
    print(f"wrote {out}")
    return fit, out


def describe(info: dict[str, Any]) -> str:
    """Human-readable lines for a cost report (see :func:`cost_report`)."""
    base, ratios = info["baseline"], info["ratios"]
    return "\n".join([
        f"{info['method']} {info['source_pattern']} -> {info['target']}: {info['n_layers']} layers "
        f"{info['pattern']} (attention fraction {info['attention_fraction']:.3f})",
        f"params          {info['params']:,} vs baseline {base['params']:,} ({ratios['params'] - 1:+.2%})",
        f"flops/token     {info['flops_per_token']:.4g} vs {base['flops_per_token']:.4g} "
        f"(x{ratios['flops_per_token']:.3f}) at seq_len {info['reference_seq_len']}",
        f"kv cache        {info['kv_cache_bytes']:,} B vs {base['kv_cache_bytes']:,} B ({_kv_ratio(info)})",
    ])


def _kv_ratio(info: dict[str, Any]) -> str:
    reduction = info["kv_cache_reduction"]
    if reduction is None:
        return "no KV cache: attention-free, reduction ∞"
    return f"{reduction:.2f}x smaller" if reduction >= 1 else f"{1 / reduction:.2f}x larger"


def task(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    config = to_dataclass(ExtrapolateConfig, cfg)
    run_extrapolation(Pattern.parse(config.pattern), config, Path(HydraConfig.get().runtime.output_dir))


def main(argv: list[str]) -> None:
    from composer_automl.cli import run_hydra_app

    run_hydra_app("extrapolate", task, argv)
