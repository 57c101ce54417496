"""benchmarks/surrogate_report.py: the surrogate's held-out figures, and the shipped ones recomputed."""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
from pathlib import Path

import pytest

from composer_automl.rungs.surrogate import cross_validate

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "benchmarks" / "hybridbench16" / "surrogate_cv.json"
PATTERNS = ["".join(p) for p in itertools.product("AM", repeat=7) if "A" in p and "M" in p][::2]


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("surrogate_report", ROOT / "benchmarks" / "surrogate_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prints_and_writes_each_rungs_held_out_figures(script, make_table, tmp_path, capsys):
    table = make_table(PATTERNS, {"cheap": 4.0, "ref": 40.0}, seeds=2)
    out = tmp_path / "cv.json"
    script.main(["--table", str(table), "--models", "ridge", "--folds", "4", "--out", str(out)])
    printed = capsys.readouterr().out
    written = json.loads(out.read_text())
    for rung in ("cheap", "ref"):
        expected = cross_validate(table / "table.jsonl", rung, "ridge", k=4)
        assert written["rungs"][rung]["models"]["ridge"] == expected
        assert written["rungs"][rung]["n_patterns"] == len(PATTERNS)
        line = re.search(rf"^surrogate_spearman\[table/{rung}/ridge\]: (\S+)$", printed, re.M)
        assert float(line.group(1)) == pytest.approx(expected["spearman"], abs=5e-4)
    with pytest.raises(SystemExit):
        script.main(["--table", str(table), "--models", "svm"])


def test_the_shipped_hybridbench16_figures_are_recomputed_from_its_table(script):
    shipped = json.loads(SHIPPED.read_text())
    table = SHIPPED.parent / "table.jsonl"
    for rung, entry in shipped["rungs"].items():
        recomputed = cross_validate(table, rung, "gradient_boosting", k=shipped["k"])
        figures = entry["models"]["gradient_boosting"]
        assert recomputed["n_patterns"] == figures["n_patterns"] == entry["n_patterns"]
        for name in ("spearman", "kendall", "top5_overlap"):
            assert recomputed[name] == pytest.approx(figures[name], abs=1e-9), (rung, name)


def test_a_rung_with_too_few_patterns_is_skipped_with_its_reason(script, make_table, capsys):
    table = make_table(PATTERNS[:5], {"few": 1.0}, seeds=1)
    result = script.report(str(table), models=("ridge",), k=4)
    assert result["rungs"] == {}
    assert result["skipped"] == {"few": f"rung 'few' of {table / 'table.jsonl'} has 5 patterns; 4-fold "
                                        "cross-validation needs at least 8"}
