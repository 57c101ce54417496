"""Real BOHB / Hyperband / random searches with local worker processes on the simulated rung."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from composer_automl.config import ConfigError, to_dataclass
from composer_automl.efficiency import Constraints
from composer_automl.engine.ladder import ladder_from_mapping, load_ladder
from composer_automl.patterns import Pattern
from composer_automl.search.run import constrained_space, planned_trials
from composer_automl.search.results import read_asks, read_trials
from composer_automl.search.run import SearchSettings, run_search
from composer_automl.spaces import load_space, space_from_mapping


def _ladder_with(**overrides):
    """The simulated ladder with extra simulated-rung fields on every rung."""
    base = load_ladder("simulated-ladder").mapping
    rungs = [{**r, "rung_config": {**r["rung_config"], **overrides}} for r in base["rungs"]]
    return ladder_from_mapping("simulated-test", {**base, "rungs": rungs})


@pytest.mark.timeout(60)
def test_bohb_with_two_workers_and_secret(tmp_path, capsys):
    """A 3-iteration BOHB with 2 workers (HMAC on) runs 9/6/5 trials on budgets 1/3/9 and writes its results."""
    run_dir = tmp_path / "run"
    ladder = load_ladder("simulated-ladder")
    settings = SearchSettings(n_workers=2, n_iterations=3, secret="test-secret", ping_interval_s=1)
    summary = run_search(settings, load_space("one-shot-6"), ladder, run_dir)

    records = read_trials(run_dir)
    assert Counter(r.budget for r in records) == {1.0: 9, 3.0: 6, 9.0: 5}
    assert len(records) == planned_trials("bohb", ladder, 3) == 20
    assert all(r.status == "ok" and len(r.pattern) == 6 for r in records)
    assert len({r.trial_id for r in records}) == 20
    assert {r.worker.rsplit(".", 1)[1] for r in records} <= {"0", "1"}  # HOST.PID.INDEX of a local worker
    asks = read_asks(run_dir)
    assert sum(a.sampled for a in asks) == 9 + 3 + 3 and len(asks) == 20  # sampled per bracket; every trial asked
    assert sorted(a.seq for a in asks) + sorted(r.seq for r in records) != [] and \
        sorted([a.seq for a in asks] + [r.seq for r in records]) == list(range(40))  # one event count
    saved = json.loads((run_dir / "summary.json").read_text())
    assert saved["best_pattern"] == min((r for r in records if r.budget == 9.0), key=lambda r: r.loss).pattern
    assert saved["trials_per_budget"] == {"1": 9, "3": 6, "9": 5}
    assert (run_dir / "incumbents.csv").read_text().startswith("elapsed_s,cumulative_budget")
    assert "test-secret" not in (run_dir / "search.json").read_text()
    out = capsys.readouterr().out
    assert "[trial 20/20] budget=" in out and "tensorboard --logdir" in out

    events = EventAccumulator(str(run_dir / "tb" / "search")).Reload()
    tags = events.Tags()["scalars"]
    assert {"incumbent/loss_vs_wall_time_s", "incumbent/loss_vs_cumulative_budget", "trials/budget_9"} <= set(tags)
    assert events.Scalars("trials/budget_1")[-1].value == 9
    assert events.Scalars("incumbent/loss_vs_cumulative_budget")[-1].value == pytest.approx(summary["best_loss"])
    assert len(list((run_dir / "tb" / "search").glob("*_b9"))) == 5  # HParams entries of budget-9 trials


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("optimizer, expected", [("hyperband", {1.0: 9, 3.0: 3, 9.0: 1}), ("random", {9.0: 3})])
def test_other_optimizers(tmp_path, optimizer, expected):
    """Hyperband and random search run through the same machinery with their own schedules."""
    ladder = load_ladder("simulated-ladder")
    settings = SearchSettings(optimizer=optimizer, n_workers=1, n_iterations=1)
    run_search(settings, load_space("one-shot-6"), ladder, tmp_path / "run")
    records = read_trials(tmp_path / "run")
    assert Counter(r.budget for r in records) == expected
    assert len(records) == planned_trials(optimizer, ladder, 1)


@pytest.mark.timeout(60)
def test_failures_are_recorded_and_the_search_completes(tmp_path):
    """A trial that raises and one returning NaN are recorded as failed (with the reason); the search completes."""
    ladder = _ladder_with(fail_when="^MM", nan_when="^AA")
    settings = SearchSettings(n_workers=2, n_iterations=3, seed=1)
    summary = run_search(settings, load_space("one-shot-6"), ladder, tmp_path / "run")
    records = read_trials(tmp_path / "run")
    assert len(records) == planned_trials("bohb", ladder, 3)
    raised = [r for r in records if r.pattern.startswith("MM")]
    nan = [r for r in records if r.pattern.startswith("AA")]
    assert raised and nan
    assert all(r.status == "failed" and "RuntimeError: simulated failure" in r.error for r in raised)
    assert all(r.status == "failed" and "non-finite loss" in r.error and r.loss is None for r in nan)
    assert all(r.status == "ok" for r in records if r.pattern[:2] in ("AM", "MA"))
    assert summary["n_failed"] == len(raised) + len(nan)
    assert summary["best_pattern"][:2] in ("AM", "MA")


@pytest.mark.timeout(60)
def test_stuck_trial_times_out_and_worker_is_replaced(tmp_path):
    """A trial exceeding trial_timeout_s is failed, its worker killed and replaced; the search completes."""
    base = load_ladder("simulated-ladder").mapping
    rungs = [dict(r) for r in base["rungs"]]
    rungs[-1] = {**rungs[-1], "rung_config": {**rungs[-1]["rung_config"], "hang_when": "."}}  # budget 9 hangs
    ladder = ladder_from_mapping("hang-test", {**base, "rungs": rungs})
    settings = SearchSettings(n_workers=2, n_iterations=1, trial_timeout_s=2, ping_interval_s=1, seed=0)
    run_search(settings, load_space("one-shot-6"), ladder, tmp_path / "run")
    records = read_trials(tmp_path / "run")
    assert Counter(r.budget for r in records) == {1.0: 9, 3.0: 3, 9.0: 1}
    hung = [r for r in records if r.budget == 9.0]
    assert hung[0].status == "failed" and "timed out" in hung[0].error
    assert all(r.status == "ok" for r in records if r.budget < 9.0)


def _as_foreground_job() -> None:
    """SIGINT at its default in the child, as in a terminal's foreground job (a test runner started in the
    background of a non-interactive shell passes SIGINT on ignored, and Ctrl-C would then never arrive)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cli(args, env=None):
    cmd = [sys.executable, "-m", "composer_automl", "search", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})}, start_new_session=True,
                            preexec_fn=_as_foreground_job)


