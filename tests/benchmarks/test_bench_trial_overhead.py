"""benchmarks/bench_trial_overhead.py: a worker's first and later trials, timed through the worker's Evaluator."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_trial_overhead.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=280)


@pytest.mark.slow  # Inductor compiles the rung-cost workers' layers for the CPU: over a minute
@pytest.mark.timeout(300)
def test_cpu_smoke_times_every_trial_of_a_fresh_worker_and_the_rung_costs():
    done = run("--accelerator", "cpu", "--smoke", "--modes", "eager", "--rung-costs")
    assert done.returncode == 0, done.stderr[-3000:]
    got = dict(re.findall(r"^(\S+): (\S+)", done.stdout, re.M))
    assert set(got) == {"trial_s_first[eager]", "trial_s_later[eager]", "rung_cost_s[gpu-narrow]",
                        "rung_cost_s[gpu-search]"}
    assert all(float(v) > 0 for v in got.values())
    assert done.stdout.startswith("# CPU, fp32 (a path check, not a GPU figure); gpu-search rung")


def test_bad_arguments_are_one_error_line():
    done = run("--accelerator", "cpu", "--modes", "eager,jit")
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "error: --modes must be a comma-separated subset of ('eager', 'layers', 'model') (got 'eager,jit') and "
        "--trials in [2, 6] (got 4)"]
