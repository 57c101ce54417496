"""``composer-automl mad`` through the real console script (Hydra, Lightning, TensorBoard)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


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


@pytest.mark.timeout(180)
@pytest.mark.parametrize("overrides, line", [
    (["pattern=AXM"], "error: pattern='AXM': unknown layer kind(s) ['X'] in pattern; allowed: ['A', 'M']"),
    (["fidelity.train_on=everything"], "error: fidelity.train_on='everything' is not allowed; choose one of ['all', 'scored']"),
    (["fidelity.accelerator=cpu", "fidelity.precision=16-mixed"],
     "error: fidelity.precision='16-mixed' does not run on cpu; choose one of ['32-true', 'bf16-mixed', 'bf16-true'] (or auto)"),
    pytest.param(["fidelity.accelerator=gpu"], "error: fidelity.accelerator=gpu but no CUDA device is visible; use accelerator=cpu",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")),
])
def test_mad_cli_bad_input_is_one_error_line_naming_the_key_typed(tmp_path, overrides, line):
    """A bad pattern, an impossible setting or a device this machine lacks: exactly one 'error:' line naming the key
    as typed (``fidelity.<key>``, not the config's internal name), exit 2, no training output."""
    proc = run_cli(tmp_path, *overrides)
    assert proc.returncode == 2, (overrides, proc.stderr[-1000:])
    assert proc.stderr.strip().splitlines() == [line]
    assert "[mad " not in proc.stdout


@pytest.mark.timeout(120)
def test_mad_cli_overrides_of_a_setting_name_the_setting(tmp_path):
    """An impossible MAD setting after overrides names the setting's field."""
    proc = run_cli(tmp_path, "fidelity.overrides.selective-copying.num_tokens_to_copy=100")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith("error: ") and "num_tokens_to_copy" in proc.stderr


def test_mad_cli_unknown_rung_lists_options(tmp_path):
    """An unknown fidelity rung is refused by the pre-check with the available options listed."""
    proc = run_cli(tmp_path, "fidelity=mad-nope")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "fidelity/mad-nope" in proc.stderr and "mad-quick" in proc.stderr
