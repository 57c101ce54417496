"""benchmarks/probe_bad_inputs.py: outcomes are classified as the issue defines them, and a few cases run through
the real CLI print the figure (the full probe is the closing note's run, minutes long)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from probe_bad_inputs import Run, classify  # noqa: E402
from probe_cases import CASES, ISSUE_21  # noqa: E402


@pytest.mark.parametrize("expect, result, problem, category", [
    ("error", Run(2, "error: x=1 must be > 1\n"), None, "one_line_error"),
    ("error", Run(1, "Traceback (most recent call last):\n  ...\nKeyError: 'x'\n"), None, "traceback"),
    ("error", Run(1, "KeyError: 'x'\n\nSet the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.\n"),
     None, "traceback"),
    ("error", Run(None, "", timed_out=True), None, "hang"),
    ("error", Run(0, "done\n"), None, "silent"),
    ("error", Run(2, "error: a\nerror: b\n"), None, "other"),
    ("error", Run(2, "error: refused\n"), "left out/.hydra behind", "other"),
    ("ok", Run(0, "resumed\n"), None, "handled"),
    ("ok", Run(0, "resumed\n"), "a trial recorded twice", "silent"),
    ("ok", Run(2, "error: refused\n"), None, "other"),
])
def test_outcomes_are_classified(expect, result, problem, category):
    assert classify(expect, result, problem)[0] == category


def test_case_names_are_unique_and_cover_every_command():
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)) and len(names) > 150
    from composer_automl.cli import COMMANDS

    assert {n.split("-")[0] for n in names} >= set(COMMANDS)


def test_the_default_run_is_issue_21s_bad_input_cases_in_its_order():
    """Without --all or --cases the probe runs the cases of issue 21's items 5-11 and its silent list, nothing else."""
    done = subprocess.run([sys.executable, str(BENCHMARKS / "probe_bad_inputs.py"), "--list"],
                          capture_output=True, text=True, timeout=30)
    expected = [name for item in ("5", "6", "7", "8", "9", "10", "11", "silent") for name in ISSUE_21[item]]
    assert done.stdout.split() == expected and len(expected) == len(set(expected)) == 34
    assert set(expected) <= {c.name for c in CASES}


def test_a_few_cases_through_the_real_cli_print_the_figure():
    """Two at a time through the real CLI: one ``case`` line each, then the figure, no ``failing`` line."""
    cases = "cli-unknown-subcommand,data-no-action,extrapolate-bad-pattern"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "probe_bad_inputs.py"), "--cases", cases],
                          capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = dict(re.findall(r"^(\w+): (.+)$", done.stdout, re.M))
    assert {k: figures[k] for k in ("cases", "one_line_errors", "tracebacks", "hangs", "silent", "other")} == \
        {"cases": "3", "one_line_errors": "3", "tracebacks": "0", "hangs": "0", "silent": "0", "other": "0"}
    assert "failing" not in figures
    assert sorted(re.findall(r"^case ([\w.-]+)(?: \[\w+\])?: one_line_error: error: ", done.stdout, re.M)) == sorted(cases.split(","))
