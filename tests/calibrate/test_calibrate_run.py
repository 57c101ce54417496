"""``calibrate`` end to end on the simulated rung: table rows, report, resume, failures, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from composer_automl.calibrate.run import CalibrateSettings, make_plan, run_calibration
from composer_automl.table import read_rows, rung_hash
from composer_automl.config import ConfigError, to_dataclass
from composer_automl.rungs.registry import read_rung_file
from composer_automl.engine.ladder import ladder_from_mapping, load_ladder
from composer_automl.spaces import load_space

PATTERNS = ["AMMAMM", "AAMMMM", "MMMMMM", "AMAMAM", "MAMAMA"]


def simulated_ladder(**rung_overrides):
    base = load_ladder("simulated-ladder").mapping
    rungs = [{**r, "rung_config": {**r["rung_config"], **rung_overrides}} for r in base["rungs"]]
    return ladder_from_mapping("simulated-ladder", {**base, "rungs": rungs})


def calibrate(tmp_path, ladder, resume=False, **settings):
    settings = CalibrateSettings(**{"patterns": PATTERNS, "seeds": 2, "reference_seeds": 1, "n_workers": 2,
                                    "ping_interval_s": 1, "bootstrap": 100, **settings})
    plan = make_plan(load_space("one-shot-6"), ladder, settings)
    return run_calibration(settings, plan, tmp_path / "cal", resume=resume)


@pytest.mark.timeout(120)
def test_table_rows_report_and_resume_without_rerunning(tmp_path, capsys):
    """One row per pattern × rung × seed with its rung hash and code version; resume adds only missing rows."""
    ladder = simulated_ladder()
    report = calibrate(tmp_path, ladder)
    rows = read_rows(tmp_path / "cal")
    names = [r.name for r in ladder.rungs]
    assert Counter((r.rung, r.seed) for r in rows) == {
        (names[0], 0): 5, (names[0], 1): 5, (names[1], 0): 5, (names[1], 1): 5, (names[2], 0): 5}
    assert all(r.status == "ok" and r.code_version and r.worker for r in rows)
    hashes = {r["rung"]: rung_hash(r["rung_config"]) for r in ladder.mapping["rungs"]}
    assert all(r.rung_hash == hashes[r.rung] for r in rows)
    assert report["reference"] == names[2] and set(report["rungs"]) == set(names)
    assert report["rungs"][names[2]]["spearman"] == pytest.approx(1.0)
    assert [p["low"] for p in report["ladders"]["simulated-ladder"]] == names[:2]
    for name in ("report.json", "report.md", "report.png", "calibrate.json"):
        assert (tmp_path / "cal" / name).is_file()
    assert "| rung | seeds |" in (tmp_path / "cal" / "report.md").read_text()
    events = EventAccumulator(str(tmp_path / "cal" / "tb")).Reload()
    assert f"spearman/{names[0]}" in events.Tags()["scalars"]
    assert "[calibrate 25/25]" in capsys.readouterr().out

    report = calibrate(tmp_path, ladder, resume=True, seeds=3, reference_seeds=2)
    out = capsys.readouterr().out
    assert "40 evaluations; 25 already in the table, 15 to run" in out
    rows = read_rows(tmp_path / "cal")
    assert len(rows) == 40 and len({r.key for r in rows}) == 40, "finished rows are never run again"
    assert report["rungs"][names[2]]["seeds"] == 2
    assert report["rungs"][names[2]]["noise_ceiling"] == pytest.approx(1.0)  # the simulated loss ignores the seed


@pytest.mark.timeout(120)
def test_a_failing_pattern_is_recorded_and_the_run_goes_on(tmp_path):
    """An evaluation that raises becomes a failed row with its error; every other row is computed."""
    report = calibrate(tmp_path, simulated_ladder(fail_when="^MMMMMM$"))
    rows = read_rows(tmp_path / "cal")
    failed = [r for r in rows if r.status == "failed"]
    assert {r.pattern for r in failed} == {"MMMMMM"} and len(failed) == 5
    assert all("simulated failure for pattern MMMMMM" in r.error for r in failed)
    assert sum(r.status == "ok" for r in rows) == 20
    assert len(report["failures"]) == 5


def test_changed_rung_or_reference_is_refused_on_resume(tmp_path):
    """A rung that changed under its name, or another reference, is one clear error before any work."""
    calibrate(tmp_path, simulated_ladder(), patterns=["AMMAMM", "MMMMMM"])
    with pytest.raises(ConfigError, match="changed since this run directory evaluated it"):
        calibrate(tmp_path, simulated_ladder(error_scale=0.9), resume=True, patterns=["AMMAMM", "MMMMMM"])
    with pytest.raises(ConfigError, match="reference rung"):
        calibrate(tmp_path, simulated_ladder(), resume=True, patterns=["AMMAMM"], reference="simulated")


@pytest.mark.parametrize("patterns, match", [
    (["AXMMAM"], "calibrate.patterns"),
    (["AMMA"], "has 4 layers; this space has 6"),
    (["AMMAMM", "1A+2M+1A+2M"], "listed twice"),
    ("sample:0", "sample:N"),
    ("sample:65", "only 64 valid patterns"),
    ("some", "not allowed"),
])
def test_bad_patterns_are_config_errors(patterns, match):
    """Unknown or wrongly sized patterns and impossible samples fail while planning."""
    with pytest.raises(ConfigError, match=match):
        settings = CalibrateSettings(patterns=patterns)
        make_plan(load_space("one-shot-6"), simulated_ladder(), settings)


def test_reference_may_not_be_a_lower_rung():
    """The reference is the ladder's top rung or a rung outside it."""
    ladder = load_ladder("default")
    with pytest.raises(ConfigError, match="lower rung"):
        make_plan(load_space("one-shot-6"), ladder, CalibrateSettings(reference="pretrain-narrow-b4"),
                  read_rung_file("pretrain-narrow-b4"))


