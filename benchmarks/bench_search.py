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
- HybridBench-6 (real evaluations replayed from the shipped calibration table through the
  ``tabular`` rung; cost = the recorded wall seconds of every evaluation, summed in the
  order the search finished them; one worker): for BOHB and Hyperband on the ladder
  ``--rungs`` + the reference rung on top, random search (evaluates at the top budget only)
  and single-fidelity BO (BOHB with the reference rung as its only budget), ``--seeds``
  searches each, every search run until it has spent ``--cost-cap`` seconds:
  ``cost_to_top3_<method>``: median [interquartile range] of the cost spent when the search
  first evaluates one of the reference rung's 3 best patterns (seed means) at the top budget
  (a search that never does counts as infinite; the line says in how many it did);
  ``cost_ratio_<method>_vs_random``: that median over random search's (goal for BOHB: <= 1/3);
  ``final_regret_<method>``: median reference-loss regret (seed means) of the incumbent (best
  loss observed at the top budget) at the cost cap; ``anytime_regret_png``: the median and IQR of
  that regret against cost, per method. ``reference_top5`` lines describe what the reference
  rung prefers: attention fraction and attention positions of its 5 best patterns.

    python benchmarks/bench_search.py            # ~25 min on 2 cores
    python benchmarks/bench_search.py --quick    # smaller, for a smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import io
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

from composer_automl.engine.ladder import ladder_from_mapping, load_ladder
from composer_automl.search.results import TrialRecord, read_trials
from composer_automl.search.run import SearchSettings, run_search
from composer_automl.spaces import space_from_mapping
from composer_automl.engine.worker import serve

DEFAULT_LADDER = "default"
"""The shipped ladder whose rungs (below the reference) and eta the HybridBench-6 section replays."""


def _reference_cost(table: str, reference: str) -> float:
    from composer_automl.table import read_rows
    from composer_automl.rungs.tabular import table_path

    return statistics.median(r.wall_time_s for r in read_rows(table_path(table)) if r.rung == reference)


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


METHODS = {
    "bohb": ("bohb", "multi"),
    "hyperband": ("hyperband", "multi"),
    "random": ("random", "multi"),
    "bo": ("bohb", "single"),
}
"""Method → (hpbandster optimizer, ladder): ``single`` is the reference rung as the only budget."""


def tabular_ladder(table: str, rungs: list[str], eta: float = 3.0):
    """A tabular ladder replaying ``rungs`` of ``table`` at budgets 1, eta, eta², ..."""
    entries = [{"budget": eta ** i, "rung": name, "rung_config": {"kind": "tabular", "table": table, "rung": name}}
               for i, name in enumerate(rungs)]
    return ladder_from_mapping("hybridbench", {"kind": "ladder", "eta": eta, "rungs": entries})


def incumbent_curve(records: list[TrialRecord], top_budget: float, ref_means: dict[str, float]):
    """(cumulative cost, reference regret of the incumbent) after each trial, in finishing order."""
    best_loss, regret, spent, curve = math.inf, math.inf, 0.0, []
    optimum = min(ref_means.values())
    for r in sorted(records, key=lambda r: r.elapsed_s):
        spent += r.wall_time_s
        if r.status == "ok" and r.budget == top_budget and r.loss < best_loss:
            best_loss, regret = r.loss, ref_means[r.pattern] - optimum
        curve.append((spent, regret))
    return curve


def cost_to_targets(records: list[TrialRecord], top_budget: float, targets: set[str]) -> float:
    """Cost spent when a target pattern is first evaluated at the top budget (inf if never)."""
    spent = 0.0
    for r in sorted(records, key=lambda r: r.elapsed_s):
        spent += r.wall_time_s
        if r.status == "ok" and r.budget == top_budget and r.pattern in targets:
            return spent
    return math.inf


def _quantiles(values: list[float]) -> tuple[float, float, float]:
    finite = sorted(values)
    q = statistics.quantiles(finite, n=4, method="inclusive") if len(finite) > 1 else [finite[0]] * 3
    return q[0], statistics.median(finite), q[2]


