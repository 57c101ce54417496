"""``composer-automl worker``: remote workers joining a running search, run as real processes on loopback."""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time

import pytest

from composer_automl.adapters.pyro import configure
from composer_automl.engine import transport
from composer_automl.search.results import read_trials


def _start(subcommand, args, env=None):
    environ = {k: v for k, v in os.environ.items() if k != transport.SECRET_ENV}
    cmd = [sys.executable, "-m", "composer_automl", subcommand, *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**environ, **(env or {})}, start_new_session=True)


def _lines(proc) -> queue.Queue:
    """A queue that receives ``proc``'s output lines as they come (None at the end)."""
    lines: queue.Queue = queue.Queue()

    def pump():
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_for(lines: queue.Queue, pattern: str, seen: list[str], timeout_s: float = 60) -> re.Match:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if match := re.search(pattern, line):
            return match
    raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(seen)}")


def _drain(lines: queue.Queue, seen: list[str]) -> str:
    while (line := lines.get(timeout=30)) is not None:
        seen.append(line)
    return "".join(seen)


@pytest.fixture
def keyed_nameserver():
    """A nameserver in this process that requires the secret ``ns-secret``; keyless again afterwards."""
    configure("ns-secret")
    ns = transport.NameServer()
    host, port = ns.start()
    yield f"{host}:{port}"
    ns.shutdown()
    configure(None)


@pytest.fixture
def nameserver():
    """A keyless nameserver in this process (no search registered in it)."""
    configure(None)
    ns = transport.NameServer()
    host, port = ns.start()
    yield f"{host}:{port}"
    ns.shutdown()


@pytest.mark.timeout(150)
def test_remote_workers_run_a_search_without_local_workers(tmp_path):
    """search.n_workers=0 prints the join command and waits; two ``composer-automl worker`` processes
    started from that line run every trial (each record names its worker), then exit 0 with the search."""
    run_dir = tmp_path / "run"
    search = _start("search", [f"search.run_dir={run_dir}", "search.n_workers=0", "search.min_workers=2",
                               "search.n_iterations=1", "fidelity=simulated-ladder",
                               *[f"+fidelity.rungs.{i}.overrides.sleep_s=0.1" for i in range(3)]])
    out = _lines(search)
    seen: list[str] = []
    join = _wait_for(out, r"composer-automl worker (nameserver=127\.0\.0\.1:\d+) (run_id=\S+)", seen)
    _wait_for(out, r"no local workers \(search\.n_workers=0\): waiting up to 120 s for 2 remote worker", seen)
    workers = [_start("worker", [join[1], join[2], "threads=1"]) for _ in range(2)]

    text = _drain(out, seen)
    assert search.wait(timeout=60) == 0, text
    worker_out = [w.communicate(timeout=30)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], worker_out
    assert all(f"run {join[2][len('run_id='):]} finished; worker exits" in o for o in worker_out)
    records = read_trials(run_dir)
    assert len(records) == 13 and all(r.status == "ok" for r in records)
    assert {r.worker for r in records} == {f"{socket.gethostname()}.{w.pid}" for w in workers}
    assert (run_dir / "summary.json").is_file() and not list((run_dir / "logs").iterdir())  # no local worker


@pytest.mark.timeout(60)
def test_search_without_any_worker_stops_with_one_error_line(tmp_path):
    """With n_workers=0 and nobody joining within worker_wait_s the search exits 1: one error line, resume hint."""
    run_dir = tmp_path / "run"
    proc = _start("search", [f"search.run_dir={run_dir}", "search.n_workers=0", "search.worker_wait_s=1",
                             "fidelity=simulated-ladder"])
    out, _ = proc.communicate(timeout=40)
    assert proc.returncode == 1, out
    assert [line for line in out.splitlines() if line.startswith("error:")] == [
        "error: fewer than 1 worker(s) joined within 1 s"]
    assert f"resume={run_dir}" in out and "Traceback" not in out
    assert not (run_dir / "summary.json").exists()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args, message", [
    (["run_id=abc"], "error: nameserver is required (composer-automl worker nameserver=HOST:PORT run_id=ID)"),
    (["nameserver=127.0.0.1:9090"], "error: run_id is required (composer-automl worker nameserver=HOST:PORT run_id=ID)"),
    (["nameserver=localhost", "run_id=abc"], "nameserver='localhost' must be HOST:PORT"),
    (["nameserver=127.0.0.1:9090", "run_id=abc", "host=0.0.0.0"], "host='0.0.0.0' is reachable from the network"),
    (["nameserver=127.0.0.1:99999", "run_id=abc"], "error: nameserver='127.0.0.1:99999' must be HOST:PORT with a port in 1-65535"),
    (["nameserver=127.0.0.1:9090", "run_id=abc", "gpus=abc"], "error: gpus='abc' must be GPU ids separated by commas"),
    (["nameserver=127.0.0.1:9090", "run_id=abc", "wait_s=-1"], "error: wait_s must be >= 0, got -1.0"),
])
def test_worker_bad_input_exits_2_with_one_error_line(args, message):
    """A missing or malformed argument, or a network bind without a secret: exit 2, one ``error:`` line."""
    proc = _start("worker", args)
    out, _ = proc.communicate(timeout=40)
    assert proc.returncode == 2, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], out
    assert "Traceback" not in out


