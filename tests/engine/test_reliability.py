"""Nothing lost, nothing doubled, never a traceback: kills, torn logs, concurrent resumes, read-only folders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from composer_automl.engine.ladder import load_ladder
from composer_automl.search.results import read_trials
from composer_automl.search.run import planned_trials

SLOW = [f"+fidelity.rungs.{i}.overrides.sleep_s=0.15" for i in range(3)]
"""The simulated ladder at 0.15 s per trial: a 3-bracket search runs for a few seconds."""
DROP_ROOTS_POWERS = ["setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all"]
"""Run a command without root's permission override, so a read-only folder is read-only to it."""


def cli(command: str, args: list[str], cwd: Path | None = None, as_user: bool = False) -> subprocess.Popen:
    prefix = DROP_ROOTS_POWERS if as_user and os.geteuid() == 0 else []
    return subprocess.Popen([*prefix, sys.executable, "-m", "composer_automl", command, *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def start_and_kill(run_dir: Path, min_trials: int, optimizer: str = "bohb") -> list:
    """Start a 20-trial search, SIGKILL its process group once ``min_trials`` are logged; its finished trials."""
    proc = cli("search", [f"search.run_dir={run_dir}", "search.n_iterations=3", f"search.optimizer={optimizer}",
                          "fidelity=simulated-ladder", *SLOW])
    deadline = time.monotonic() + 90
    while len(read_trials(run_dir)) < min_trials and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[0]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return read_trials(run_dir)


def finish(proc: subprocess.Popen, timeout: float = 90) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    return out


@pytest.mark.timeout(240)
def test_a_torn_last_line_is_set_aside_and_the_resumed_search_ends_with_every_trial_once(tmp_path):
    """Kill -9, then cut the log's last bytes (a write torn mid-line): the resume says so in one line, keeps the
    torn bytes beside the log, appends nothing onto them, and ends with exactly the planned trials; aggregate
    reads the result."""
    run_dir = tmp_path / "run"
    before = start_and_kill(run_dir, min_trials=6)
    log = run_dir / "trials.jsonl"
    data = log.read_bytes()
    log.write_bytes(data[:-25])  # the last record loses its end and its newline
    out = finish(cli("search", [f"resume={run_dir}"]))
    assert "its last line was incomplete" in out and (run_dir / "trials.jsonl.torn").is_file()
    after = read_trials(run_dir)
    ids = [r.trial_id for r in after]
    assert len(ids) == len(set(ids)) == planned_trials("bohb", load_ladder("simulated-ladder"), 3) == 20
    assert after[: len(before) - 1] == before[:-1]  # the torn trial is the only one run again
    agg = cli("aggregate", [f"run_dir={run_dir}", "tensorboard=false"])
    assert "consensus" in finish(agg).lower()


@pytest.mark.timeout(240)
def test_two_resumes_at_once_one_runs_the_other_is_refused(tmp_path):
    """A run directory belongs to one process: of two resumes started together one finishes the plan, the other
    exits 2 with one error line naming the holder; no trial is run twice."""
    run_dir = tmp_path / "run"
    start_and_kill(run_dir, min_trials=4)
    first, second = cli("search", [f"resume={run_dir}"]), cli("search", [f"resume={run_dir}"])
    outs = [p.communicate(timeout=120)[0] for p in (first, second)]
    codes = sorted(p.returncode for p in (first, second))
    assert codes == [0, 2], outs
    refused = outs[[first.returncode, second.returncode].index(2)]
    errors = [line for line in refused.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "is in use by pid" in errors[0] and "Traceback" not in refused
    ids = [r.trial_id for r in read_trials(run_dir)]
    assert len(ids) == len(set(ids)) == 20


@pytest.mark.slow  # default-run time (CI < 10 min); resume in the default run: the torn-line test
@pytest.mark.timeout(300)
def test_a_resumed_search_draws_what_the_uninterrupted_one_draws(tmp_path):
    """Random sampling continues from the state it had: a killed and resumed Hyperband search evaluates exactly
    the (pattern, budget) trials of the same search run without interruption, none of them twice."""
    whole = tmp_path / "whole"
    finish(cli("search", [f"search.run_dir={whole}", "search.n_iterations=3", "search.optimizer=hyperband",
                          "fidelity=simulated-ladder", "search.n_workers=1"]))
    resumed = tmp_path / "resumed"
    start_and_kill(resumed, min_trials=7, optimizer="hyperband")
    finish(cli("search", [f"resume={resumed}"]))
    pairs = {d: Counter((r.pattern, r.budget) for r in read_trials(d)) for d in (whole, resumed)}
    assert max(pairs[resumed].values()) == 1 and pairs[resumed] == pairs[whole]


@pytest.mark.slow  # default-run time (CI < 10 min); a torn log in the default run: the torn-line test
def test_a_garbage_line_in_the_middle_is_one_error_naming_the_line(tmp_path):
    run_dir = tmp_path / "run"
    start_and_kill(run_dir, min_trials=4)
    lines = (run_dir / "trials.jsonl").read_text().splitlines()
    lines[1] = "{not json"
    (run_dir / "trials.jsonl").write_text("\n".join(lines) + "\n")
    for command, args in (("search", [f"resume={run_dir}"]), ("aggregate", [f"run_dir={run_dir}", "allow_unfinished=true"])):
        proc = cli(command, args)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 2, out
        assert [line for line in out.splitlines() if line.startswith("error:")] == [
            f"error: {run_dir / 'trials.jsonl'}:2: not a JSON line (Expecting property name enclosed in double "
            "quotes); the log is corrupt there (move that line out of the file to use the rest)"], out


@pytest.mark.parametrize("what", ["search.json", pytest.param("calibrate-report-only-empty", marks=pytest.mark.slow)])
def test_corrupt_run_files_are_one_error(tmp_path, what):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    if what == "search.json":
        (run_dir / "search.json").write_text("{truncated")
        proc, needle = cli("search", [f"resume={run_dir}"]), "search.json cannot be read"
    else:  # a calibration that stopped before its first row: no worker ever joined
        run_dir.rmdir()
        stopped = cli("calibrate", [f"calibrate.run_dir={run_dir}", "calibrate.n_workers=0",
                                    "calibrate.worker_wait_s=1", "fidelity=simulated-ladder", "calibrate.patterns=sample:3"])
        assert stopped.wait(timeout=60) == 1 and (run_dir / "calibrate.json").is_file()
        (run_dir / "report.md").write_text("keep me\n")
        proc = cli("calibrate", [f"resume={run_dir}", "calibrate.report_only=true"])
        needle = "the table has no rows yet; nothing to report"
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "Traceback" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], out
    if what != "search.json":
        assert (run_dir / "report.md").read_text() == "keep me\n"


@pytest.mark.parametrize("command, key", [("search", "search.run_dir"), ("calibrate", "calibrate.run_dir")])
def test_a_run_dir_that_is_a_file_or_cannot_be_written_is_one_error(tmp_path, command, key):
    """A file where the run folder belongs, or a folder this process may not write in: one error, exit 2."""
    a_file = tmp_path / "file"
    a_file.write_text("x")
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o555)
    for target, needle, as_user in ((a_file, "is a file, not a folder", False),
                                    (a_file / "sub", "is a file, not a folder", False),
                                    (read_only / "run", "permission denied", True)):
        proc = cli(command, [f"{key}={target}", "fidelity=simulated-ladder"], as_user=as_user)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 2 and "Traceback" not in out, out
        errors = [line for line in out.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and errors[0].startswith(f"error: {key}=") and needle in errors[0], out
    assert not (read_only / "run").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_soak_twenty_kills_at_random_moments_then_resume(tmp_path):
    """20 × (start or resume a HybridBench-6 replay search, SIGKILL it at a random moment), then resume to the end:
    exactly the planned trials, no trial id or pattern@budget twice, and aggregate works on the result."""
    import random

    rng = random.Random(0)
    run_dir = tmp_path / "run"
    paced = [f"+fidelity.rungs.{i}.rung_config.time_scale=0.004" for i in range(2)]  # 50-100 ms per trial
    first = [f"search.run_dir={run_dir}", "fidelity=hybridbench6", "search.n_iterations=12", *paced]
    kills = 0
    for cycle in range(20):
        args = first if not (run_dir / "search.json").exists() else [f"resume={run_dir}"]
        proc = cli("search", args)
        time.sleep(rng.uniform(0.5, 7.0))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        if (run_dir / "summary.json").exists():
            break
    assert kills >= 10
    if not (run_dir / "summary.json").exists():
        finish(cli("search", [f"resume={run_dir}"]), timeout=300)
    records = read_trials(run_dir)
    ids = [r.trial_id for r in records]
    pairs = Counter((r.pattern, r.budget) for r in records)
    assert len(ids) == len(set(ids)) == planned_trials("bohb", load_ladder("hybridbench6"), 12)
    assert max(pairs.values()) == 1
    assert "consensus" in finish(cli("aggregate", [f"run_dir={run_dir}", "tensorboard=false"])).lower()