def hybridbench(root: Path, table: str, rungs: list[str], reference: str, seeds: int, cost_cap: float,
                png: Path, eta: float) -> None:
    from composer_automl.calibrate.stats import seed_means
    from composer_automl.table import read_rows
    from composer_automl.rungs.tabular import table_path
    from composer_automl.calibrate.report import preferred_patterns

    rows = read_rows(table_path(table))
    ref_means = seed_means(rows, reference)
    targets = set(sorted(ref_means, key=ref_means.get)[:3])
    print(f"hybridbench_table: {table_path(table)} ({len(ref_means)} patterns; rungs {rungs} + reference {reference}; "
          f"cost = recorded wall seconds, 1 worker)", flush=True)
    for p in preferred_patterns(rows, reference):
        print(f"reference_top5: {p['pattern']} loss={p['loss']:.4f} attention_fraction={p['attention_fraction']:.2f} "
              f"attention_at={p['attention_positions']}", flush=True)
    space = space_from_mapping({"strategy": "one-shot", "n_layers": 6})
    ladders = {"multi": tabular_ladder(table, [*rungs, reference], eta), "single": tabular_ladder(table, [reference], eta)}
    mean_cost = {name: statistics.median(r.wall_time_s for r in rows if r.rung == name) for name in [*rungs, reference]}
    curves: dict[str, list] = {}
    medians = {}
    for method, (optimizer, which) in METHODS.items():
        ladder = ladders[which]
        per_iteration = _iteration_cost(optimizer, ladder, mean_cost)
        iterations = max(1, math.ceil(1.3 * cost_cap / per_iteration))
        needed, regrets, curves[method] = [], [], []
        for seed in range(seeds):
            settings = SearchSettings(optimizer=optimizer, n_workers=0, min_workers=1, n_iterations=iterations,
                                      seed=seed, ping_interval_s=1)
            records, _ = _search(settings, space, ladder, root, in_process_worker=True)
            needed.append(cost_to_targets(records, ladder.max_budget, targets))
            curve = incumbent_curve(records, ladder.max_budget, ref_means)
            curves[method].append(curve)
            regrets.append(_regret_at(curve, cost_cap))
        lo, medians[method], hi = _quantiles(needed)
        reached = sum(math.isfinite(x) for x in needed)
        print(f"cost_to_top3_{method}: {medians[method]:.0f} s [IQR {lo:.0f}-{hi:.0f}] "
              f"(reached in {reached}/{seeds} searches)", flush=True)
        print(f"final_regret_{method}: {statistics.median(regrets):.4f} (at {cost_cap:.0f} s)", flush=True)
    for method in ("bohb", "hyperband", "bo"):
        ratio = medians[method] / medians["random"] if math.isfinite(medians["random"]) else math.nan
        print(f"cost_ratio_{method}_vs_random: {ratio:.2f}", flush=True)
    _plot(curves, cost_cap, png)
    print(f"anytime_regret_png: {png}", flush=True)


def _iteration_cost(optimizer: str, ladder, cost: dict[str, float]) -> float:
    """Mean recorded cost of one iteration of ``optimizer`` (to size a search to the cost cap)."""
    from composer_automl.search.run import planned_trials

    n_stages = len(ladder.budgets)
    per_budget = {b: cost[r.name] for b, r in zip(ladder.budgets, ladder.rungs)}
    total = 0.0
    for it in range(max(n_stages, 1)):
        if optimizer == "random":
            total += planned_trials("random", ladder, 1) * per_budget[ladder.max_budget]
            continue
        s = n_stages - 1 - (it % n_stages)
        n0 = int(math.floor(n_stages / (s + 1)) * ladder.eta ** s)
        for i in range(s + 1):
            total += max(int(n0 * ladder.eta ** (-i)), 1) * per_budget[ladder.budgets[n_stages - 1 - s + i]]
    return total / max(n_stages, 1)


def _regret_at(curve: list[tuple[float, float]], cost: float) -> float:
    regret = math.inf
    for spent, r in curve:
        if spent > cost:
            break
        regret = r
    return regret


def _plot(curves: dict[str, list], cost_cap: float, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.linspace(0, cost_cap, 200)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, runs in curves.items():
        values = np.array([[_regret_at(curve, t) for t in grid] for curve in runs])
        values = np.where(np.isfinite(values), values, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns before a first result
            lo, mid, hi = (np.nanpercentile(values, q, axis=0) for q in (25, 50, 75))
        ax.plot(grid / 3600, mid, label=method)
        ax.fill_between(grid / 3600, lo, hi, alpha=0.2)
    ax.set_xlabel("cost (hours of recorded evaluation time, 1 worker)")
    ax.set_ylabel("regret of the incumbent (reference loss, nats)")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_title("HybridBench-6: median and IQR over seeds")
    ax.legend()
    fig.savefig(png, dpi=110, bbox_inches="tight")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer seeds/iterations, shorter trials")
    parser.add_argument("--seeds", type=int, default=None, help="searches per method (default 20; 3 with --quick)")
    parser.add_argument("--table", default="hybridbench6", help="calibration table replayed by the tabular rung")
    parser.add_argument("--rungs", default=None, help="comma-separated ladder rungs below the reference "
                        "(default: the rungs of the shipped default ladder)")
    parser.add_argument("--reference", default="pretrain-ref", help="the table's reference rung (top budget)")
    parser.add_argument("--cost-cap", type=float, default=None, help="seconds of recorded cost per search "
                        "(default: 64 reference evaluations)")
    parser.add_argument("--png", default="bench_search_anytime.png", help="where the anytime-regret plot goes")
    parser.add_argument("--scaling-iterations", type=int, default=None, help="iterations of the scaling search (6)")
    parser.add_argument("--trial-s", type=float, default=None, help="seconds per trial when scaling (default 1)")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--skip-anytime", action="store_true")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")  # statsmodels/pandas chatter from BOHB's KDE
    seeds = args.seeds or (3 if args.quick else 20)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_scaling:
            worker_scaling(Path(tmp), args.scaling_iterations or (3 if args.quick else 6),
                           args.trial_s or (0.3 if args.quick else 1.0))
        if not args.skip_anytime:
            default = load_ladder(DEFAULT_LADDER)
            rungs = args.rungs.split(",") if args.rungs else [r.name for r in default.rungs]
            cost_cap = args.cost_cap or _reference_cost(args.table, args.reference) * (16 if args.quick else 64)
            hybridbench(Path(tmp), args.table, rungs, args.reference, seeds, cost_cap, Path(args.png), default.eta)
    sys.stdout.flush()
    os._exit(0)  # in-process worker threads of finished searches need no join


if __name__ == "__main__":
    main()