@pytest.mark.timeout(60)
def test_worker_gives_up_on_a_run_id_that_never_appears(nameserver):
    """A run id that no search publishes: after wait_s the worker exits 2 naming the run id and nameserver."""
    proc = _start("worker", [f"nameserver={nameserver}", "run_id=nosuchrun", "wait_s=1.5"])
    out, _ = proc.communicate(timeout=40)
    assert proc.returncode == 2, out
    assert f"error: no run 'nosuchrun' at nameserver {nameserver} within 1.5 s" in out
    assert "Traceback" not in out


@pytest.mark.timeout(60)
def test_worker_without_the_secret_is_refused(keyed_nameserver):
    """Against a nameserver that requires a secret, a worker without it (or with another) is refused at once."""
    for extra in ([], ["secret=wrong"]):
        started = time.monotonic()
        proc = _start("worker", [f"nameserver={keyed_nameserver}", "run_id=abc", "wait_s=20", *extra])
        out, _ = proc.communicate(timeout=40)
        assert proc.returncode == 2, out
        assert f"error: nameserver {keyed_nameserver} refused this worker: the shared secret is missing or wrong" in out
        assert "ns-secret" not in out and "Traceback" not in out
        assert time.monotonic() - started < 20  # refused, not timed out


@pytest.mark.slow  # trial timeouts in the default run: tests/search/test_search_run.py
@pytest.mark.timeout(150)
def test_timed_out_remote_worker_gets_no_new_job_until_it_answers(tmp_path):
    """Pattern MMAMAA hangs on one of two remote workers (trial_timeout_s=2): that trial is failed at once and
    its still-busy worker is out of the pool, so every later trial runs on the other worker and succeeds
    (before the fix the hung worker was handed new jobs that queued behind the hang and timed out too).
    Hyperband's random sampling with seed 0 draws MMAMAA second and never again."""
    run_dir = tmp_path / "run"
    search = _start("search", [f"search.run_dir={run_dir}", "search.n_workers=0", "search.min_workers=2",
                               "search.optimizer=hyperband", "search.n_iterations=2", "search.trial_timeout_s=2",
                               "search.ping_interval_s=1", "fidelity=simulated-ladder",
                               "+fidelity.rungs.0.overrides.hang_when=MMAMAA",
                               *[f"+fidelity.rungs.{i}.overrides.sleep_s=0.2" for i in range(3)]])
    out = _lines(search)
    seen: list[str] = []
    join = _wait_for(out, r"composer-automl worker (nameserver=127\.0\.0\.1:\d+) (run_id=\S+)", seen)
    workers = [_start("worker", [join[1], join[2], "threads=1"]) for _ in range(2)]
    try:
        code = search.wait(timeout=120)  # worker start-up on a loaded machine can take longer than _drain waits
        assert code == 0, _drain(out, seen)
    finally:
        for w in workers:
            if w.poll() is None:
                os.killpg(w.pid, 9)
            w.wait()
    records = read_trials(run_dir)
    assert len(records) == 17  # 9+3+1 and 3+1: every planned trial finished
    failed = [r for r in records if r.status == "failed"]
    assert [(r.pattern, r.budget) for r in failed] == [("MMAMAA", 1.0)], [r.error for r in failed]
    assert "timed out" in failed[0].error and "out of the pool" in failed[0].error
    later = [r for r in records if r.elapsed_s > failed[0].elapsed_s]
    assert later and failed[0].worker not in {r.worker for r in later}  # the hung worker got no new job
