"""MAD scoring arithmetic on hand-made run results, and the shipped protocol's shape."""

from __future__ import annotations

import math

import pytest

from composer_automl.config import ConfigError
from composer_automl.mad.scoring import RunResult, mad_score, setting_scores, task_scores
from composer_automl.mad.settings import BASE_SETTINGS, VARIATIONS, protocol, task_settings

LN16 = math.log(16)
RUNS = [
    # recall: base best 0.9 (over lr), seq_len=256 best 0.5 → task 0.7; losses: best 0.5·ln16 and 0.7·ln16
    RunResult("in-context-recall", "base", 1e-3, 0.0, 0.6, 0.5 * LN16, 16),
    RunResult("in-context-recall", "base", 5e-4, 0.0, 0.9, 0.6 * LN16, 16),
    RunResult("in-context-recall", "seq_len=256", 1e-3, 0.0, 0.5, 0.7 * LN16, 16),
    RunResult("in-context-recall", "seq_len=256", 1e-3, 0.1, 0.2, 0.9 * LN16, 16),
    # compression: one setting, best over wd 0.3 → task 0.3; best loss 0.8·ln16
    RunResult("compression", "base", 1e-3, 0.0, 0.1, 0.8 * LN16, 16),
    RunResult("compression", "base", 1e-3, 0.1, 0.3, 1.0 * LN16, 16),
]


def test_best_over_sweep_per_setting():
    """Each setting keeps its best accuracy over the lr × wd sweep."""
    assert setting_scores(RUNS) == {
        ("in-context-recall", "base"): 0.9,
        ("in-context-recall", "seq_len=256"): 0.5,
        ("compression", "base"): 0.3,
    }


def test_mean_over_settings_then_tasks():
    """Task score = mean of its settings' bests; MAD score = unweighted mean over tasks."""
    assert task_scores(RUNS) == pytest.approx({"in-context-recall": 0.7, "compression": 0.3})
    assert mad_score(RUNS) == pytest.approx(0.5)  # not (0.9 + 0.5 + 0.3) / 3


def test_loss_score_is_the_best_normalized_loss_per_setting():
    """The loss score keeps each setting's lowest test loss over the sweep, in units of ln(vocab_size)."""
    assert setting_scores(RUNS, "loss") == pytest.approx({
        ("in-context-recall", "base"): 0.5, ("in-context-recall", "seq_len=256"): 0.7, ("compression", "base"): 0.8})
    assert task_scores(RUNS, "loss") == pytest.approx({"in-context-recall": 0.6, "compression": 0.8})
    assert mad_score(RUNS, "loss") == pytest.approx(0.7)


def test_mad_score_needs_runs():
    """An empty run list has no score."""
    with pytest.raises(ValueError):
        mad_score([])


def test_protocol_has_mads_66_settings():
    """Base + one-at-a-time variations: 11/11/14/13/11/6 settings, each differing from base in one field."""
    counts = {task: len(task_settings(task)) for task in BASE_SETTINGS}
    assert counts == {
        "in-context-recall": 11,
        "fuzzy-in-context-recall": 11,
        "noisy-in-context-recall": 14,
        "selective-copying": 13,
        "compression": 11,
        "memorization": 6,
    }
    assert len(protocol(list(BASE_SETTINGS))) == 66
    for sid in protocol(list(BASE_SETTINGS)):
        base = BASE_SETTINGS[sid.task]
        diff = [k for k in vars(base) if getattr(sid.setting, k) != getattr(base, k)]
        assert diff == ([] if sid.name == "base" else [sid.name.split("=")[0]])
        assert diff == [] or diff[0] in VARIATIONS[sid.task]


def test_protocol_base_only_and_unknown_task():
    """Without variations a task contributes its base only; an unknown task is a ConfigError."""
    assert [s.name for s in protocol(["compression", "memorization"], variations=False)] == ["base", "base"]
    with pytest.raises(ConfigError, match="unknown MAD task"):
        protocol(["copying"])
