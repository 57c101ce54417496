"""benchmarks/hybridbench6_mix.py: a MAD + pretraining mix, its weight chosen on training folds only."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from composer_automl.table import Row

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "hybridbench6_mix.py"
PATTERNS = [format(i, "04b").replace("0", "A").replace("1", "M") for i in range(12)]


def load_script():
    spec = importlib.util.spec_from_file_location("hybridbench6_mix", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def opposed_errors(mix) -> list[Row]:
    """Pretraining loss = reference + e, MAD loss = (reference - e) / 2 with e = +-1.2 alternating: each part
    alone misranks neighbours, a weight >= 1 cancels enough of e to rank every pair like the reference."""
    ref = {p: float(i) for i, p in enumerate(PATTERNS)}
    err = {p: 1.2 if i % 2 else -1.2 for i, p in enumerate(PATTERNS)}
    rows = []
    for s in (0, 1):
        rows += [Row(pattern=p, rung="pretrain-ref", seed=s, status="ok", loss=v) for p, v in ref.items()]
        rows += [Row(pattern=p, rung="pretrain-next", seed=s, status="ok", loss=v) for p, v in ref.items()]
        rows += [Row(pattern=p, rung="pretrain-x", seed=s, status="ok", loss=ref[p] + err[p], cpu_time_s=10.0)
                 for p in ref]
        rows += [Row(pattern=p, rung=mix.MAD_RUNG, seed=s, status="ok", loss=(ref[p] - err[p]) / 2, cpu_time_s=20.0)
                 for p in ref]
    return rows


def test_best_weight_is_the_smallest_that_cancels_the_opposed_errors():
    mix = load_script()
    rows = opposed_errors(mix)
    means = {rung: {r.pattern: r.loss for r in rows if r.rung == rung} for rung in ("pretrain-x", mix.MAD_RUNG, "pretrain-ref")}
    # (1 + w/2) * 1 > (1 - w/2) * 2.4  <=>  w > 0.82: the first candidate above is 1.0
    assert mix.best_weight(means["pretrain-x"], means[mix.MAD_RUNG], means["pretrain-ref"], PATTERNS) == pytest.approx(1.0)


def test_cross_validation_scores_only_patterns_the_weight_never_saw(monkeypatch):
    mix = load_script()
    seen: list[list[str]] = []
    choose = mix.best_weight

    def spy(pre, mad, ref, patterns):
        seen.append(list(patterns))
        return choose(pre, mad, ref, patterns)

    monkeypatch.setattr(mix, "best_weight", spy)
    figures = mix.cross_validated(opposed_errors(mix), "pretrain-x", "pretrain-ref", "pretrain-next", k=3, repeats=4)
    assert len(seen) == len(figures["weight"]) == 12
    left_out = Counter(p for patterns in seen for p in set(PATTERNS) - set(patterns))
    assert left_out == {p: 4 for p in PATTERNS}             # each pattern held out once per repeat
    assert all(len(patterns) == 8 for patterns in seen)
    held_out_mix = sum(figures["mix_seed_means"]) / 12
    held_out_alone = sum(figures["alone_seed_means"]) / 12
    assert held_out_mix > held_out_alone and held_out_mix > 0.9
    assert figures["adjacent_mix"] == figures["mix_seed_means"]   # "next" equals the reference here
    assert figures["mix_one_seed"] == pytest.approx(figures["mix_seed_means"])   # seeds are identical


@pytest.mark.timeout(300)
def test_script_prints_every_figure_on_the_shipped_table():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--repeats", "2"], capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr
    names = re.findall(r"^(\w+)\[pretrain-narrow-b4\]: -?\d+\.\d+(?: \(\d+\.\d+\))?$", proc.stdout, re.M)
    assert set(names) == {"cv_mix_seed_means", "cv_mix_one_seed", "cv_alone_seed_means", "cv_alone_one_seed",
                          "cv_mad_seed_means", "cv_adjacent_mix", "cv_adjacent_alone", "cv_weight_median",
                          "final_weight", "cpu_s_mix", "cpu_s_alone"}
    assert len(names) == 11


def test_a_rung_missing_from_the_table_is_one_error_line():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--pretrain", "pretrain-nope"], capture_output=True,
                          text=True, timeout=100)
    assert proc.returncode == 2 and not proc.stdout
    error = proc.stderr.strip().splitlines()[-1]
    assert "error: rung(s) ['pretrain-nope'] not in" in error and "pretrain-tiny-b4" in error
