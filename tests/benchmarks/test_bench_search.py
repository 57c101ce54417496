"""benchmarks/bench_search.py: optimizers compared on replayed tables, cost counted in evaluation seconds."""

from __future__ import annotations

import importlib
import json
import math
import re
import sys
from pathlib import Path

import pytest

from composer_automl.search.results import TrialRecord

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_search.py"


@pytest.fixture(scope="module")
def bench():
    """The script as the module ``bench_search`` (its spawned search processes import it by that name)."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        yield importlib.import_module("bench_search")
    finally:
        sys.path.remove(str(SCRIPT.parent))
        sys.modules.pop("bench_search", None)


def record(pattern: str, budget: float, loss: float | None, wall: float, elapsed: float) -> TrialRecord:
    return TrialRecord(trial_id=f"{pattern}@{budget}", pattern=pattern, budget=budget, rung="r",
                       status="ok" if loss is not None else "failed", loss=loss, wall_time_s=wall,
                       elapsed_s=elapsed)


def test_cost_and_regret_follow_finishing_order(bench):
    # written out of order; a failed trial costs its time too; the target first seen at the top budget counts
    records = [record("AAM", 3, 1.0, 20, elapsed=3), record("AMM", 1, 0.5, 5, elapsed=1),
               record("MMA", 3, None, 7, elapsed=2), record("AMM", 3, 0.9, 30, elapsed=4)]
    assert bench.cost_to_targets(records, 3, frozenset({"AMM"})) == 5 + 7 + 20 + 30
    assert bench.cost_to_targets(records, 3, frozenset({"MMM"})) == math.inf
    regret = {"AAM": 0.25, "AMM": 0.0}.__getitem__
    assert bench.incumbent_curve(records, 3, regret) == [[5, math.inf], [12, math.inf], [32, 0.25], [62, 0.0]]
    assert bench.regret_at([[5, math.inf], [32, 0.25], [62, 0.0]], 40) == 0.25
    # the share of good patterns among the top-budget results finished within the cap (the failed one is none)
    assert bench.top_share(records, 3, frozenset({"AMM"}), cap=50) == 0.0
    assert bench.top_share(records, 3, frozenset({"AMM"}), cap=62) == 0.5
    assert math.isnan(bench.top_share(records, 3, frozenset({"AMM"}), cap=20))


def test_the_ratio_to_random_search_comes_with_a_bootstrap_interval_over_seeds(bench):
    assert bench.ratio_interval([50.0] * 8, [100.0] * 8) == (0.5, 0.5)  # no spread, no doubt
    random = [100.0, 400.0, 900.0, 1600.0, math.inf]
    lo, hi = bench.ratio_interval([10.0, 40.0, 90.0, 160.0, 250.0], random)
    assert lo < 0.1 < hi < math.inf  # the median ratio, 90 / 900, inside a wide interval from five seeds
    assert bench.ratio_interval([250.0, 90.0, 10.0, 160.0, 40.0], random[::-1]) == (lo, hi)  # seeds in any order
    assert bench.ratio_interval([math.inf] * 3, random)[1] == math.inf  # never reached: unbounded above


def test_iteration_cost_sizes_brackets_like_hpbandster(bench):
    from composer_automl.engine.ladder import load_ladder

    ladder = load_ladder("default")  # budgets 1.5, 3 at eta 2: brackets (2 @ 1.5 -> 1 @ 3) and (2 @ 3)
    cost = {1.5: 10.0, 3.0: 100.0}
    assert bench.iteration_cost("hyperband", ladder, cost) == pytest.approx(((2 * 10 + 100) + 2 * 100) / 2)


@pytest.mark.slow
def test_a_quick_run_prints_its_figures_and_resumes(bench, tmp_path, capsys):
    args = ["--only", "hybridbench6", "--methods", "random,bohb", "--ladders", "default", "--seeds", "1",
            "--quick", "--workers", "1", "--out", str(tmp_path)]
    bench.main(args)
    out = capsys.readouterr().out
    for method in ("random", "bohb"):
        assert re.search(rf"^cost_to_target\[hybridbench6/default/{method}\]: \d+ s \[IQR \d+-\d+\] "
                         r"\(reached in [01]/1\)$", out, re.M), out
        assert re.search(rf"^model_picks\[hybridbench6/default/{method}\]: \d+ \(of \d+ trials\)$", out, re.M)
    assert re.search(r"^cost_ratio_vs_random\[hybridbench6/default/bohb\]: (\d+\.\d\d|inf|nan) "
                     r"\[95 % bootstrap (\d+\.\d\d|inf|nan)-(\d+\.\d\d|inf|nan)\]$", out, re.M), out
    assert re.search(r"^top10_share\[hybridbench6/default/bohb\]: \d\.\d\d \[IQR \d\.\d\d-\d\.\d\d\]$", out, re.M)
    assert (tmp_path / "anytime_regret.png").stat().st_size > 0
    lines = [json.loads(line) for line in (tmp_path / "searches.jsonl").read_text().splitlines()]
    assert sorted(r["key"] for r in lines) == ["hybridbench6/default/bohb/0", "hybridbench6/default/random/0"]
    assert all(r["curve"][-1][0] <= r["cost_cap_s"] * 1.05 for r in lines)

    with pytest.raises(SystemExit) as exit_info:  # a folder that holds searches is not overwritten silently
        bench.main(args)
    assert exit_info.value.code == 2
    capsys.readouterr()
    bench.main([*args, "--resume"])
    assert "resuming: 2 of 2 searches done" in capsys.readouterr().out
    assert len((tmp_path / "searches.jsonl").read_text().splitlines()) == 2


SHIPPED = {"hybridbench6/search": range(30), "hybridbench16/search": range(30),
           "hybridbench16/search-seeds1000": range(1000, 1010)}
"""Folders under ``benchmarks/`` holding an optimizer comparison (``searches.jsonl`` and the ``figures.txt`` printed
from it), with the seeds each holds."""
FIGURE = re.compile(r"^(cost_to_target|final_regret|model_picks|top10_share|cost_ratio_vs_random)\[")


def shipped_searches(folder: str) -> list[dict]:
    return [json.loads(line) for line in (SCRIPT.parent / folder / "searches.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("folder", sorted(SHIPPED))
def test_shipped_comparison_holds_every_planned_search_and_its_figures_recompute(bench, folder, capsys):
    name = folder.split("/")[0]
    searches = shipped_searches(folder)
    planned = {f"{name}/{ladder}/{method}/{seed}" for ladder, method in bench.PLAN[name] for seed in SHIPPED[folder]}
    assert sorted(r["key"] for r in searches) == sorted(planned)
    bench.report(searches, None)
    printed = capsys.readouterr().out.splitlines()
    shipped = [line for line in (SCRIPT.parent / folder / "figures.txt").read_text().splitlines() if FIGURE.match(line)]
    assert printed == shipped and any(line.startswith("cost_ratio_vs_random[") for line in printed)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("key", ["hybridbench16/default/random/0", "hybridbench16/default/bohb/1",
                                 "hybridbench16/default/smac/2", "hybridbench6/default/bohb/2",
                                 "hybridbench6/mad/hyperband/3", "hybridbench6/default/smac/4"])
def test_a_shipped_search_is_reproduced_from_its_seed(bench, key):
    name, ladder, method, seed = key.split("/")
    shipped = next(r for r in shipped_searches(f"{name}/search") if r["key"] == key)
    again = bench.run_task(bench.Task(name, ladder, method, int(seed), bench.COST_CAP[name]))
    for field in ("n_trials", "model_picks", "cost_to_target", "curve"):
        assert again[field] == shipped[field], field