def _start_search_and_wait(run_dir: Path, min_trials: int) -> subprocess.Popen:
    """A 20-trial simulated BOHB search (2 workers, 0.15 s per trial) still running after ``min_trials``."""
    slow = [f"+fidelity.rungs.{i}.overrides.sleep_s=0.15" for i in range(3)]
    proc = _cli([f"search.run_dir={run_dir}", "search.n_workers=2", "search.n_iterations=3",
                 "fidelity=simulated-ladder", *slow])
    deadline = time.monotonic() + 60
    while len(read_trials(run_dir)) < min_trials and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()[0]
    return proc


@pytest.mark.slow  # kill + resume in the default run: tests/engine/test_reliability.py
@pytest.mark.timeout(150)
def test_kill_then_resume_runs_no_finished_trial_again(tmp_path):
    """SIGKILL mid-search, then resume=RUN_DIR: finished trials are replayed, not re-run; the count is right."""
    run_dir = tmp_path / "run"
    proc = _start_search_and_wait(run_dir, min_trials=8)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = read_trials(run_dir)
    assert 8 <= len(before) < 20 and not (run_dir / "summary.json").exists()

    resumed = _cli([f"resume={run_dir}", "search.n_workers=2"])
    out, _ = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, out
    after = read_trials(run_dir)
    ids = [r.trial_id for r in after]
    assert len(ids) == len(set(ids)) == 20  # every planned trial exactly once
    assert after[: len(before)] == before
    assert out.count("(from the log)") == len(before)
    assert json.loads((run_dir / "summary.json").read_text())["n_trials"] == 20


