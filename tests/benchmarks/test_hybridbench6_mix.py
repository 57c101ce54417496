"""benchmarks/hybridbench6_mix.py: a MAD + pretraining mix scored against the reference."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from composer_automl.table import Row

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "hybridbench6_mix.py"


def load_script():
    spec = importlib.util.spec_from_file_location("hybridbench6_mix", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mix_ranks_like_the_reference_where_each_part_errs_the_other_way():
    """Pretraining loss = reference + e, MAD loss = (reference - e) / 2: each alone misranks, the
    weighted sum (weight = the std ratio, 2) cancels e; figures match a hand computation."""
    mix = load_script()
    ref = {"AAAA": 1.0, "AAAM": 2.0, "AAMM": 3.0, "AMMM": 4.0, "MMMM": 5.0}
    err = {"AAAA": 1.2, "AAAM": -1.2, "AAMM": 1.2, "AMMM": -1.2, "MMMM": 1.2}
    rows = [Row(pattern=p, rung="pretrain-ref", seed=s, status="ok", loss=v) for p, v in ref.items() for s in (0, 1)]
    rows += [Row(pattern=p, rung="pretrain-x", seed=s, status="ok", loss=ref[p] + err[p], cpu_time_s=10.0) for p in ref for s in (0, 1)]
    rows += [Row(pattern=p, rung=mix.MAD_RUNG, seed=s, status="ok", loss=(ref[p] - err[p]) / 2, cpu_time_s=20.0) for p in ref for s in (0, 1)]
    figures = mix.mixed_figures(rows, "pretrain-x", "pretrain-ref")
    assert figures["mix_weight"] == pytest.approx(2.0)
    assert figures["mix_spearman_one_seed"] == pytest.approx(1.0)
    assert figures["mix_spearman_seed_means"] == pytest.approx(1.0)
    assert figures["alone_spearman_seed_means"] == pytest.approx(0.8)   # ranks 2,1,4,3,5 vs 1..5
    assert figures["mix_cpu_s"] == pytest.approx(30.0) and figures["alone_cpu_s"] == pytest.approx(10.0)


@pytest.mark.timeout(120)
def test_script_prints_every_figure_on_the_shipped_table():
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, proc.stderr
    names = re.findall(r"^(\w+)\[pretrain-(?:narrow|tiny)-b4\]: -?\d+\.\d+$", proc.stdout, re.M)
    assert len(names) == 14 and set(names) == {"mix_weight", "mix_spearman_one_seed", "mix_spearman_seed_means",
                                               "mix_cpu_s", "alone_spearman_one_seed",
                                               "alone_spearman_seed_means", "alone_cpu_s"}


def test_a_rung_missing_from_the_table_is_one_error_line():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--pretrain", "pretrain-nope"], capture_output=True,
                          text=True, timeout=100)
    assert proc.returncode == 2 and not proc.stdout
    error = proc.stderr.strip().splitlines()[-1]
    assert "error: rung(s) ['pretrain-nope'] not in" in error and "pretrain-tiny-b4" in error
