"""The tabular rung replays a calibration table: right row per seed, clear errors, whole searches in seconds."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from composer_automl.rungs.tabular import MissingRow, TabularConfig, replay, table_path
from composer_automl.table import read_rows
from composer_automl.config import ConfigError, to_dataclass
from composer_automl.patterns import Pattern
from composer_automl.spec import SearchWidth
from composer_automl.rungs.registry import rung_from_mapping
from composer_automl.engine.ladder import ladder_from_mapping, load_ladder
from composer_automl.search.results import read_trials
from composer_automl.search.run import SearchSettings, run_search
from composer_automl.spaces import load_space

PATTERNS = ["AMMAMM", "AAMMMM", "MMMMMM", "AMAMAM"]


def test_replays_the_row_of_each_seed_and_cycles(make_table, tmp_path):
    """Seed s replays recorded seed s mod n; the recorded wall time is the evaluation's cost."""
    run_dir = make_table(PATTERNS, {"cheap": 3.0, "ref": 30.0}, seeds=2)
    rows = {(r.pattern, r.rung, r.seed): r for r in read_rows(run_dir)}
    rung = rung_from_mapping("t", {"kind": "tabular", "table": str(run_dir), "rung": "ref"})
    for seed in range(5):
        result = rung(Pattern.parse("AMMAMM"), SearchWidth(), tmp_path / "out", seed)
        recorded = rows["AMMAMM", "ref", seed % 2]
        assert result.loss == recorded.loss and result.wall_time_s == 30.0
        assert result.metrics["recorded_seed"] == seed % 2 and result.metrics["true"] == recorded.metrics["true"]


def test_missing_pattern_rung_table_or_columns_are_clear_errors(make_table, tmp_path):
    """A pattern the table lacks fails that evaluation; an unknown rung, table or a column-less table fail at load."""
    run_dir = make_table(PATTERNS, {"cheap": 3.0}, seeds=1)
    config = to_dataclass(TabularConfig, {"table": str(run_dir), "rung": "cheap"}, "fidelity/t.yaml:")
    with pytest.raises(MissingRow, match="pattern AAAAAA has no successful row at rung 'cheap'"):
        replay(config, Pattern.parse("AAAAAA"), 0)
    with pytest.raises(ConfigError, match=r"^fidelity/t.yaml: rung='ref' is not in table .*\['cheap'\]"):
        to_dataclass(TabularConfig, {"table": str(run_dir), "rung": "ref"}, "fidelity/t.yaml:")
    with pytest.raises(ConfigError, match="no such table"):
        to_dataclass(TabularConfig, {"table": str(tmp_path / "nope"), "rung": "cheap"}, "fidelity/t.yaml:")
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"pattern": "AMMAMM", "rung": "cheap", "seed": 0}) + "\n")
    with pytest.raises(ConfigError, match=r"lacks column\(s\) \['status', 'loss', 'wall_time_s'\]"):
        to_dataclass(TabularConfig, {"table": str(broken), "rung": "cheap"}, "fidelity/t.yaml:")


def test_table_path_resolves_files_run_dirs_and_shipped_names(make_table):
    """A table is a table.jsonl, a run directory holding one, or the name of a shipped table."""
    run_dir = make_table(PATTERNS, {"cheap": 1.0}, seeds=1)
    assert table_path(str(run_dir)) == table_path(str(run_dir / "table.jsonl")) == run_dir / "table.jsonl"


@pytest.mark.timeout(120)
def test_bohb_on_a_tabular_rung_runs_30_trials_in_seconds_and_fits_its_model(make_table, tmp_path):
    """A single-budget BOHB search of 30 trials on recorded losses finishes quickly; once 14 results exist
    (2·(d+1) for 6 layers) the density model fits and later configurations are model-based picks."""
    space = load_space("one-shot-6")
    run_dir = make_table([str(p) for p in space.patterns()], {"ref": 120.0}, seeds=1)
    ladder = ladder_from_mapping("tab", {"kind": "tabular", "table": str(run_dir), "rung": "ref"})
    settings = SearchSettings(n_workers=1, n_iterations=30, seed=0, ping_interval_s=1)
    summary = run_search(settings, space, ladder, tmp_path / "search")
    records = read_trials(tmp_path / "search")
    assert len(records) == 30 and all(r.status == "ok" and r.wall_time_s == 120.0 for r in records)
    picks = [r.model_based_pick for r in sorted(records, key=lambda r: r.elapsed_s)]
    assert not any(picks[:14]), "no model before 14 results at the budget"
    assert sum(picks) >= 5, picks
    assert summary["sampling"] == {"model_based_configs": sum(picks), "random_configs": 30 - sum(picks),
                                   "model_based_trials": sum(picks), "random_trials": 30 - sum(picks)}
    assert Counter(r.rung for r in records) == {"tab": 30}


@pytest.mark.timeout(180)
def test_the_default_search_replayed_on_hybridbench6_gets_model_based_picks(tmp_path):
    """The main job's search (shipped search.* defaults, the default ladder replayed from HybridBench-6's
    recorded rows) reaches 14 results at a budget, so BOHB's model proposes some of its configurations."""
    settings = SearchSettings(n_workers=1, ping_interval_s=1)
    summary = run_search(settings, load_space("one-shot-6"), load_ladder("hybridbench6"), tmp_path / "search")
    records = read_trials(tmp_path / "search")
    assert len(records) == 30 and all(r.ok for r in records)
    assert summary["sampling"]["model_based_configs"] >= 1, summary["sampling"]
    assert sum(bool(r.model_based_pick) for r in records) == summary["sampling"]["model_based_trials"]
    # a configuration promoted to budget 3 is never sampled anew there (it was, three times, before the fix)
    assert max(Counter((r.pattern, r.budget) for r in records).values()) == 1
