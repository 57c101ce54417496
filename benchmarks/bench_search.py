"""Search benchmarks: worker scaling, and anytime performance of BOHB vs Hyperband vs random.

1. Worker scaling — trials per hour of a CPU-bound simulated ladder with 1 worker
   (all cores) vs 2 workers (half the cores each), same search, same trial count.
2. Anytime performance — BOHB, Hyperband and random search (hpbandster, driven by
   our master) on the deterministic simulated multi-fidelity objective over 10-layer
   patterns (1024 of them, exact optimum by enumeration), ≥ 10 seeds each: median
   cumulative budget until the incumbent's regret is within the target (the best 5%
   of all patterns), as a ratio against random search (< 1 = faster than random).

Prints one ``name: value`` line per figure. ``--quick`` shrinks both parts.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import logging
import math
import os
import statistics
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

from composer_automl.patterns import Pattern
from composer_automl.search.ladder import ladder_from_mapping, load_ladder
from composer_automl.search.results import read_trials
from composer_automl.search.run import SearchSettings, run_search
from composer_automl.search.simulated import SimulatedConfig, true_loss
from composer_automl.search.spaces import space_from_mapping
from composer_automl.search.worker import serve

N_LAYERS = 10


def _ladder(**rung_fields):
    base = load_ladder("simulated-ladder").mapping
    rungs = [{**r, "rung_config": {**r["rung_config"], **rung_fields}} for r in base["rungs"]]
    return ladder_from_mapping("bench", {**base, "rungs": rungs})


def _search(settings: SearchSettings, space, ladder, root: Path, in_process_worker: bool):
    """One quiet search; with ``in_process_worker`` a worker thread in this process serves it."""
    run_dir = root / f"{settings.optimizer}-{settings.seed}-{settings.n_workers}-{time.monotonic_ns()}"
    if in_process_worker:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        settings.port, settings.run_id = port, f"bench{time.monotonic_ns()}"
        threading.Thread(target=_quiet_serve, args=(f"127.0.0.1:{port}", settings.run_id), daemon=True).start()
    with contextlib.redirect_stdout(io.StringIO()):
        run_search(settings, space, ladder, run_dir)
    return read_trials(run_dir)


def _quiet_serve(nameserver: str, run_id: str) -> None:
    """An in-process worker; errors after its search ended (nameserver gone) are irrelevant here."""
    with contextlib.suppress(Exception):
        serve(nameserver, run_id, wait_s=60)


def worker_scaling(root: Path, quick: bool) -> None:
    cores = os.cpu_count() or 2
    ladder = _ladder(matmuls=60 if quick else 150)
    space = space_from_mapping({"strategy": "one-shot", "n_layers": 6})
    rates = {}
    for n_workers in (1, 2):
        settings = SearchSettings(n_workers=n_workers, n_iterations=3, seed=0,
                                  threads_per_worker=max(1, cores // n_workers))
        records = _search(settings, space, ladder, root, in_process_worker=False)
        # from the first to the last finished trial: excludes process start-up
        span = max(r.elapsed_s for r in records) - min(r.elapsed_s - r.wall_time_s for r in records)
        rates[n_workers] = len(records) / span * 3600
        print(f"trials_per_hour_{n_workers}_worker: {rates[n_workers]:.0f}", flush=True)
    print(f"worker_scaling_2_vs_1_workers_ratio: {rates[2] / rates[1]:.2f}", flush=True)


def anytime(root: Path, seeds: int, iterations: int) -> None:
    config = SimulatedConfig()
    losses = sorted(true_loss(Pattern(p), config) for p in itertools.product("AM", repeat=N_LAYERS))
    optimum = losses[0]
    target = losses[int(0.05 * len(losses))] - optimum  # reach the best 5% of all patterns
    print(f"anytime_target_regret: {target:.4f}", flush=True)
    space = space_from_mapping({"strategy": "one-shot", "n_layers": N_LAYERS})
    ladder = _ladder()
    medians = {}
    for optimizer in ("random", "hyperband", "bohb"):
        needed = []
        for seed in range(seeds):
            settings = SearchSettings(optimizer=optimizer, n_workers=0, min_workers=1, n_iterations=iterations,
                                      seed=seed, ping_interval_s=1)
            records = _search(settings, space, ladder, root, in_process_worker=True)
            needed.append(_budget_to_target(records, ladder.max_budget, optimum, target, config))
        medians[optimizer] = statistics.median(needed)
        reached = sum(math.isfinite(x) for x in needed)
        print(f"anytime_median_budget_{optimizer}: {medians[optimizer]:.0f} (target reached in {reached}/{seeds})",
              flush=True)
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
    parser.add_argument("--quick", action="store_true", help="fewer seeds/iterations, cheaper trials")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per optimizer (>= 10 for the report)")
    parser.add_argument("--skip-scaling", action="store_true")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")  # statsmodels/pandas chatter from BOHB's KDE
    seeds = args.seeds or 10
    iterations = 12 if args.quick else 24
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_scaling:
            worker_scaling(Path(tmp), args.quick)
        anytime(Path(tmp), seeds, iterations)
    sys.stdout.flush()
    os._exit(0)  # in-process worker threads of finished searches need no join


if __name__ == "__main__":
    main()
