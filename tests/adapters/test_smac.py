"""SMAC3's multi-fidelity facade as a second optimizer backend, driving the same workers (the ``smac`` extra)."""

from __future__ import annotations

from collections import Counter

import pytest

smac = pytest.importorskip("smac")

from composer_automl.engine.ladder import ladder_from_mapping  # noqa: E402
from composer_automl.search.results import read_asks, read_trials  # noqa: E402
from composer_automl.search.run import SearchSettings, planned_trials, run_search  # noqa: E402
from composer_automl.spaces import load_space  # noqa: E402


def tabular_ladder(make_table):
    """Two budgets replaying a recorded table of all 64 six-layer patterns (fail_when: AAAAAA has no row)."""
    space = load_space("one-shot-6")
    patterns = [str(p) for p in space.patterns() if str(p) != "AAAAAA"]
    run_dir = make_table(patterns, {"cheap": 10.0, "ref": 30.0}, seeds=1)
    rungs = [{"budget": b, "rung": name, "rung_config": {"kind": "tabular", "table": str(run_dir), "rung": name}}
             for b, name in ((1.0, "cheap"), (3.0, "ref"))]
    return space, ladder_from_mapping("tab", {"kind": "ladder", "eta": 3, "rungs": rungs})


@pytest.mark.timeout(120)
def test_a_smac_search_runs_on_the_engines_workers_records_failures_and_resumes(make_table, tmp_path):
    """search.optimizer=smac: SMAC asks, the engine's worker processes run the trials (a pattern missing from the
    table fails its trial, recorded like any failure), the planned number of runs is made, a kill-free resume of
    the finished run is refused and a resumed half-run ends with every run once."""
    space, ladder = tabular_ladder(make_table)
    settings = SearchSettings(optimizer="smac", n_workers=2, n_iterations=10, seed=0, ping_interval_s=1)
    summary = run_search(settings, space, ladder, tmp_path / "run")
    records = read_trials(tmp_path / "run")
    n = planned_trials("smac", ladder, 10)
    assert len(records) == n >= 30 and len({r.trial_id for r in records}) == n
    assert {r.budget for r in records} == {1.0, 3.0} and {r.worker.rsplit(".", 1)[1] for r in records} <= {"0", "1"}
    failed = [r for r in records if r.status == "failed"]
    assert all(r.pattern == "AAAAAA" and "no successful row" in r.error for r in failed)
    assert summary["n_trials"] == n and summary["sampling"]["model_based_configs"] > 0
    asks = read_asks(tmp_path / "run")
    assert len(asks) == n and Counter((a.pattern, a.budget) for a in asks).most_common(1)[0][1] == 1


@pytest.mark.slow  # a SMAC resume in the default run: test_a_smac_search_runs_on_the_engines_workers_...
@pytest.mark.timeout(120)
def test_smac_resumes_from_its_logs_in_event_order(make_table, tmp_path):
    """A SMAC search cut after 12 results resumes by replaying its asks and results in order: SMAC continues
    exactly where it was, so the resumed run equals the uninterrupted one trial for trial."""
    space, ladder = tabular_ladder(make_table)
    settings = SearchSettings(optimizer="smac", n_workers=1, n_iterations=6, seed=3, ping_interval_s=1)
    run_search(settings, space, ladder, tmp_path / "whole")
    whole = read_trials(tmp_path / "whole")
    cut = tmp_path / "cut"
    cut.mkdir()
    for name in ("configs.jsonl", "trials.jsonl", "search.json"):
        lines = (tmp_path / "whole" / name).read_text().splitlines(keepends=True)
        if name == "trials.jsonl":
            lines = lines[:12]
        elif name == "configs.jsonl":
            last = max(r.seq for r in read_trials(tmp_path / "whole")[:12])
            lines = [line for line in lines if __import__("json").loads(line)["seq"] < last + 2]
        (cut / name).write_text("".join(lines))
    run_search(settings, space, ladder, cut, resume=True)
    resumed = read_trials(cut)
    assert [(r.trial_id, r.pattern, r.budget) for r in resumed] == [(r.trial_id, r.pattern, r.budget) for r in whole]


