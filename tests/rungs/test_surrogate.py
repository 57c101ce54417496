"""The surrogate rung: a regressor fitted on a table's sample answers every pattern of its length, deterministically."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from composer_automl.config import ConfigError, to_dataclass
from composer_automl.patterns import Pattern
from composer_automl.rungs.registry import rung_from_mapping
from composer_automl.rungs.surrogate import SurrogateConfig, cross_validate, features, seed_noise_std
from composer_automl.rungs.simulated import SimulatedConfig, true_loss
from composer_automl.spec import SearchWidth

ALL_8 = ["".join(p) for p in itertools.product("AM", repeat=8) if "A" in p and "M" in p]   # 254 patterns
SAMPLE = ALL_8[::2]                                                                          # 127 fitted on


@pytest.fixture
def table(make_table):
    return make_table(SAMPLE, {"cheap": 4.0, "ref": 40.0}, seeds=2)


def test_features_encode_positions_pairs_and_summaries():
    f = features("AAMM")
    assert list(f[:4]) == [1, 1, 0, 0] and list(f[4:7]) == [1, 0, 0]       # layers, adjacent attention pairs
    assert f[7] == pytest.approx(0.5) and f[8] == pytest.approx(0.25)      # attention fraction and its square
    assert f[9] == 0.0 and f[10] == pytest.approx(0.5 / 3) and f[11] == pytest.approx(0.25)   # start, mean, runs


def test_ranks_unseen_patterns_like_the_simulated_truth(table, tmp_path):
    """Patterns outside the fitted sample are ranked like the true loss; held-out CV says the same."""
    rung = rung_from_mapping("s", {"kind": "surrogate", "table": str(table), "rung": "ref"})
    unseen = ALL_8[1::2]
    predicted = [rung(Pattern.parse(p), SearchWidth(), tmp_path, 0).metrics["predicted_mean"] for p in unseen]
    truth = [true_loss(Pattern.parse(p), SimulatedConfig()) for p in unseen]
    from scipy.stats import spearmanr
    assert spearmanr(predicted, truth).statistic > 0.8
    cv = cross_validate(table / "table.jsonl", "ref", "gradient_boosting", k=4)
    assert cv["n_patterns"] == len(SAMPLE) and cv["spearman"] > 0.8 and 0 <= cv["top5_overlap"] <= 1


def test_each_pattern_and_seed_gives_one_loss_with_the_tables_seed_noise(table, tmp_path):
    rung = rung_from_mapping("s", {"kind": "surrogate", "table": str(table), "rung": "ref"})
    pattern = Pattern.parse(ALL_8[1])
    first = [rung(pattern, SearchWidth(), tmp_path, seed) for seed in range(200)]
    again = [rung(pattern, SearchWidth(), tmp_path, seed) for seed in range(200)]
    assert [r.loss for r in first] == [r.loss for r in again]
    noise = np.array([r.metrics["seed_noise"] for r in first])
    std = seed_noise_std(table / "table.jsonl", "ref")
    assert std > 0 and abs(noise.std() - std) < 0.2 * std                   # the table's seed spread
    assert all(r.wall_time_s == pytest.approx(36.0) for r in first)         # the cost model of CPU seconds (0.9 × wall)


def test_bad_files_name_the_key_and_a_wrong_length_fails_the_evaluation(table, tmp_path):
    with pytest.raises(ConfigError, match=r"^fidelity/s.yaml: rung='nope' is not in table .*\['cheap', 'ref'\]"):
        to_dataclass(SurrogateConfig, {"table": str(table), "rung": "nope"}, "fidelity/s.yaml:")
    with pytest.raises(ConfigError, match=r"^fidelity/s.yaml: model='svm'.*gradient_boosting"):
        to_dataclass(SurrogateConfig, {"table": str(table), "rung": "ref", "model": "svm"}, "fidelity/s.yaml:")
    rung = rung_from_mapping("s", {"kind": "surrogate", "table": str(table), "rung": "ref"})
    with pytest.raises(ConfigError, match="pattern AMAM has 4 layers; the surrogate of 'ref' answers 8-layer"):
        rung(Pattern.parse("AMAM"), SearchWidth(), tmp_path, 0)