def run_cli(tmp_path: Path, *overrides: str, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "composer_automl", "calibrate", *overrides]
    env = {**os.environ, "COMPOSER_AUTOML_CACHE": str(tmp_path / "cache")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp_path, env=env)


@pytest.mark.timeout(120)
def test_cli_end_to_end_and_report_only(tmp_path):
    """The console command calibrates a sample of patterns; report_only re-reports without evaluating."""
    run_dir = tmp_path / "run"
    proc = run_cli(tmp_path, "fidelity=simulated-ladder", "calibrate.patterns=sample:6", "calibrate.seeds=2",
                   "calibrate.reference_seeds=1", f"calibrate.run_dir={run_dir}", "calibrate.ping_interval_s=1",
                   "calibrate.bootstrap=100")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(read_rows(run_dir)) == 6 * (2 + 2 + 1) and "# Calibration report" in proc.stdout
    spec = json.loads((run_dir / "calibrate.json").read_text())
    assert spec["last"]["settings"]["patterns"] == "sample:6" and "cpu" in spec["history"][0]["machine"]
    proc = run_cli(tmp_path, f"resume={run_dir}", "calibrate.report_only=true")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "[calibrate" not in proc.stdout and "# Calibration report" in proc.stdout


@pytest.mark.parametrize("overrides, needle", [
    (["calibrate.patterns=[AXM]"], "calibrate.patterns"),
    (["calibrate.seeds=0"], "calibrate.seeds"),
    (["calibrate.reference=no-such-rung"], "unknown rung 'no-such-rung'"),
    (["calibrate.patterns=[AMMA]"], "has 4 layers"),
    (["calibrate.patterns_per_rung={simulated-x:2}"], "patterns_per_rung names rung(s) ['simulated-x']"),
])
def test_cli_bad_input_is_one_error_line_and_writes_nothing(tmp_path, overrides, needle):
    """Bad input: exit 2, one 'error:' line naming the field, and no run directory."""
    proc = run_cli(tmp_path, "fidelity=simulated-ladder", f"calibrate.run_dir={tmp_path / 'run'}", *overrides)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]
    assert not (tmp_path / "run").exists()


def test_nested_subsets_cap_rungs_and_extra_seeds_to_prefixes_of_one_order():
    """include leads the order; a capped rung and the extra seeds take prefixes of that one order, so every
    pattern of the top rung or with a second seed also has the bottom rung's first seed (HybridBench-16's plan)."""
    ladder = simulated_ladder()
    names = [r.name for r in ladder.rungs]
    settings = CalibrateSettings(patterns="sample:40", include=["AMAMAM", "2A+4M"], seeds=2, reference_seeds=1,
                                 patterns_per_rung={names[1]: 10, names[2]: 5}, extra_seed_patterns=4)
    plan = make_plan(load_space("one-shot-6"), ladder, settings)
    order = [plan.patterns[i] for i in plan.order()]
    assert order[:2] == ["AMAMAM", "AAMMMM"] and len(set(order)) == len(order) >= 40
    by = Counter((plan.ladder.rungs[r].name, s) for r, _, s in plan.jobs())
    assert by == {(names[0], 0): len(order), (names[1], 0): 10, (names[2], 0): 5, (names[0], 1): 4, (names[1], 1): 4}
    evaluated = {(plan.ladder.rungs[r].name, s): {plan.patterns[p] for r2, p, s2 in plan.jobs() if (r2, s2) == (r, s)}
                 for r, _, s in plan.jobs()}
    assert evaluated[(names[2], 0)] <= evaluated[(names[1], 0)] <= evaluated[(names[0], 0)]
    assert evaluated[(names[0], 1)] == set(order[:4]) and evaluated[(names[1], 1)] == set(order[:4])
    assert plan.order() == make_plan(load_space("one-shot-6"), ladder, settings).order(), "the order is fixed"


@pytest.mark.parametrize("settings, match", [
    ({"patterns_per_rung": {"no-such-rung": 3}}, r"^calibrate.patterns_per_rung names rung\(s\) \['no-such-rung'\]"),
    ({"patterns_per_rung": {"simulated": 0}}, "^calibrate.patterns_per_rung.simulated must be an integer >= 1, got 0$"),
    ({"extra_seed_patterns": 0}, "^calibrate.extra_seed_patterns must be >= 1 or null, got 0$"),
    ({"include": ["AMX"]}, "^calibrate.include: unknown layer kind"),
])
def test_bad_subset_settings_are_config_errors(settings, match):
    with pytest.raises(ConfigError, match=match):
        settings = to_dataclass(CalibrateSettings, {"patterns": "sample:5", **settings}, "calibrate")
        make_plan(load_space("one-shot-6"), simulated_ladder(), settings)
