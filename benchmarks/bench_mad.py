"""MAD rung cost and fidelity: wall time of one evaluation, and quick-vs-standard rank agreement.

Prints ``name: value`` lines:
- ``mad_quick_wall_s`` / ``mad_standard_wall_s``: one evaluation of a 6-layer pattern
  (AMMAMM) at the search width, with ``--threads`` torch threads, and each ratio to
  the 60 s target (``*_ratio_to_60s_target``, < 1 is within target) measured in the same run.
- ``spearman_quick_vs_standard``: rank agreement of the MAD scores of ``--patterns``
  (8 fixed 6-layer patterns by default) under mad-quick and mad-standard.
- with ``--full``: the cost of the reference protocol (mad-full) for AMMAMM on this CPU,
  fp32, one thread: ``mad_full_setting_wall_s`` (one lr/wd run of in-context-recall's base
  setting, 200 epochs, no early stop) and ``mad_full_cpu_hours_per_pattern`` (all 396 runs),
  projected from the measured time of real training steps and test evaluations of every
  setting (Lightning runs of 1 and 1+K steps; their difference is K steps), and
  ``mad_full_over_quick_ratio`` against the mad-quick evaluation timed in the same run.
  An upper bound: early stopping at accuracy 0.999 cuts runs that solve their task.

Patterns are evaluated in ``--jobs`` worker processes (each ``--threads`` threads);
datasets are generated once into a private cache first, so timings are training only.

    python benchmarks/bench_mad.py            # ~8 quick + 8 standard evaluations
    python benchmarks/bench_mad.py --quick    # wall times only, no rank agreement
    python benchmarks/bench_mad.py --quick --full   # + the projected cost of the whole protocol
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 60.0
PATTERNS = ["AMAMAM", "AAMMMM", "MMMMAA", "AMMAMM", "MMMMMM", "AAAAAA", "MAMAMA", "AMMMMA"]


def evaluate(args: tuple[str, str, int, str, str]) -> tuple[str, str, float, float]:
    """(rung, pattern) → (rung, pattern, MAD score, wall seconds), in a worker process."""
    rung_name, pattern, threads, out_root, cache = args
    os.environ["COMPOSER_AUTOML_CACHE"] = cache
    import torch

    torch.set_num_threads(threads)
    from composer_automl.patterns import Pattern
    from composer_automl.spec import SearchWidth
    from composer_automl.rungs.registry import load_rung

    rung = load_rung(rung_name)
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # per-run progress lines; stdout keeps the figures
        result = rung(Pattern.parse(pattern), SearchWidth(), Path(out_root) / rung_name / pattern, 0)
    return rung_name, pattern, result.metrics["mad_score"], time.perf_counter() - start


def warm_cache(rung_names: list[str], cache: str) -> None:
    """Generate every dataset the rungs need (not part of any timing)."""
    os.environ["COMPOSER_AUTOML_CACHE"] = cache
    from composer_automl.mad.data import load_or_generate
    from composer_automl.rungs.registry import load_rung

    for name in rung_names:
        config = load_rung(name).config
        for sid in config.settings():
            load_or_generate(sid.task, sid.setting, 0, config.num_test_examples)


def run_seconds(sid, config, steps: int, out: Path) -> float:
    """Wall seconds of one real Lightning run of ``steps`` steps and one evaluation (AMMAMM, fp32 CPU)."""
    import dataclasses

    from composer_automl import devices
    from composer_automl.mad.data import load_or_generate
    from composer_automl.mad.evaluate import train_run
    from composer_automl.patterns import Pattern
    from composer_automl.quiet import quiet_lightning
    from composer_automl.spec import SearchWidth

    run_config = dataclasses.replace(config, max_steps=steps, evals_per_run=1)
    setting = sid.setting.replace(num_train_examples=config.batch_size * steps)
    data = load_or_generate(sid.task, setting, 0, config.num_test_examples)
    device = devices.resolve("cpu", "32-true", "mad")
    start = time.perf_counter()
    with quiet_lightning(), contextlib.redirect_stdout(sys.stderr):
        train_run(dataclasses.replace(sid, setting=setting), data, Pattern.parse("AMMAMM"), run_config.width(SearchWidth()),
                  config.lrs[0], config.weight_decays[0], run_config, device, out, 0)
    return time.perf_counter() - start


def full_protocol_projection(out: Path, k: int = 4) -> tuple[float, float]:
    """(projected seconds of one recall-base run, projected seconds of all 396 runs) of mad-full on this CPU."""
    import dataclasses

    from composer_automl.mad.evaluate import run_schedule
    from composer_automl.rungs.registry import load_rung

    config = dataclasses.replace(load_rung("mad-full").config, accelerator="cpu", precision="32-true")
    total, recall_base = 0.0, 0.0
    runs_per_setting = len(config.lrs) * len(config.weight_decays)
    for sid in config.settings():
        one, more = run_seconds(sid, config, 1, out), run_seconds(sid, config, 1 + k, out)
        step_s = max(0.0, (more - one) / k)
        eval_s = max(0.0, one - step_s)  # one step + one evaluation (+ fixed overhead) in the 1-step run
        steps, interval, _ = run_schedule(sid.setting.num_train_examples, config)
        run_s = steps * step_s + (steps // interval) * eval_s
        print(f"mad_full_run_s[{sid.task} {sid.name}]: {run_s:.0f} ({steps} steps at {step_s:.3f} s, "
              f"{steps // interval} evals at {eval_s:.2f} s)", file=sys.stderr, flush=True)
        total += run_s * runs_per_setting
        if sid.task == "in-context-recall" and sid.name == "base":
            recall_base = run_s
    return recall_base, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="wall times of AMMAMM only, no rank agreement")
    parser.add_argument("--patterns", default=",".join(PATTERNS), help="comma-separated 6-layer patterns")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per evaluation")
    parser.add_argument("--jobs", type=int, default=2, help="evaluations in parallel (processes)")
    parser.add_argument("--full", action="store_true", help="also project the cost of the whole mad-full protocol")
    args = parser.parse_args()

    rungs = ["mad-quick", "mad-standard"]
    patterns = ["AMMAMM"] if args.quick else args.patterns.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "cache")
        warm_cache(rungs, cache)
        # the timed evaluation of AMMAMM runs alone (no parallel neighbour) for a clean wall time
        timed = {rung: evaluate((rung, "AMMAMM", args.threads, tmp, cache)) for rung in rungs}
        for rung in rungs:
            wall = timed[rung][3]
            key = rung.replace("-", "_")
            print(f"{key}_wall_s: {wall:.1f}", flush=True)
            print(f"{key}_ratio_to_60s_target: {wall / TARGET_S:.2f}", flush=True)
        print(f"standard_over_quick_wall_ratio: {timed['mad-standard'][3] / timed['mad-quick'][3]:.2f}")
        if args.full:
            import torch

            torch.set_num_threads(args.threads)
            os.environ["COMPOSER_AUTOML_CACHE"] = cache
            one_run, protocol = full_protocol_projection(Path(tmp) / "full")
            print("mad_full_measured_on: cpu, fp32, pattern AMMAMM at d_model 128, "
                  f"{args.threads} thread(s); no early stop (upper bound)")
            print(f"mad_full_setting_wall_s: {one_run:.0f}")
            print(f"mad_full_cpu_hours_per_pattern: {protocol / 3600:.1f}")
            print(f"mad_full_over_quick_ratio: {protocol / timed['mad-quick'][3]:.0f}")
        if args.quick:
            return
        jobs = [(rung, p, args.threads, tmp, cache) for rung in rungs for p in patterns if p != "AMMAMM"]
        with mp.get_context("spawn").Pool(args.jobs) as pool:
            results = list(timed.values()) + pool.map(evaluate, jobs, chunksize=1)
    scores = {(rung, pattern): score for rung, pattern, score, _ in results}
    for pattern in patterns:
        print(f"score_{pattern}: quick={scores['mad-quick', pattern]:.3f} "
              f"standard={scores['mad-standard', pattern]:.3f}")
    from scipy.stats import spearmanr

    rho = spearmanr([scores["mad-quick", p] for p in patterns], [scores["mad-standard", p] for p in patterns])
    print(f"spearman_quick_vs_standard: {rho.statistic:.3f}")


if __name__ == "__main__":
    main()
