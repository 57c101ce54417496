"""``composer-automl search`` / ``mad`` through the real CLI with Hydra's habits: ``--config-dir``, ``-m``,
and ``*_from`` sources given on the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cli_runs import run_main
from composer_automl.search.results import read_trials


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "composer_automl", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def make_user_conf(root: Path) -> Path:
    """A user's config folder: its own rung, a ladder naming that rung and a shipped one, its own space."""
    conf = root / "conf"
    (conf / "fidelity").mkdir(parents=True)
    (conf / "search_space").mkdir()
    (conf / "fidelity" / "my-rung.yaml").write_text(yaml.safe_dump(
        {"kind": "simulated", "fidelity": 0.3, "target_attention_fraction": 0.5}))
    (conf / "fidelity" / "my-ladder.yaml").write_text(yaml.safe_dump({
        "kind": "ladder", "eta": 3,
        "rungs": [{"budget": 1, "rung": "my-rung"}, {"budget": 3, "rung": "simulated"}]}))
    (conf / "search_space" / "my-space.yaml").write_text(yaml.safe_dump(
        {"strategy": "one-shot", "n_layers": 4, "primitives": ["A", "M"], "first_layer": "A"}))
    return conf


@pytest.mark.timeout(300)
def test_user_config_dir_with_its_own_ladder_space_and_rung(tmp_path):
    """``--config-dir DIR fidelity=my-ladder search_space=my-space`` composes in the pre-check and runs: the
    ladder's ``my-rung`` resolves from DIR (its target fraction 0.5), ``simulated`` from the shipped rungs."""
    conf = make_user_conf(tmp_path)
    run_dir = tmp_path / "run"
    proc = run_cli("search", "--config-dir", str(conf), "fidelity=my-ladder", "search_space=my-space",
                   "search.n_workers=1", "search.n_iterations=1", f"search.run_dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = read_trials(run_dir)
    assert {r.rung for r in records} == {"my-rung", "simulated"}
    assert all(len(r.pattern) == 4 and r.pattern[0] == "A" for r in records)
    saved = json.loads((run_dir / "search.json").read_text())
    assert saved["fidelity_name"] == "my-ladder"
    assert saved["ladder"]["rungs"][0]["rung_config"]["target_attention_fraction"] == 0.5


def test_user_config_dir_errors_stay_one_line(capsys, tmp_path, monkeypatch):
    """With --config-dir, an unknown option lists the user's and the shipped options; an unknown key in a
    user's rung names the field; a missing folder is one line too (refused before any work: the console script
    in this process)."""
    conf = make_user_conf(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(capsys, "search", "--config-dir", str(conf), "fidelity=my-ladde", "search.n_workers=1")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "my-ladder" in err and "simulated-ladder" in err
    (conf / "fidelity" / "my-rung.yaml").write_text("kind: simulated\nfidelty: 0.3\n")
    code, _, err = run_main(capsys, "search", "--config-dir", str(conf), "fidelity=my-ladder",
                            f"search.run_dir={tmp_path / 'r'}")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "fidelty" in err and "fidelity" in err and not (tmp_path / "r").exists()
    code, _, err = run_main(capsys, "search", "--config-dir", str(tmp_path / "nope"), "fidelity=my-ladder")
    assert code == 2 and "--config-dir" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow  # multirun in the default run: test_mad_multirun_checks_every_job_before_launching
@pytest.mark.timeout(300)
def test_multirun_two_searches_each_in_its_own_run_dir(tmp_path):
    """``-m search.seed=0,1`` runs two searches, each in its own folder of the sweep directory."""
    sweep = tmp_path / "sweep"
    proc = run_cli("search", "-m", "search.seed=0,1", "fidelity=simulated-ladder", "search.n_workers=1",
                   "search.n_iterations=1", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in runs] == ["0", "1"]
    seeds = [json.loads((p / "search.json").read_text())["settings"]["seed"] for p in runs]
    assert seeds == [0, 1] and all((p / "summary.json").is_file() for p in runs)


@pytest.mark.parametrize("argv, expected", [
    (["search", "-m", "search.seed=0,1", "search.sed=2"], "unknown config key 'search.sed'"),
    (["search", "-m", "fidelity=simulated-ladder,nope"], "nope"),
    (["mad", "-m", "pattern=AMMAMM,AAMMMM", "widht.d_model=64"], "unknown config key 'widht.d_model'"),
])
def test_multirun_bad_input_is_one_error_line_before_any_job(tmp_path, argv, expected):
    """A bad key or option anywhere in a sweep stops it with one error line before the first job runs."""
    proc = run_cli(*argv, f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and expected in proc.stderr, proc.stderr
    assert not (tmp_path / "sweep").exists() and "Launching" not in proc.stdout


def test_mad_multirun_checks_every_job_before_launching(tmp_path):
    """``mad -m pattern=AMMAMM,AAMMMM`` passes the pre-check and Hydra launches both jobs; a sweep with one bad job
    (threads=-1) is refused before any job starts, naming the job, with one ``error:`` line and exit 2."""
    tiny = ["fidelity.tasks=[memorization]", "fidelity.max_steps=2", "fidelity.num_test_examples=8",
            "fidelity.evals_per_run=1", f"+fidelity.cache_dir={tmp_path / 'mad-cache'}"]
    proc = run_cli("mad", "-m", "pattern=AMMAMM,AAMMMM", *tiny, f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Launching 2 jobs" in proc.stdout and proc.stdout.count("MAD score") == 2
    proc = run_cli("mad", "-m", "pattern=AMMAMM,AAMMMM", "threads=-1", f"hydra.sweep.dir={tmp_path / 'bad'}",
                   cwd=tmp_path)
    assert proc.returncode == 2 and "Launching" not in proc.stdout
    assert proc.stderr.strip().splitlines() == ["error: sweep job 0 (pattern=AMMAMM threads=-1): threads must be >= 0, "
                                                "got -1"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished 6-layer simulated search (its best pattern feeds the incremental spaces)."""
    run_dir = tmp_path_factory.mktemp("first") / "run"
    proc = run_cli("search", "fidelity=simulated-ladder", "search.n_workers=1", "search.n_iterations=1",
                   f"search.run_dir={run_dir}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return run_dir


@pytest.mark.slow  # default-run time (CI < 10 min); the README's *_from lines compose in tests/test_readme.py
@pytest.mark.timeout(400)
@pytest.mark.parametrize("space, key", [("end-incremental", "prefix_from"), ("middle-incremental", "base_from")])
def test_from_on_the_command_line_wins_over_the_shipped_pattern(tmp_path, finished_run, space, key):
    """The shipped incremental spaces set a default prefix/base; ``search_space.<key>=RUN`` replaces it
    (it once failed with "give prefix or prefix_from, not both")."""
    best = json.loads((finished_run / "summary.json").read_text())["best_pattern"]
    run_dir = tmp_path / "grown"
    proc = run_cli("search", f"search_space={space}", f"search_space.{key}={finished_run}",
                   "fidelity=simulated-ladder", "search.n_workers=1", "search.n_iterations=1",
                   f"search.run_dir={run_dir}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    saved = json.loads((run_dir / "search.json").read_text())["search_space"]
    fixed = saved["prefix"] if key == "prefix_from" else saved["base"]
    assert fixed == best
    records = read_trials(run_dir)
    if key == "prefix_from":
        assert all(r.pattern.startswith(best) for r in records)
    both = run_cli("search", f"search_space={space}", f"search_space.{key}={finished_run}",
                   f"search_space.{key.removesuffix('_from')}=AAMMMM", f"search.run_dir={tmp_path / 'x'}")
    assert both.returncode == 2 and "not both" in both.stderr


def test_bad_corpus_of_a_pretraining_rung_is_one_error_before_any_work(capsys, tmp_path, monkeypatch):
    """The master prepares every rung's corpus before starting workers: a missing corpus is one
    ``error:`` line naming data.source, exit 2, and no run directory."""
    conf = tmp_path / "conf"
    (conf / "fidelity").mkdir(parents=True)
    (conf / "fidelity" / "my-pretrain.yaml").write_text(yaml.safe_dump(
        {"kind": "pretrain", "data": {"source": str(tmp_path / "missing" / "*.txt"), "progress": False}}))
    run_dir = tmp_path / "run"
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(capsys, "search", "--config-dir", str(conf), "fidelity=my-pretrain",
                            f"search.run_dir={run_dir}")
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "data.source" in lines[0]
    assert not run_dir.exists()
