"""The blend rung: weighted mean of parts, seed averaging inside a part, self-contained configs."""

from __future__ import annotations

import pytest

from composer_automl.table import rung_hash
from composer_automl.config import ConfigError
from composer_automl.patterns import Pattern
from composer_automl.spec import SearchWidth
from composer_automl.rungs.registry import rung_from_mapping
from composer_automl.engine.ladder import ladder_from_mapping
from composer_automl.rungs.simulated import SimulatedConfig, SimulatedRung

simulated = SimulatedRung().evaluate

PATTERN = Pattern.parse("AMMAMM")


def sim(**fields) -> dict:
    return {"kind": "simulated", **fields}


def test_loss_is_the_weighted_mean_of_part_losses(tmp_path):
    """loss = (w1·l1 + w2·l2) / (w1 + w2); each part's loss and metrics are reported under its name."""
    blend = {"kind": "blend", "parts": [{"rung": "simulated", "weight": 3.0, "config": sim(fidelity=1.0)},
                                        {"rung": "simulated", "weight": 1.0, "config": sim(fidelity=0.2)}]}
    result = rung_from_mapping("b", blend)(PATTERN, SearchWidth(), tmp_path, 0)
    l1 = simulated(PATTERN, SimulatedConfig(fidelity=1.0), SearchWidth(), tmp_path, 0).loss
    l2 = simulated(PATTERN, SimulatedConfig(fidelity=0.2), SearchWidth(), tmp_path, 0).loss
    assert result.loss == pytest.approx((3 * l1 + l2) / 4)
    assert result.metrics["simulated/loss"] == pytest.approx(l2)  # same part name: the last one's
    assert "simulated/true_loss" in result.metrics


def test_a_part_with_k_seeds_averages_seeds_s_times_k_onwards(tmp_path, monkeypatch):
    """Blend seed s evaluates a k-seed part with seeds s·k … s·k+k−1 and averages their losses."""
    seen = []
    real = SimulatedRung.evaluate

    def recording(self, pattern, config, width, out_dir, seed):
        seen.append(seed)
        result = real(self, pattern, config, width, out_dir, seed)
        return type(result)(loss=result.loss + seed, metrics=result.metrics, wall_time_s=1.0)

    monkeypatch.setattr(SimulatedRung, "evaluate", recording)
    blend = rung_from_mapping("b", {"kind": "blend", "parts": [{"rung": "simulated", "seeds": 3, "config": sim()}]})
    result = blend(PATTERN, SearchWidth(), tmp_path, 2)
    assert seen == [6, 7, 8] and result.wall_time_s == 3.0
    base = real(SimulatedRung(), PATTERN, SimulatedConfig(), SearchWidth(), tmp_path, 0).loss
    assert result.loss == pytest.approx(base + 7)


def test_ladder_inlines_part_files_so_the_hash_covers_them():
    """In a ladder the blend's parts carry their rung files' configs; changing a part changes the hash."""
    entry = {"budget": 1, "rung": "b", "rung_config": {"kind": "blend", "parts": [{"rung": "simulated"}]}}
    ladder = ladder_from_mapping("l", {"kind": "ladder", "eta": 3, "rungs": [entry]})
    part = ladder.mapping["rungs"][0]["rung_config"]["parts"][0]
    assert part["config"]["kind"] == "simulated" and "error_scale" in part["config"]
    changed = {"kind": "blend", "parts": [{"rung": "simulated", "config": {**part["config"], "error_scale": 0.9}}]}
    assert rung_hash(changed) != rung_hash(ladder.mapping["rungs"][0]["rung_config"])


@pytest.mark.parametrize("parts, match", [
    ([], "at least one rung"),
    ([{"rung": "simulated", "weight": 0}], "^parts.0.weight=0.0 must be > 0$"),
    ([{"rung": "simulated", "seeds": 0}], "^parts.0.seeds=0 must be >= 1$"),
    ([{"rung": "no-such-rung"}], "unknown rung 'no-such-rung'"),
])
def test_bad_blends_are_config_errors(parts, match):
    """Empty parts, non-positive weights or seeds and unknown rungs fail while loading."""
    with pytest.raises(ConfigError, match=match):
        rung_from_mapping("b", {"kind": "blend", "parts": parts})
