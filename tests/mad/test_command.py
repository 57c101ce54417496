"""``composer-automl mad`` through the real console script (Hydra, Lightning, TensorBoard)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cli_runs import run_main


def mad_main(capsys, tmp_path: Path, monkeypatch, *overrides: str) -> tuple[int, str, str]:
    """``composer-automl mad`` in this process (a cache and run folder under ``tmp_path``)."""
    monkeypatch.setenv("COMPOSER_AUTOML_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return run_main(capsys, "mad", f"hydra.run.dir={tmp_path / 'run'}", *overrides)


def run_cli(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COMPOSER_AUTOML_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-c", "from composer_automl.cli import main; main()", "mad", f"hydra.run.dir={tmp_path / 'run'}", *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)


def test_mad_cli_prints_table_score_and_writes_tensorboard(tmp_path):
    """The mad subcommand prints one line per run, a per-task table and the MAD score, and writes event files."""
    proc = run_cli(
        tmp_path, "pattern=AMAM", "fidelity=mad-quick", "fidelity.tasks=[compression,memorization]",
        "fidelity.max_steps=2", "fidelity.num_test_examples=16", "width.d_model=32", "fidelity.d_model=null",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "mad: pattern=AMAM fidelity=mad-quick runs=2" in out
    assert out.count("[mad ") == 2
    assert "compression" in out and "memorization" in out and "MAD score" in out and "device: cpu, 32-true" in out
    events = EventAccumulator(str(tmp_path / "run")).Reload()
    assert len(events.Scalars("memorization/base-lr0.003-wd0/test_acc")) >= 1
    assert (tmp_path / "run" / "mad_results.json").is_file()


@pytest.mark.parametrize("overrides, line", [
    (["pattern=AXM"], "error: pattern='AXM': unknown layer kind(s) ['X'] in pattern; allowed: ['A', 'M']"),
    (["fidelity.train_on=everything"], "error: fidelity.train_on='everything' is not allowed; choose one of ['all', 'scored']"),
    (["fidelity.accelerator=cpu", "fidelity.precision=16-mixed"],
     "error: fidelity.precision='16-mixed' does not run on cpu; choose one of ['32-true', 'bf16-mixed', 'bf16-true'] (or auto)"),
    pytest.param(["fidelity.accelerator=gpu"], "error: fidelity.accelerator=gpu but no CUDA device is visible; use accelerator=cpu",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")),
])
def test_mad_cli_bad_input_is_one_error_line_naming_the_key_typed(capsys, tmp_path, monkeypatch, overrides, line):
    """A bad pattern, an impossible setting or a device this machine lacks: exactly one 'error:' line naming the key
    as typed (``fidelity.<key>``, not the config's internal name), exit 2, no training output (the console script's
    main in this process: these are refused before any work)."""
    code, out, err = mad_main(capsys, tmp_path, monkeypatch, *overrides)
    assert code == 2 and err.strip().splitlines() == [line], (overrides, err[-1000:])
    assert "[mad " not in out


def test_mad_cli_overrides_of_a_setting_name_the_setting(capsys, tmp_path, monkeypatch):
    """An impossible MAD setting after overrides names the setting's field."""
    code, _, err = mad_main(capsys, tmp_path, monkeypatch, "fidelity.overrides.selective-copying.num_tokens_to_copy=100")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: ") and "num_tokens_to_copy" in err


def test_mad_cli_unknown_rung_lists_options(capsys, tmp_path, monkeypatch):
    """An unknown fidelity rung is refused by the pre-check with the available options listed."""
    code, _, err = mad_main(capsys, tmp_path, monkeypatch, "fidelity=mad-nope")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "fidelity/mad-nope" in err and "mad-quick" in err
