"""benchmarks/bench_train_gpu.py: its path through ``composer-automl train`` runs on CPU (the GPU figures
come from the same code with ``--accelerator gpu``), and without CUDA the GPU run is skipped, exit 0."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_train_gpu.py"


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=280)


@pytest.mark.slow  # default-run time (CI < 10 min); the same smoke run is a step of the slow gpu_check test
@pytest.mark.timeout(300)
def test_cpu_smoke_run_trains_through_the_train_path_and_prints_every_figure():
    done = bench("--accelerator", "cpu", "--smoke", "--seq-len", "32", "--micro-batch", "4", "--steps", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    figures = dict(re.findall(r"^(\S+): (\S+)$", done.stdout, re.M))
    assert "cpu, fp32, TP=1, micro-batch 4 × seq_len 32" in done.stdout
    for label in ("baseline", "hybrid"):
        assert float(figures[f"tiny_{label}_tokens_per_s[local]"]) > 0
    assert figures["tiny_hybrid_pattern"] == "1A+2M+1A+2M"
    assert float(figures["tiny_hybrid_vs_baseline_throughput[local]"]) == pytest.approx(
        float(figures["tiny_hybrid_tokens_per_s[local]"]) / float(figures["tiny_baseline_tokens_per_s[local]"]),
        rel=0.01)


@pytest.mark.slow  # default-run time (CI < 10 min): the other GPU benchmarks' skips stay in the default run
@pytest.mark.timeout(300)  # a subprocess importing torch: over a minute on a loaded machine
def test_gpu_run_without_cuda_is_skipped_with_exit_0(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    done = bench()
    assert done.returncode == 0 and done.stdout.startswith("skipped: no CUDA device")
