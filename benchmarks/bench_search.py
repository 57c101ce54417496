"""Search benchmarks: worker scaling, and anytime performance of BOHB and Hyperband vs random search.

Prints one ``name: value`` line per figure:

- ``search_wall_s_1_worker`` / ``search_wall_s_2_workers``: wall time of the whole
  ``run_search`` call (nameserver, worker processes, every trial, shutdown, summary)
  for one fixed search: BOHB, seed 0, ``--scaling-iterations`` iterations (6: 40
  trials) of the simulated ladder on 6-layer patterns, each trial sleeping a fixed
  ``--trial-s`` seconds whatever its pattern or budget, so both runs have the same
  trial count and the same cost per trial; 1 torch thread per worker in both runs.
- ``worker_scaling_2_vs_1``: the first over the second. Ideal is 2; start-up, the
  master's per-trial overhead and the last bracket's tail (fewer trials left than
  workers) take it below.
- ``anytime_target_regret``: the target. The simulated objective over 10-layer
  patterns (1024, exact optimum by enumeration) is deterministic; the target is
  reaching one of the best 1% of all patterns (true-loss regret ≤ this value).
- ``anytime_median_budget_<optimizer>``: for random search, Hyperband and BOHB
  (hpbandster, driven by our master, one in-process worker), the cumulative budget
  (budget-1 trial = 1, budget-9 trial = 9) spent when the incumbent (best loss seen
  at the maximum budget) first reaches the target; median over ``--seeds`` seeds,
  each search ``--iterations`` iterations (48: 1152 budget for BOHB/Hyperband, 1296
  for random). A seed that never reaches it counts as infinite; the line says in
  how many seeds it was reached.
- ``anytime_budget_ratio_<optimizer>_vs_random``: that median over random search's,
  both measured in this run (< 1: reaches the target with less budget than random).

    python benchmarks/bench_search.py            # ~4-5 min on 2 cores
    python benchmarks/bench_search.py --quick    # smaller, for a smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import logging
import math
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

from composer_automl.patterns import Pattern
from composer_automl.search.ladder import ladder_from_mapping, load_ladder
from composer_automl.search.results import TrialRecord, read_trials
from composer_automl.search.run import SearchSettings, run_search
from composer_automl.search.simulated import SimulatedConfig, true_loss
from composer_automl.search.spaces import space_from_mapping
from composer_automl.search.worker import serve

N_LAYERS = 10
TARGET_QUANTILE = 0.01
"""Anytime target: the best 1% of all patterns."""


def _ladder(**rung_fields):
    """The simulated ladder with extra simulated-rung fields on every rung."""
    base = load_ladder("simulated-ladder").mapping
    rungs = [{**r, "rung_config": {**r["rung_config"], **rung_fields}} for r in base["rungs"]]
    return ladder_from_mapping("bench", {**base, "rungs": rungs})


def _search(settings: SearchSettings, space, ladder, root: Path,
            in_process_worker: bool = False) -> tuple[list[TrialRecord], float]:
    """One quiet search → (its records, wall seconds of the ``run_search`` call).

    With ``in_process_worker`` (and ``n_workers=0``) a worker thread in this process serves it.
    """
    run_dir = root / f"{settings.optimizer}-{settings.seed}-{settings.n_workers}-{time.monotonic_ns()}"
    if in_process_worker:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        settings.port, settings.run_id = port, f"bench{time.monotonic_ns()}"
        threading.Thread(target=_quiet_serve, args=(f"127.0.0.1:{port}", settings.run_id), daemon=True).start()
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        run_search(settings, space, ladder, run_dir)
    wall_s = time.perf_counter() - start
    return read_trials(run_dir), wall_s


def _quiet_serve(nameserver: str, run_id: str) -> None:
    """An in-process worker; errors after its search ended (nameserver gone) are irrelevant here."""
    with contextlib.suppress(Exception):
        serve(nameserver, run_id, wait_s=60)


def worker_scaling(root: Path, iterations: int, trial_s: float) -> None:
    ladder = _ladder(sleep_s=trial_s)
    space = space_from_mapping({"strategy": "one-shot", "n_layers": 6})
    walls, counts = {}, {}
    for n_workers in (1, 2):
        settings = SearchSettings(n_workers=n_workers, n_iterations=iterations, seed=0, threads_per_worker=1,
                                  ping_interval_s=1)
        records, walls[n_workers] = _search(settings, space, ladder, root)
        counts[n_workers] = len(records)
        label = "1_worker" if n_workers == 1 else f"{n_workers}_workers"
        print(f"search_wall_s_{label}: {walls[n_workers]:.1f} ({len(records)} trials of {trial_s:g} s)", flush=True)
    assert counts[1] == counts[2], f"the two searches ran different trial counts: {counts}"
    print(f"worker_scaling_2_vs_1: {walls[1] / walls[2]:.2f}", flush=True)


def anytime(root: Path, seeds: int, iterations: int) -> None:
    config = SimulatedConfig()
    losses = sorted(true_loss(Pattern(p), config) for p in itertools.product("AM", repeat=N_LAYERS))
    optimum = losses[0]
    target = losses[int(TARGET_QUANTILE * len(losses))] - optimum
    print(f"anytime_target_regret: {target:.4f} (best {TARGET_QUANTILE:.0%} of {len(losses)} patterns)", flush=True)
    space = space_from_mapping({"strategy": "one-shot", "n_layers": N_LAYERS})
    ladder = _ladder()
    medians = {}
    for optimizer in ("random", "hyperband", "bohb"):
        needed = []
        for seed in range(seeds):
            settings = SearchSettings(optimizer=optimizer, n_workers=0, min_workers=1, n_iterations=iterations,
                                      seed=seed, ping_interval_s=1)
            records, _ = _search(settings, space, ladder, root, in_process_worker=True)
            needed.append(_budget_to_target(records, ladder.max_budget, optimum, target, config))
        medians[optimizer] = statistics.median(needed)
        reached = sum(math.isfinite(x) for x in needed)
        print(f"anytime_median_budget_{optimizer}: {medians[optimizer]:.0f} "
              f"(target reached in {reached}/{seeds} seeds)", flush=True)
    for optimizer in ("hyperband", "bohb"):
        ratio = medians[optimizer] / medians["random"] if math.isfinite(medians["random"]) else math.nan
        print(f"anytime_budget_ratio_{optimizer}_vs_random: {ratio:.2f}", flush=True)


def _budget_to_target(records, max_budget, optimum, target, config) -> float:
    """Cumulative budget spent when the incumbent (best observed at max budget) is within target."""
    spent, best = 0.0, None
    for r in sorted(records, key=lambda r: r.elapsed_s):
        spent += r.budget
        if r.status == "ok" and r.budget == max_budget and (best is None or r.loss < best.loss):
            best = r
            if true_loss(Pattern.parse(r.pattern), config) - optimum <= target + 1e-12:
                return spent
    return math.inf


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer seeds/iterations, shorter trials")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per optimizer (default 11; 3 with --quick)")
    parser.add_argument("--iterations", type=int, default=None, help="iterations per anytime search (default 48)")
    parser.add_argument("--scaling-iterations", type=int, default=None, help="iterations of the scaling search (6)")
    parser.add_argument("--trial-s", type=float, default=None, help="seconds per trial when scaling (default 1)")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--skip-anytime", action="store_true")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")  # statsmodels/pandas chatter from BOHB's KDE
    seeds = args.seeds or (3 if args.quick else 11)
    iterations = args.iterations or (12 if args.quick else 48)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_scaling:
            worker_scaling(Path(tmp), args.scaling_iterations or (3 if args.quick else 6),
                           args.trial_s or (0.3 if args.quick else 1.0))
        if not args.skip_anytime:
            anytime(Path(tmp), seeds, iterations)
    sys.stdout.flush()
    os._exit(0)  # in-process worker threads of finished searches need no join


if __name__ == "__main__":
    main()