@pytest.mark.timeout(180)
def test_a_space_smac_has_exhausted_ends_the_search_early_without_a_traceback(make_table, tmp_path, capsys):
    """On 8 three-layer patterns SMAC runs out of new configurations long before 60 iterations' trials: the
    search says so in one line and ends with every trial it ran recorded, none twice at a budget."""
    from composer_automl.spaces import space_from_mapping

    space = space_from_mapping({"strategy": "one-shot", "n_layers": 3})
    run_dir = make_table([str(p) for p in space.patterns()], {"cheap": 10.0, "ref": 30.0}, seeds=1)
    rungs = [{"budget": b, "rung": name, "rung_config": {"kind": "tabular", "table": str(run_dir), "rung": name}}
             for b, name in ((1.0, "cheap"), (3.0, "ref"))]
    ladder = ladder_from_mapping("tab", {"kind": "ladder", "eta": 3, "rungs": rungs})
    settings = SearchSettings(optimizer="smac", n_workers=1, n_iterations=60, seed=0, ping_interval_s=1)
    summary = run_search(settings, space, ladder, tmp_path / "run")
    records = read_trials(tmp_path / "run")
    assert "SMAC has no configuration left to propose" in capsys.readouterr().out
    assert 0 < len(records) < planned_trials("smac", ladder, 60) and summary["n_trials"] == len(records)
    assert all(r.ok for r in records)


@pytest.mark.timeout(120)
def test_failed_trials_reach_smacs_model_as_the_worst_cost_so_its_forest_trains(tmp_path):
    """A failure is told to SMAC as crashed at infinite cost; SMAC 2.4's log-scaled encoder turned that into NaN
    and its random forest refused to train (the HybridBench-16 comparison stopped on it). Every pattern opening
    with attention fails here, about half of all asks, and the search still gets its model's picks."""
    from composer_automl.adapters.smac import SmacMultiFidelity

    space = load_space("one-shot-6")
    picks = []

    def sampler(config_id, budget, draw):
        config, info = draw(budget)
        picks.append(info["model_based_pick"])
        return config, info

    optimizer = SmacMultiFidelity(space.configspace, [1.0, 3.0], 3, 48, 0, tmp_path, space.accepts, sampler)
    told = []
    while (run := optimizer.ask()) is not None:
        config_id, config, budget = run
        pattern = str(space.to_pattern(config))
        loss = None if pattern.startswith("A") else pattern.count("A") / budget
        optimizer.tell(config_id, config, budget, loss, None if loss is not None else "fails by design")
        told.append(loss)
    assert len(told) == 48 and told.count(None) >= 10 and any(picks)
    assert optimizer.finished


PROPOSALS = """
import sys, tempfile, zlib
from composer_automl.adapters.smac import SmacMultiFidelity
from composer_automl.spaces import load_space
space = load_space("one-shot-16")
optimizer = SmacMultiFidelity(space.configspace, [1.0, 3.0], 3, 40, 0, tempfile.mkdtemp(), space.accepts,
                              lambda config_id, budget, draw: draw(budget))
while (run := optimizer.ask()) is not None:
    config_id, config, budget = run
    pattern = str(space.to_pattern(config))
    optimizer.tell(config_id, config, budget, zlib.crc32(pattern.encode()) % 1000 / 1000 / budget)
    print(pattern, budget)
"""


@pytest.mark.timeout(120)
def test_smac_proposes_the_same_configurations_whatever_the_processs_string_hashing():
    """SMAC's local search started from ``list(set(configurations))``, ordered by Python's per-process string
    hashing: a resumed search (a new process) could not replay its SMAC. Two processes with other hash seeds now
    ask for the same 40 runs."""
    import os
    import subprocess
    import sys

    runs = [subprocess.run([sys.executable, "-c", PROPOSALS], env={**os.environ, "PYTHONHASHSEED": seed},
                           capture_output=True, text=True, check=True).stdout for seed in ("1", "2")]
    assert len(runs[0].splitlines()) == 40 and runs[0] == runs[1]
