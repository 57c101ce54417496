"""Factories for hand-made run directories (the search's trials.jsonl contract)."""

from __future__ import annotations

import json

import pytest

from composer_automl.search.results import SUMMARY_FILE, TrialRecord, append_trial


@pytest.fixture
def make_run_dir(tmp_path):
    """make_run_dir([(pattern, budget, loss), ...], finished=True, failed=0) → run directory path."""
    counter = iter(range(10_000))

    def make(rows, finished=True, failed=0, name="run"):
        run_dir = tmp_path / name
        run_dir.mkdir()
        for pattern, budget, loss in rows:
            i = next(counter)
            append_trial(run_dir, TrialRecord(trial_id=f"0-0-{i}@{budget}", pattern=pattern, budget=budget, rung="sim", status="ok", loss=loss))
        for _ in range(failed):
            i = next(counter)
            append_trial(run_dir, TrialRecord(trial_id=f"0-0-{i}@9", pattern="AAAAAA", budget=9.0, rung="sim", status="failed", loss=None, error="boom"))
        if finished:
            (run_dir / SUMMARY_FILE).write_text(json.dumps({"n_trials": len(rows) + failed}))
        return run_dir

    return make