def _children(pid: int) -> list[int]:
    """Pids of the live children of ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie left to an init that does not reap counts as gone)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds worker processes through /proc")
@pytest.mark.timeout(150)
def test_ctrl_c_stops_cleanly_and_leaves_a_resumable_run(tmp_path):
    """SIGINT to the search's process group (a terminal's Ctrl-C) exits 130 within seconds with a resume hint;
    its workers and nameserver are gone, trials.jsonl parses, no summary.json; resume runs every trial once."""
    run_dir = tmp_path / "run"
    proc = _start_search_and_wait(run_dir, min_trials=5)
    workers = _children(proc.pid)
    assert len(workers) == 2

    os.killpg(proc.pid, signal.SIGINT)
    sent = time.monotonic()
    out, _ = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 15, "Ctrl-C took too long"
    assert proc.returncode == 130, out
    hint = f"interrupted; finished trials are in {run_dir}; continue with: composer-automl search resume={run_dir}"
    assert hint in out
    assert "Traceback" not in out
    address = re.search(r"nameserver (\S+):(\d+);", out)
    assert address, out
    with pytest.raises(ProcessLookupError):  # nothing left in the search's process group
        os.killpg(proc.pid, 0)
    assert not [pid for pid in workers if _alive(pid)]  # workers have their own sessions: checked by pid
    with pytest.raises(OSError):  # the nameserver (a thread of the master) no longer listens
        socket.create_connection((address[1], int(address[2])), timeout=2).close()
    assert not (run_dir / "summary.json").exists()
    lines = (run_dir / "trials.jsonl").read_text().splitlines()
    assert all(json.loads(line) for line in lines)
    before = read_trials(run_dir)
    assert 5 <= len(before) < 20

    resumed = _cli([f"resume={run_dir}", "search.n_workers=2"])
    out, _ = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, out
    after = read_trials(run_dir)
    ids = [r.trial_id for r in after]
    assert len(ids) == len(set(ids)) == planned_trials("bohb", load_ladder("simulated-ladder"), 3) == 20
    assert after[: len(before)] == before
    assert json.loads((run_dir / "summary.json").read_text())["n_trials"] == 20


@pytest.mark.timeout(90)
def test_constrained_scalarized_search_evaluates_only_cheap_patterns_and_writes_its_front(tmp_path, capsys):
    """search.constraints keeps every evaluated pattern within the KV-cache bound (and says how many remain);
    the scalarized objective is recorded beside the rung loss; the run ends with its Pareto front."""
    run_dir = tmp_path / "run"
    settings = SearchSettings(n_workers=1, n_iterations=2, ping_interval_s=1, objective="scalarized",
                              constraints=Constraints(kv_cache_ratio_max=0.75))
    summary = run_search(settings, load_space("one-shot-6"), load_ladder("simulated-ladder"), run_dir)
    records = read_trials(run_dir)
    assert records and all(r.cost["kv_cache_ratio"] <= 0.75 and r.cost["target"] == "1B" for r in records)
    assert all(r.objective is not None and 0.0 <= r.objective <= 1.1 for r in records)
    assert "constraints {'kv_cache_ratio_max': 0.75} at 1B: 22 of 64 patterns remain" in capsys.readouterr().out
    front = json.loads((run_dir / "pareto.json").read_text())
    assert front["front"] == summary["pareto_front"] and summary["pareto_knee"] in front["front"]
    top = max(r.budget for r in records)
    assert {p["pattern"] for p in front["points"]} == {r.pattern for r in records if r.budget == top}
    assert (run_dir / "pareto.png").stat().st_size > 0 and "★" in (run_dir / "pareto.md").read_text()
    events = EventAccumulator(str(run_dir / "tb" / "pareto"), size_guidance={"tensors": 0}).Reload()
    assert "pareto/front/text_summary" in events.Tags()["tensors"]


def test_constraints_no_pattern_meets_fail_before_the_search_starts(tmp_path):
    settings = SearchSettings(n_workers=1, constraints=Constraints(kv_cache_ratio_max=0.01, flops_ratio_max=0.5))
    with pytest.raises(ConfigError, match="none of the space's 64 patterns meets them at 1B"):
        run_search(settings, load_space("one-shot-6"), load_ladder("simulated-ladder"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.timeout(120)
def test_a_space_with_one_valid_pattern_repeats_it_at_once_and_never_another(tmp_path):
    """Only MMMMMM has no KV cache: once it was sampled at a budget, the next configurations there repeat it
    (the valid set of a small space is listed, so no draw is spent looking for an unseen one)."""
    settings = SearchSettings(n_workers=1, n_iterations=2, constraints=Constraints(kv_cache_ratio_max=0.0001))
    start = time.monotonic()
    run_search(settings, load_space("one-shot-6"), load_ladder("simulated-ladder"), tmp_path / "run")
    records = read_trials(tmp_path / "run")
    assert len(records) > 3 and {r.pattern for r in records} == {"MMMMMM"}
    assert time.monotonic() - start < 60


def test_a_pattern_that_cannot_be_costed_at_the_target_is_never_proposed():
    # 79 of one-shot-16's 65,534 patterns (11 A) miss the 1B baseline's size at every stacked depth: a sample
    # may pass check_target_fit, so the space itself must refuse them rather than fail their trials
    space = constrained_space(load_space("one-shot-16"), SearchSettings())
    assert space.violation(Pattern.parse("AAAAAMAMAMAAAMAM")) == "cannot be costed at 1B (stack)"
    assert space.violation(Pattern.parse("AMAMAMAMAMAMAMAM")) is None


@pytest.mark.parametrize("node, message", [
    ({"objective": "pareto"}, "^search.objective='pareto' is not allowed; choose one of"),
    ({"target": "7B"}, "^search.target='7B' is not allowed"),
    ({"extrapolate": "tile"}, "^search.extrapolate='tile' is not allowed"),
    ({"constraints": {"kv_ratio": 0.5}}, r"^search.constraints.kv_ratio is an unknown key; allowed: \['flops_ratio_max'"),
    ({"constraints": {"kv_cache_ratio_max": -1}}, "^search.constraints.kv_cache_ratio_max=-1.0 must be a positive"),
    ({"seed": -1}, "^search.seed=-1 must be >= 0"),
    ({"n_workers": -1}, "^search.n_workers must be >= 0, got -1$"),
])
def test_bad_settings_name_the_key_as_typed(node, message):
    """Each bad search setting is one ConfigError naming ``search.<key>`` (pool keys included)."""
    with pytest.raises(ConfigError, match=message):
        to_dataclass(SearchSettings, node, "search")


@pytest.mark.timeout(60)
def test_exception_while_recording_fails_the_trial_and_releases_the_job(tmp_path, monkeypatch):
    """An exception while recording a result (injected into SearchProposer._trial_record for budget 3) fails
    that trial with the traceback and tells the optimizer: the search finishes every planned trial instead of
    hanging."""
    from composer_automl.search.optimizers import SearchProposer

    record = SearchProposer._trial_record

    def failing_at_budget_3(self, result):
        if result.job.budget == 3.0:
            raise KeyError("budget 3.0 is not on the ladder (injected)")
        return record(self, result)

    monkeypatch.setattr(SearchProposer, "_trial_record", failing_at_budget_3)
    ladder = load_ladder("simulated-ladder")
    summary = run_search(SearchSettings(n_workers=1, n_iterations=1), load_space("one-shot-6"), ladder,
                         tmp_path / "run")
    records = read_trials(tmp_path / "run")
    assert len(records) == planned_trials("bohb", ladder, 1) == 13
    at3 = [r for r in records if r.budget == 3.0]
    assert len(at3) == 3 and all(r.status == "failed" and "could not record the result" in r.error
                                 and "injected" in r.error and r.rung.startswith("simulated") for r in at3)
    assert all(r.status == "ok" for r in records if r.budget != 3.0)
    assert summary["n_failed"] == 3


def test_search_eta_is_not_a_setting():
    """The ladder's eta is the only one: ``search.eta`` is an unknown key (it once disagreed with the ladder
    and hung the search)."""
    proc = subprocess.run([sys.executable, "-m", "composer_automl", "search", "search.eta=2"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "unknown config key 'search.eta'" in proc.stderr and "trial_timeout_s" in proc.stderr


def test_searched_width_that_a_mad_rung_overrides_is_refused(tmp_path):
    """search_space.width={d_model: [...]} with the default ladder (pretrain-narrow-b4 sets d_model itself) is one
    ConfigError naming the fields and the rung, before anything is written; a searched n_heads is fine."""
    ladder = load_ladder("default")
    space = load_space("one-shot-6", width={"d_model": [64, 128], "n_heads": [2, 4]})
    with pytest.raises(ConfigError, match=r"searches \['d_model'\], but rung pretrain-narrow-b4 \(kind pretrain\) sets its own"):
        run_search(SearchSettings(n_workers=1), space, ladder, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    from composer_automl.search.run import check_width_reaches_rungs

    check_width_reaches_rungs(load_space("one-shot-6", width={"n_heads": [2, 4]}), ladder)
    with pytest.raises(ConfigError, match=r"rung mad-quick \(kind mad\) sets its own"):
        check_width_reaches_rungs(space, load_ladder("mad-quick"))


def test_a_sample_holding_an_uncostable_pattern_still_searches_and_a_space_none_fits_is_refused():
    """Seed 16's pre-check sample of one-shot-16 holds one of its 79 patterns that miss the 1B size (the space then
    never proposes it): the search may start. A space none of whose patterns can be costed is refused."""
    from composer_automl.search.run import check_target_fit

    check_target_fit(load_space("one-shot-16"), SearchSettings(seed=16))
    with pytest.raises(ConfigError, match=r"^search.target=1B: the search space's 200-layer patterns cannot be costed"):
        check_target_fit(space_from_mapping({"strategy": "one-shot", "n_layers": 200}), SearchSettings())
