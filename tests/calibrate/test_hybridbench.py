"""The shipped HybridBench-6 table: complete, consistent with its spec and report, reproducible row by row."""

from __future__ import annotations

import json
import platform
from collections import Counter

import pytest
import torch

from composer_automl.calibrate.report import build_report, json_safe
from composer_automl.table import read_rows, rung_hash
from composer_automl.rungs.tabular import SHIPPED_TABLES
from composer_automl.rungs.registry import rung_from_mapping
from composer_automl.spaces import space_from_mapping

BENCH = SHIPPED_TABLES / "hybridbench6"
REPRODUCE_TOLERANCE = 2e-3
"""Relative tolerance of a re-evaluated loss (identical bits on the recording machine; other CPUs may
round differently in fp32, and training amplifies that a little)."""

pytestmark = pytest.mark.skipif(not (BENCH / "calibrate.json").is_file(), reason="HybridBench-6 not shipped")


def spec():
    return json.loads((BENCH / "calibrate.json").read_text())


def test_every_rung_covers_all_64_patterns_with_its_seeds():
    """Each rung of the spec has an ok row for every pattern and seed, with the rung's config hash."""
    s, rows = spec(), read_rows(BENCH)
    patterns = {str(p) for p in space_from_mapping(s["search_space"]).patterns()}
    assert len(patterns) == 64 and set(s["patterns"]) == patterns
    for name, rung in s["rungs"].items():
        assert rung["hash"] == rung_hash(rung["config"])
        ok = [r for r in rows if r.rung == name and r.status == "ok"]
        assert all(r.rung_hash == rung["hash"] for r in ok)
        assert Counter(r.seed for r in ok) == {seed: 64 for seed in range(rung["seeds"])}, name
        assert {r.pattern for r in ok} == patterns


def test_shipped_report_is_the_report_of_the_shipped_table():
    """report.json is what build_report computes from table.jsonl and calibrate.json (no hand edits)."""
    shipped = json.loads((BENCH / "report.json").read_text())
    recomputed = json_safe(build_report(spec(), read_rows(BENCH), n_boot=shipped.get("bootstrap", 2000)))
    assert recomputed["rungs"].keys() == shipped["rungs"].keys()
    for name, figures in shipped["rungs"].items():
        for key in ("spearman", "kendall", "noise_ceiling", "median_cpu_s", "top10_overlap"):
            assert recomputed["rungs"][name][key] == pytest.approx(figures[key], nan_ok=True), (name, key)
    assert recomputed["pareto_front"] == shipped["pareto_front"]


def test_reference_pareto_front_is_non_dominated_in_loss_kv_cache_and_flops():
    """No pattern of the table beats a front member on the reference loss and both 1B cost ratios at once."""
    from composer_automl.calibrate.stats import seed_means
    from composer_automl.efficiency import target_cost
    from composer_automl.pareto import dominates

    shipped = json.loads((BENCH / "report.json").read_text())
    means = seed_means(read_rows(BENCH), spec()["reference"])
    point = {p: (loss, target_cost(p).kv_cache_ratio, target_cost(p).flops_ratio) for p, loss in means.items()}
    front = [q["pattern"] for q in shipped["pareto_front"]]
    assert front and sum(q["knee"] for q in shipped["pareto_front"]) == 1
    assert not any(dominates(point[other], point[p]) for p in front for other in point)
    assert all(any(dominates(point[f], point[p]) for f in front) for p in point if p not in front)


def rows_to_reproduce():
    """Per rung below the reference, its cheapest row at the rung's last seed (not the default seed 0
    where the rung has more than one)."""
    if not (BENCH / "calibrate.json").is_file():
        return []
    s, rows = spec(), read_rows(BENCH)
    picks = []
    for name, rung in s["rungs"].items():
        candidates = [r for r in rows if r.rung == name and r.status == "ok" and r.seed == rung["seeds"] - 1]
        if name != s["reference"] and candidates:
            picks.append(min(candidates, key=lambda r: (r.cpu_time_s, r.pattern)))
    return picks


def evaluate_as_recorded(rung, pattern: str, seed: int, trains_on_stdlib: bool, tmp_path, monkeypatch) -> float:
    """``rung``'s loss for ``pattern`` and ``seed`` on the table's search space, one torch thread and a
    fresh data cache, as the table was recorded (skips where the stdlib corpus differs from the recording)."""
    s = spec()
    recorded_python = s["history"][0]["machine"]["python"]
    if trains_on_stdlib and platform.python_version() != recorded_python:
        pytest.skip(f"the stdlib corpus is this Python's own sources: recorded on {recorded_python}, "
                    f"this is {platform.python_version()}")
    monkeypatch.setenv("COMPOSER_AUTOML_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)
    space = space_from_mapping(s["search_space"])
    config = space.to_config(pattern)
    return rung(space.to_pattern(config), space.width(config), tmp_path / "eval", seed).loss


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("row", rows_to_reproduce(), ids=lambda r: f"{r.rung}-{r.pattern}-s{r.seed}")
def test_a_row_reevaluated_with_the_shipped_code_gives_its_recorded_loss(row, tmp_path, monkeypatch):
    """Re-running a row's pattern, rung config and seed (one torch thread, as recorded) gives its loss."""
    s = spec()
    rung = rung_from_mapping(row.rung, s["rungs"][row.rung]["config"])
    trains_on_stdlib = s["rungs"][row.rung]["config"]["kind"] == "pretrain"
    loss = evaluate_as_recorded(rung, row.pattern, row.seed, trains_on_stdlib, tmp_path, monkeypatch)
    assert loss == pytest.approx(row.loss, rel=REPRODUCE_TOLERANCE)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_shipped_mad_pretraining_blend_is_the_weighted_mean_of_its_parts_recorded_rows(tmp_path, monkeypatch):
    """fidelity/mad-narrow-b4 (a blend of two calibrated rungs) evaluated at a pattern's seed 0 gives the
    weighted mean of its parts' seed-0 rows, which is what benchmarks/hybridbench6_mix.py scores."""
    from composer_automl.rungs.registry import load_rung

    blend = load_rung("mad-narrow-b4")
    parts = blend.config.parts
    recorded = {r.rung: r.loss for r in read_rows(BENCH) if r.pattern == "AMMAAM" and r.seed == 0}
    expected = sum(p.weight * recorded[p.rung] for p in parts) / sum(p.weight for p in parts)
    loss = evaluate_as_recorded(blend, "AMMAAM", 0, True, tmp_path, monkeypatch)
    assert loss == pytest.approx(expected, rel=REPRODUCE_TOLERANCE)
