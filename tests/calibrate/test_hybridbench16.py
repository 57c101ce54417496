"""The shipped HybridBench-16 table: consistent with its spec and report, reproducible row by row."""

from __future__ import annotations

import json
import platform
from collections import Counter

import pytest
import torch

from composer_automl.calibrate.report import build_report, json_safe
from composer_automl.patterns import Pattern
from composer_automl.rungs.registry import rung_from_mapping
from composer_automl.rungs.tabular import SHIPPED_TABLES
from composer_automl.spaces import space_from_mapping
from composer_automl.table import read_rows, rung_hash

BENCH = SHIPPED_TABLES / "hybridbench16"
REPRODUCE_TOLERANCE = 2e-3
"""Relative tolerance of a re-evaluated loss (as for HybridBench-6)."""


def spec() -> dict:
    return json.loads((BENCH / "calibrate.json").read_text())


def test_rows_follow_the_spec_and_include_composers_and_llamas_patterns():
    """Every row is an ok row of a specified pattern and rung, with the rung's config hash, one row per
    (pattern, rung, seed); the Composer and Llama 16-layer patterns are measured at the bottom rung."""
    s, rows = spec(), read_rows(BENCH)
    assert len(s["patterns"]) >= 514 and all(len(Pattern.parse(p)) == 16 for p in s["patterns"])
    for name, rung in s["rungs"].items():
        assert rung["hash"] == rung_hash(rung["config"])
        assert all(r.rung_hash == rung["hash"] for r in rows if r.rung == name)
    assert all(r.status == "ok" and r.pattern in s["patterns"] for r in rows)
    assert max(Counter((r.pattern, r.rung, r.seed) for r in rows).values()) == 1
    bottom = {r.pattern for r in rows if r.rung == "pretrain-narrow-b4" and r.seed == 0}
    assert {str(Pattern.parse("2A+5M+2A+3M+1A+3M")), "AM" * 8} <= bottom


def test_shipped_report_is_the_report_of_the_shipped_table():
    shipped = json.loads((BENCH / "report.json").read_text())
    recomputed = json_safe(build_report(spec(), read_rows(BENCH), n_boot=shipped.get("bootstrap", 2000)))
    assert recomputed["rows"] == shipped["rows"]
    for name, figures in shipped["rungs"].items():
        for key in ("spearman", "noise_ceiling", "median_cpu_s"):
            assert recomputed["rungs"][name][key] == pytest.approx(figures[key], nan_ok=True), (name, key)


def cheapest_rows():
    if not (BENCH / "calibrate.json").is_file():
        return []
    rows = read_rows(BENCH)
    return [min((r for r in rows if r.rung == name), key=lambda r: (r.cpu_time_s, r.pattern))
            for name in sorted({r.rung for r in rows})]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("row", cheapest_rows(), ids=lambda r: f"{r.rung}-{r.pattern}-s{r.seed}")
def test_a_row_reevaluated_with_the_shipped_code_gives_its_recorded_loss(row, tmp_path, monkeypatch):
    """A row's pattern, rung config and seed re-run with today's code (one torch thread) give its loss."""
    s = spec()
    recorded_python = s["history"][0]["machine"]["python"]
    if platform.python_version() != recorded_python:
        pytest.skip(f"the stdlib corpus is this Python's own sources: recorded on {recorded_python}")
    monkeypatch.setenv("COMPOSER_AUTOML_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)
    space = space_from_mapping(s["search_space"])
    config = space.to_config(row.pattern)
    rung = rung_from_mapping(row.rung, s["rungs"][row.rung]["config"])
    loss = rung(space.to_pattern(config), space.width(config), tmp_path / "eval", row.seed).loss
    assert loss == pytest.approx(row.loss, rel=REPRODUCE_TOLERANCE)
