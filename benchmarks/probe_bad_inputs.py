"""Probe the CLI with bad input and faults, as a new user and an unlucky operator would.

Every case of the catalogue (``benchmarks/probe_cases.py``: wrong values, malformed files, read-only and
file-shaped output folders, damaged checkpoints, ``kill -9`` mid-run, torn logs, two resumes at once, …)
runs ``python -m composer_automl …`` as a subprocess with a timeout, and its outcome is classified:

* ``one_line_error``: exit 2, exactly one ``error:`` line, no traceback (what a refused input must give);
* ``handled``: a case where the right behaviour is to go on (resume after a torn log, a note instead of
  silence) did so, and its check passed;
* ``traceback``: a Python traceback (or Hydra's "Set the environment variable HYDRA_FULL_ERROR");
* ``hang``: the command ran past its timeout;
* ``silent``: exit 0 where an error belongs, or a wrong result the case checks for;
* ``other``: anything else (another exit status, several ``error:`` lines, an error that leaves files behind).

Usage: ``nice python benchmarks/probe_bad_inputs.py [--all | --cases NAME,NAME|SUBSTRING] [--jobs N] [--list]
[--verbose]``. By default it runs issue 21's bad-input cases (its items 5-11 and its list of silent results,
``probe_cases.ISSUE_21``: 34 cases, a few minutes on 2 busy CPU cores); ``--all`` runs the whole catalogue
(~190 cases, ~20 min), ``--cases`` the named ones; ``--jobs`` cases run at once (default 2). Prints one
``case NAME [item]: CATEGORY: reason`` line per case as it finishes, then ``name: value`` lines (``cases``,
``one_line_errors``, ``handled``, ``tracebacks``, ``hangs``, ``silent``, ``other``, ``seconds``), then one
``failing:`` line per case that is not a one-line error or handled. Always exits 0 (a probe reports; it does
not judge). Cases run as a user without root's powers where they need a read-only folder to be read-only.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
DROP_ROOTS_POWERS = ["setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all"]
"""Run without root's permission override, so a read-only folder is read-only to the command."""
TRACEBACK_MARKS = ("Traceback (most recent call last)", "HYDRA_FULL_ERROR")
LABELS = {"one_line_error": "one_line_errors", "handled": "handled", "traceback": "tracebacks", "hang": "hangs",
          "silent": "silent", "other": "other"}
"""Outcome category → the name of its count in the figure."""


@dataclass
class Run:
    """What one command did."""

    returncode: int | None
    output: str
    """stdout and stderr together."""
    timed_out: bool = False


def env() -> dict[str, str]:
    """This checkout's code, one thread, nothing downloaded."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")


def command(argv: list[str], as_user: bool = False) -> list[str]:
    prefix = DROP_ROOTS_POWERS if as_user and os.geteuid() == 0 else []
    return [*prefix, sys.executable, "-m", "composer_automl", *argv]


def start(argv: list[str], cwd: Path, as_user: bool = False) -> subprocess.Popen:
    """``composer-automl ARGV`` in its own process group (so a timeout or a kill takes its workers too)."""
    return subprocess.Popen(command(argv, as_user), cwd=cwd, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float) -> Run:
    """Wait for ``proc``; past ``timeout`` kill its process group and call it a hang."""
    try:
        out, _ = proc.communicate(timeout=timeout)
        return Run(proc.returncode, out)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return Run(None, out, timed_out=True)


def run(argv: list[str], cwd: Path, as_user: bool = False, timeout: float = 180) -> Run:
    return finish(start(argv, cwd, as_user), timeout)


def classify(expect: str, result: Run, problem: str | None) -> tuple[str, str]:
    """(category, reason) of one outcome; ``expect`` is ``error`` or ``ok``; ``problem`` is what the case's own
    check found wrong (a wrong result, a file left behind), or None."""
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    last = (errors or result.output.strip().splitlines() or [""])[-1][:300]
    if result.timed_out:
        return "hang", "ran past its timeout"
    if any(mark in result.output for mark in TRACEBACK_MARKS):
        lines = [line for line in result.output.splitlines() if line.strip()]
        return "traceback", next((line for line in reversed(lines) if "Error" in line), last)[:300]
    if expect == "error":
        if result.returncode == 0:
            return "silent", "exit 0 where an error belongs: " + last
        if result.returncode == 2 and len(errors) == 1:
            return ("other", f"{problem} ({last})") if problem else ("one_line_error", last)
        return "other", f"exit {result.returncode}, {len(errors)} error: line(s): {last}"
    if result.returncode == 0:
        return ("silent", problem) if problem else ("handled", last)
    return "other", f"exit {result.returncode} where the command should go on: {last}"


def main(argv: list[str] | None = None) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from probe_cases import CASES, ISSUE_21, World

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all", action="store_true", help="the whole catalogue, not only issue 21's cases")
    parser.add_argument("--cases", default="", help="comma-separated case names, or a substring of names")
    parser.add_argument("--list", action="store_true", help="list the case names and exit")
    parser.add_argument("--verbose", action="store_true", help="the whole reason on each case line")
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args(argv)
    item_of = {name: item for item, names in ISSUE_21.items() for name in names}
    wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
    if wanted:
        cases = [c for c in CASES if c.name in wanted or (len(wanted) == 1 and wanted[0] in c.name)]
    elif args.all:
        cases = list(CASES)
    else:  # issue 21's cases, in the issue's order
        by_name = {c.name: c for c in CASES}
        cases = [by_name[name] for names in ISSUE_21.values() for name in names]
    if args.list:
        print("\n".join(c.name for c in cases))
        return
    root = Path(tempfile.mkdtemp(prefix="probe-"))
    world = World(root)
    start_time = time.perf_counter()

    def probe(case) -> tuple[str, str, str]:
        category, reason = case.probe(world)
        item = f" [{item_of[case.name]}]" if case.name in item_of else ""
        print(f"case {case.name}{item}: {category}: {reason if args.verbose else reason[:120]}", flush=True)
        return case.name, category, reason

    try:  # cases are independent (each has its own folder; fixtures are made once, under a lock)
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            outcomes = list(pool.map(probe, cases))
    finally:
        world.close(keep=args.keep)
    counts = Counter(category for _, category, _ in outcomes)
    print(f"cases: {len(outcomes)}")
    for category, label in LABELS.items():
        print(f"{label}: {counts[category]}")
    print(f"seconds: {time.perf_counter() - start_time:.0f}")
    for name, category, reason in outcomes:
        if category not in ("one_line_error", "handled"):
            print(f"failing: {name} ({category}): {reason}")

if __name__ == "__main__":
    main()
