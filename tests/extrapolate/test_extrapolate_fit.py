"""Depth fitting against the Llama 3.2 baselines and the spec YAML round trip."""

from __future__ import annotations

import pytest

from composer_automl.config import ConfigError
from composer_automl.extrapolate.command import write_spec
from composer_automl.extrapolate.fit import cost_report, fit_depth
from composer_automl.patterns import Pattern
from composer_automl.presets import PUBLISHED_PARAMS, TARGET_SIZES, get_preset
from composer_automl.spec import ModelSpec

PAPER = {"2A+4M": "stack", "2A+5M+2A+3M+1A+3M": "stretch"}


@pytest.mark.parametrize("target", TARGET_SIZES)
@pytest.mark.parametrize("pattern", sorted(PAPER))
@pytest.mark.parametrize("method", ["stack", "stretch"])
def test_params_within_two_percent(pattern, method, target):
    """Each paper pattern, either method, every target: params within ±2% of the AM×k baseline at its width."""
    fit = fit_depth(Pattern.parse(pattern), target, method)
    base = get_preset(target)
    assert abs(fit.spec.num_params() / base.num_params() - 1) <= 0.02
    assert (fit.spec.d_model, fit.spec.n_heads, fit.spec.n_kv_heads, fit.spec.ffn_hidden) == (
        base.d_model, base.n_heads, base.n_kv_heads, base.ffn_hidden)
    assert fit.spec.n_layers >= len(Pattern.parse(pattern))


def test_1b_baseline_is_llama_3_2_1b():
    """The 1B target's baseline has exactly the released Llama 3.2 1B parameter count (32 layers)."""
    fit = fit_depth(Pattern.parse("2A+4M"), "1B", "stack")
    assert fit.baseline.num_params() == PUBLISHED_PARAMS["llama3.2-1B"]
    assert fit.baseline.n_layers == 32


@pytest.mark.parametrize(
    "pattern, method, target, depth",
    [
        ("2A+4M", "stack", "350M", 24), ("2A+4M", "stack", "1B", 26), ("2A+4M", "stack", "3B", 48),
        ("2A+5M+2A+3M+1A+3M", "stretch", "350M", 23), ("2A+5M+2A+3M+1A+3M", "stretch", "1B", 25),
        ("2A+5M+2A+3M+1A+3M", "stretch", "3B", 47),
    ],
)
def test_depth_per_target(pattern, method, target, depth):
    """The paper's patterns extrapolate to fixed depths (fewer layers than AM×k, which has 28/32/56)."""
    assert fit_depth(Pattern.parse(pattern), target, method).spec.n_layers == depth


def test_closest_depth_is_chosen():
    """The chosen depth is the one whose params are closest to the baseline's among its neighbours."""
    fit = fit_depth(Pattern.parse("2A+5M+2A+3M+1A+3M"), "1B", "stretch")
    goal = fit.baseline.num_params()
    for depth in (fit.spec.n_layers - 1, fit.spec.n_layers + 1):
        from composer_automl.extrapolate.scale import stretch
        other = fit.baseline.replace(pattern=stretch(fit.source, depth))
        assert abs(other.num_params() - goal) >= abs(fit.spec.num_params() - goal)


def test_target_smaller_than_pattern():
    """A pattern already bigger than the target baseline at its own depth is one clear ConfigError."""
    with pytest.raises(ConfigError, match="target=350M is smaller than the pattern 40A\\+40M"):
        fit_depth(Pattern.parse("40A+40M"), "350M", "stack")


def test_no_depth_within_tolerance():
    """When no depth lands inside a tight tolerance the error names the closest miss."""
    with pytest.raises(ConfigError, match="no depth of stack\\(2A\\+4M\\).*closest is 26 layers"):
        fit_depth(Pattern.parse("2A+4M"), "1B", "stack", tolerance=0.001)


def test_unknown_target_and_method():
    """Unknown target or method names the allowed values."""
    with pytest.raises(ConfigError, match="target='5B' is not allowed"):
        fit_depth(Pattern.parse("AM"), "5B", "stack")
    with pytest.raises(ConfigError, match="method='tile' is not allowed.*stack.*stretch"):
        fit_depth(Pattern.parse("AM"), "1B", "tile")


def test_yaml_round_trip_and_info(tmp_path):
    """The written YAML loads back into an equal ModelSpec; info carries hybrid and baseline costs."""
    import yaml

    fit = fit_depth(Pattern.parse("2A+5M+2A+3M+1A+3M"), "1B", "stretch")
    info = cost_report(fit, seq_len=2048)
    path = write_spec(fit, info, tmp_path / "sub" / "model_1B.yaml")
    assert ModelSpec.load_yaml(path) == fit.spec
    assert sorted(p.name for p in path.parent.iterdir()) == ["model_1B.yaml"]  # no temp file left
    doc = yaml.safe_load(path.read_text())["info"]
    assert doc["params"] == fit.spec.num_params()
    assert doc["baseline"]["params"] == fit.baseline.num_params()
    assert doc["kv_cache_bytes"] == fit.spec.kv_cache_bytes(2048)
    assert doc["baseline"]["flops_per_token"] == fit.baseline.flops_per_token(2048)
    # 7 attention layers vs Llama's 16 → KV cache 16/7 smaller
    assert doc["kv_cache_reduction"] == pytest.approx(16 / 7, rel=1e-5)
    assert doc["ratios"]["params"] == pytest.approx(fit.spec.num_params() / fit.baseline.num_params(), rel=1e-5)
