"""benchmarks/gpu_check.sh: its steps run on CPU (``--accelerator cpu --smoke``), each logged with its status and
its ``name: value`` figures in ``--out``; one deadline bounds the whole check; bad arguments are one error line."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def check(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def figures(out: Path) -> dict[str, str]:
    return dict(re.findall(r"^(\S+): (.+)$", (out / "figures.txt").read_text(), re.M))


def test_bad_arguments_are_one_error_line():
    for args, expected in [((), "error: --out DIR is required (where the logs go)"),
                           (("--out", "x", "--accelerator", "tpu"), "error: --accelerator must be gpu or cpu, got tpu"),
                           (("--out", "x", "--fast"), "error: unknown argument --fast (use --out DIR "
                                                      "[--accelerator gpu|cpu] [--smoke] [--budget-s S])")]:
        done = check(*args)
        assert done.returncode == 2 and done.stderr.strip().splitlines() == [expected]


def test_a_spent_deadline_runs_no_step_and_says_so(tmp_path):
    """With less than 20 s of the budget left no step starts: each is reported as not run, the total stays within
    the budget, and env.txt records the commit."""
    done = check("--out", str(tmp_path), "--accelerator", "cpu", "--smoke", "--budget-s", "5")
    assert done.returncode == 0, done.stderr
    got = figures(tmp_path)
    for step in ("train_1B", "decode", "gpu_tests", "packed", "trial"):
        assert got[f"gpu_check_{step}"] == "not run (budget spent)"
    assert int(got["gpu_check_total_s"]) <= 5 + 1  # whole seconds: one of rounding
    assert (tmp_path / "env.txt").read_text().startswith("commit: ")


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_cpu_smoke_check_runs_every_step_and_collects_its_figures(tmp_path):
    """Every step of the check runs to the end on CPU (the GPU figures come from the same steps on a GPU)."""
    done = check("--out", str(tmp_path), "--accelerator", "cpu", "--smoke", "--budget-s", "1100", timeout=1150)
    assert done.returncode == 0, done.stderr[-3000:]
    got = figures(tmp_path)
    for step in ("train_1B", "decode", "gpu_tests", "packed", "trial"):
        assert got[f"gpu_check_{step}"].startswith("ok in "), (step, got[f"gpu_check_{step}"],
                                                                (tmp_path / f"{step}.log").read_text()[-2000:])
        assert (tmp_path / f"{step}.log").exists()
    assert float(got["tiny_hybrid_tokens_per_s[local]"]) > 0
    assert any(name.startswith("cpu_decode_ms_per_token_") and name.endswith("_over_eager") for name in got)
    assert float(got["packed_search_throughput[wpg=2]_vs_[wpg=1]"]) > 0
    assert float(got["trial_s_later[eager]"]) > 0
