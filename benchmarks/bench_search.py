"""Search benchmarks: worker scaling, and optimizers compared on HybridBench-6 and HybridBench-16.

Prints one ``name: value`` line per figure.

**Worker scaling** (``--only scaling``): ``search_wall_s_1_worker`` / ``search_wall_s_2_workers``, the wall time
of one whole ``run_search`` (BOHB, seed 0, the simulated ladder on 6-layer patterns, every trial sleeping a fixed
``--trial-s``, 1 torch thread per worker) with one and with two worker processes, and ``worker_scaling_2_vs_1``,
their ratio (ideal 2).

**Optimizers** (``--only hybridbench6,hybridbench16``). Every search is a real ``run_search`` (real hpbandster
or SMAC3 proposals, real worker, real run directory) on a ladder whose evaluations answer at once with a
recorded or predicted loss, and report a recorded or predicted wall time as their cost. Cost is the sum of
those wall times in the order the search finished its trials (one worker). Per benchmark:

- HybridBench-6 (``fidelity=hybridbench6``: the shipped table replayed by ``tabular`` rungs): the default
  ladder's rungs with the reference rung (``pretrain-ref``) on top; target: the reference's 3 best patterns
  (seed means); regret: the incumbent's reference seed-mean loss minus the best. The ``mad`` ladder puts the
  MAD + pretraining blend (``fidelity/mad-narrow-b4.yaml``, its weight chosen by cross-validation:
  ``benchmarks/hybridbench6_mix.py``) where the default ladder has ``pretrain-narrow-b4``.
- HybridBench-16 (``fidelity=hybridbench16``: ``surrogate`` rungs fitted on the shipped HybridBench-16 table,
  65,534 patterns): the default ladder's two rungs; target: the top-rung surrogate's best 1 % of all patterns
  (predicted means); regret: the incumbent's predicted mean minus the best.

Methods: ``bohb`` (``search.bohb.*`` defaults), ``hyperband``, ``random`` (top budget only), ``bo`` (BOHB with
the top rung as its only budget), ``smac`` (SMAC3's multi-fidelity facade on the same ladder and workers). Each
runs ``--seeds`` searches (seeds 0, 1, ...), each search until it has spent ``--cost-cap`` top-rung evaluations'
worth of cost. Lines: ``cost_to_target[<benchmark>/<ladder>/<method>]: median s [IQR lo-hi] (reached in k/n)``
(a search that never evaluates a target at the top budget counts as infinite); ``cost_ratio_vs_random[...]``:
that median over random search's on the same benchmark, with a 95 % bootstrap interval over seeds (goal for BOHB:
<= 0.33);
``final_regret[...]``: median regret at the cost cap; ``model_picks[...]``: median configurations proposed by
the optimizer's model per search; ``top10_share[...]``: median share of a search's top-budget evaluations (within
the cap) that are among the benchmark's best 10 % of patterns (how much the optimizer concentrates the search;
uniform sampling: about 0.1); ``anytime_regret_png``: median and IQR of the regret against cost.

Each finished search is a line of ``<out>/searches.jsonl``; ``--resume`` reuses the searches already there (a
torn last line is set aside), so an interrupted run continues where it stopped.

    python benchmarks/bench_search.py --out bench_search_out           # ~1.5 h on 2 cores
    python benchmarks/bench_search.py --quick --out /tmp/bs            # a smoke test, ~2 min
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import itertools
import json
import logging
import math
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from composer_automl.adapters.hpbandster import bracket
from composer_automl.engine.ladder import Ladder, ladder_from_mapping, load_ladder
from composer_automl.engine.worker import serve
from composer_automl.config import load_yaml
from composer_automl.files import append_jsonl, read_jsonl, repair_torn_tail
from composer_automl.paths import group_dir
from composer_automl.patterns import Pattern
from composer_automl.search.results import TrialRecord, read_trials
from composer_automl.search.run import SearchSettings, run_search
from composer_automl.spaces import SearchSpace, load_space, space_from_mapping

METHODS: dict[str, tuple[str, str]] = {
    "bohb": ("bohb", "multi"),
    "hyperband": ("hyperband", "multi"),
    "random": ("random", "multi"),
    "bo": ("bohb", "single"),
    "smac": ("smac", "multi"),
}
"""Method → (``search.optimizer``, ladder): ``single`` is the top rung as the only budget."""

PLAN: dict[str, list[tuple[str, str]]] = {
    "hybridbench6": [("default", m) for m in METHODS] + [("mad", "bohb"), ("mad", "hyperband")],
    "hybridbench16": [("default", m) for m in METHODS],
}
"""Benchmark → the (ladder, method) pairs it runs (``mad``: the MAD-bottom ladder of HybridBench-6)."""

GOOD_FRACTION = 0.1
"""The share of a benchmark's patterns counted as good by ``top10_share``."""

COST_CAP = {"hybridbench6": 32, "hybridbench16": 256}
"""Default cost cap per search, in top-rung evaluations (random search needs about 16 for a top-3 pattern of
HybridBench-6's 64 and about 69 for a 1 % target of HybridBench-16)."""


# -- benchmarks ------------------------------------------------------------------------------------------------


@dataclass
class Benchmark:
    """A search space, its ladders, the target patterns and the regret of a pattern."""

    name: str
    space: SearchSpace
    ladders: dict[str, Ladder]
    """``default`` (and ``mad``) multi-fidelity ladders, ``single``: the top rung alone."""
    targets: frozenset[str]
    good: frozenset[str]
    """The best 10 % of patterns (``top10_share``)."""
    regret: Callable[[str], float]
    top_cost_s: float
    """Median cost of one top-rung evaluation (the unit of the cost cap)."""
    description: str


def ladder_of(name: str, rungs: list[dict], eta: float) -> Ladder:
    """A ladder of inline rung configs at budgets 1, eta, eta², ..."""
    entries = [{"budget": eta**i, "rung": rung["rung"], "rung_config": rung["config"]} for i, rung in enumerate(rungs)]
    return ladder_from_mapping(name, {"kind": "ladder", "eta": eta, "rungs": entries})


def tabular(table: str, rung: str) -> dict:
    return {"rung": rung, "config": {"kind": "tabular", "table": table, "rung": rung}}


def hybridbench6(table: str = "hybridbench6", reference: str = "pretrain-ref") -> Benchmark:
    from composer_automl.calibrate.stats import median_cost, seed_means
    from composer_automl.rungs.registry import read_rung_file
    from composer_automl.rungs.tabular import table_path
    from composer_automl.table import read_rows

    rows = read_rows(table_path(table))
    default = load_ladder("default")
    below = [tabular(table, r.name) for r in default.rungs]
    blend = read_rung_file("mad-narrow-b4")
    parts = [{"rung": p["rung"], "weight": p["weight"], "config": tabular(table, p["rung"])["config"]}
             for p in blend["parts"]]
    mad_bottom = {"rung": "mad-narrow-b4", "config": {"kind": "blend", "parts": parts}}
    top = tabular(table, reference)
    ladders = {"default": ladder_of("hybridbench6", [*below, top], default.eta),
               "mad": ladder_of("hybridbench6-mad", [mad_bottom, *below[1:], top], default.eta),
               "single": ladder_of("hybridbench6-single", [top], default.eta)}
    ref = seed_means(rows, reference)
    best = min(ref.values())
    ranked = sorted(ref, key=ref.get)
    weights = " + ".join(f"{p['weight']:g}·{p['rung']}" for p in parts)
    return Benchmark("hybridbench6", space_from_mapping({"strategy": "one-shot", "n_layers": 6}), ladders,
                     frozenset(ranked[:3]), frozenset(ranked[:math.ceil(GOOD_FRACTION * len(ranked))]),
                     lambda p: ref[p] - best,
                     median_cost(rows, reference), f"table {table_path(table)} ({len(ref)} patterns); ladders: "
                     f"default {[r.name for r in ladders['default'].rungs]}, mad [{weights}, ...]; target: the 3 "
                     f"best of {reference}")


def hybridbench16(table: str | None = None, fraction: float = 0.01) -> Benchmark:
    import numpy as np

    shipped = load_yaml(group_dir("fidelity") / "hybridbench16.yaml")
    rungs = [{"rung": r["rung"], "config": {**r["rung_config"], **({"table": table} if table else {})}}
             for r in shipped["rungs"]]
    ladders = {"default": ladder_of("hybridbench16", rungs, shipped["eta"]),
               "single": ladder_of("hybridbench16-single", rungs[-1:], shipped["eta"])}
    space = load_space("one-shot-16")
    patterns = [str(p) for p in space.patterns()]
    fitted = ladders["default"].rungs[-1].config.fitted()
    predicted = fitted.predict(patterns)
    means = dict(zip(patterns, predicted.tolist()))
    best = float(predicted.min())
    n_target = math.ceil(fraction * len(patterns))
    order = np.argsort(predicted, kind="stable")
    targets = frozenset(patterns[i] for i in order[:n_target])
    good = frozenset(patterns[i] for i in order[:math.ceil(GOOD_FRACTION * len(patterns))])
    costs = [fitted.cost(p) for p in patterns]
    return Benchmark("hybridbench16", space, ladders, targets, good, lambda p: means[p] - best, float(np.median(costs)),
                     f"surrogates of {[r['config']['rung'] for r in rungs]} ({fitted.model.__class__.__name__}); "
                     f"{len(patterns)} patterns; target: the top rung's best {n_target} ({fraction:.0%})")


@functools.lru_cache(maxsize=None)
def benchmark(name: str, hb16_table: str | None) -> Benchmark:
    return hybridbench6() if name == "hybridbench6" else hybridbench16(hb16_table)


# -- one search ------------------------------------------------------------------------------------------------


def iteration_cost(optimizer: str, ladder: Ladder, cost: dict[float, float]) -> float:
    """Mean cost of one successive-halving bracket of ``optimizer`` (to size a search to the cost cap)."""
    kind = "bohb" if optimizer == "smac" else optimizer
    n_brackets = len(ladder.budgets)
    total = 0.0
    for i in range(n_brackets):
        n_configs, budgets = bracket(kind, i, list(ladder.budgets), ladder.eta)
        total += sum(n * cost[b] for n, b in zip(n_configs, budgets))
    return total / n_brackets


def rung_costs(bench: Benchmark, ladder: Ladder, sample: int = 256) -> dict[float, float]:
    """Budget → median cost of an evaluation on a sample of patterns (seed 0)."""
    bench.space.configspace.seed(0)
    patterns = [bench.space.to_pattern(c) for c in bench.space.sample(sample)]
    return {budget: statistics.median(rung(p, None, Path(tempfile.gettempdir()), 0).wall_time_s for p in patterns)
            for budget, rung in zip(ladder.budgets, ladder.rungs)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _quiet_serve(nameserver: str, run_id: str) -> None:
    """An in-process worker; errors after its search ended (nameserver gone) are irrelevant here."""
    with contextlib.suppress(Exception):
        serve(nameserver, run_id, wait_s=60)


def run_quiet_search(settings: SearchSettings, space: SearchSpace, ladder: Ladder, run_dir: Path,
                     in_process_worker: bool = False) -> tuple[list[TrialRecord], float]:
    """One search with its output swallowed → (its records, wall seconds of the ``run_search`` call).

    With ``in_process_worker`` (and ``n_workers=0``) a worker thread in this process serves it.
    """
    if in_process_worker:
        settings.port, settings.run_id = _free_port(), f"bench{time.monotonic_ns()}"
        threading.Thread(target=_quiet_serve, args=(f"127.0.0.1:{settings.port}", settings.run_id),
                         daemon=True).start()
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        run_search(settings, space, ladder, run_dir)
    return read_trials(run_dir), time.perf_counter() - start


def charged(records: list[TrialRecord]) -> list[tuple[float, TrialRecord]]:
    """(cost spent once the trial finished, trial) in finishing order."""
    spent, out = 0.0, []
    for r in sorted(records, key=lambda r: (r.elapsed_s, r.seq or 0)):
        spent += r.wall_time_s
        out.append((spent, r))
    return out


def at_top(r: TrialRecord, top_budget: float) -> bool:
    return r.status == "ok" and math.isclose(r.budget, top_budget)


def incumbent_curve(records: list[TrialRecord], top_budget: float, regret: Callable[[str], float]) -> list[list[float]]:
    """[cumulative cost, regret of the incumbent] after each trial, in finishing order (regret inf before the
    first top-budget result; the incumbent is the best loss observed at the top budget)."""
    best_loss, current, curve = math.inf, math.inf, []
    for spent, r in charged(records):
        if at_top(r, top_budget) and r.loss < best_loss:
            best_loss, current = r.loss, regret(r.pattern)
        curve.append([spent, current])
    return curve


def cost_to_targets(records: list[TrialRecord], top_budget: float, targets: frozenset[str]) -> float:
    """Cost spent when a target pattern is first evaluated at the top budget (inf if never)."""
    return next((spent for spent, r in charged(records) if at_top(r, top_budget) and r.pattern in targets), math.inf)


def top_share(records: list[TrialRecord], top_budget: float, good: frozenset[str], cap: float) -> float:
    """Share of the top-budget evaluations finished within ``cap`` whose pattern is in ``good`` (NaN: none)."""
    hits = [r.pattern in good for spent, r in charged(records) if spent <= cap and at_top(r, top_budget)]
    return sum(hits) / len(hits) if hits else math.nan


@dataclass(frozen=True)
class Task:
    benchmark: str
    ladder: str
    method: str
    seed: int
    cost_cap: float
    """In top-rung evaluations."""
    hb16_table: str | None = None
    bohb: tuple[tuple[str, float], ...] = ()
    """``search.bohb.*`` overrides (empty: the shipped defaults)."""

    @property
    def key(self) -> str:
        bohb = ",".join(f"{k}={v:g}" for k, v in self.bohb)
        return f"{self.benchmark}/{self.ladder}/{self.method}/{self.seed}" + (f"/{bohb}" if bohb else "")


def run_task(task: Task) -> dict:
    """Run one search of ``task`` → its line of ``searches.jsonl``."""
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")  # statsmodels chatter from BOHB's KDE
    bench = benchmark(task.benchmark, task.hb16_table)
    optimizer, which = METHODS[task.method]
    ladder = bench.ladders["single" if which == "single" else task.ladder]
    cap = task.cost_cap * bench.top_cost_s
    iterations = max(1, math.ceil(1.3 * cap / iteration_cost(optimizer, ladder, rung_costs(bench, ladder))))
    settings = SearchSettings(optimizer=optimizer, n_workers=0, min_workers=1, n_iterations=iterations,
                              seed=task.seed, ping_interval_s=1)
    for name, value in task.bohb:
        setattr(settings.bohb, name, type(getattr(settings.bohb, name) or 0)(value))
    with tempfile.TemporaryDirectory() as tmp:
        records, wall = run_quiet_search(settings, bench.space, ladder, Path(tmp) / "run", in_process_worker=True)
    curve = incumbent_curve(records, ladder.max_budget, bench.regret)
    model_configs = {r.trial_id.split("@")[0] for r in records if r.model_based_pick}
    return {"key": task.key, "benchmark": task.benchmark, "ladder": task.ladder, "method": task.method,
            "seed": task.seed, "bohb": dict(task.bohb), "cost_cap_s": cap, "n_trials": len(records),
            "model_picks": len(model_configs), "wall_s": round(wall, 2),
            "cost_to_target": cost_to_targets(records, ladder.max_budget, bench.targets),
            "top10_share": round(top_share(records, ladder.max_budget, bench.good, cap), 4),
            "curve": [[round(c, 1), round(r, 5)] for c, r in curve if c <= cap * 1.05]}


# -- figures ---------------------------------------------------------------------------------------------------


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """(first quartile, median, third quartile); infinite values sort last."""
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) > 1 else [ordered[0]] * 3
    return q[0], statistics.median(ordered), q[2]


def regret_at(curve: list[list[float]], cost: float) -> float:
    regret = math.inf
    for spent, r in curve:
        if spent > cost:
            break
        regret = r
    return regret


def ratio_interval(costs: list[float], random_costs: list[float], n: int = 2000) -> tuple[float, float]:
    """95 % bootstrap interval of median(costs) / median(random_costs), resampling each method's seeds (seeded)."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = np.sort(costs), np.sort(random_costs)  # the same seeds in any order: the same interval
    with np.errstate(invalid="ignore"):  # inf / inf: both medians never reached
        ratios = (np.median(rng.choice(a, (n, len(a))), axis=1) / np.median(rng.choice(b, (n, len(b))), axis=1))
    lo, hi = np.quantile(np.nan_to_num(ratios, nan=np.inf, posinf=np.inf), [0.025, 0.975], method="inverted_cdf")
    return float(lo), float(hi)


def report(results: list[dict], png: Path | None) -> None:
    """The figure lines of every (benchmark, ladder, method, bohb settings) group, and the anytime plot."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["benchmark"], r["ladder"], r["method"], json.dumps(r["bohb"], sort_keys=True)), []).append(r)
    random_costs = {}
    for (bench, ladder, method, bohb), runs in sorted(groups.items()):
        label = f"{bench}/{ladder}/{method}" + ("" if bohb == "{}" else f"/{bohb}")
        needed = [r["cost_to_target"] for r in runs]
        lo, mid, hi = quartiles(needed)
        reached = sum(math.isfinite(x) for x in needed)
        if method == "random" and ladder == "default" and bohb == "{}":
            random_costs[bench] = needed
        print(f"cost_to_target[{label}]: {mid:.0f} s [IQR {lo:.0f}-{hi:.0f}] (reached in {reached}/{len(runs)})")
        print(f"final_regret[{label}]: {statistics.median(regret_at(r['curve'], r['cost_cap_s']) for r in runs):.4f}")
        print(f"model_picks[{label}]: {statistics.median(r['model_picks'] for r in runs):.0f} "
              f"(of {statistics.median(r['n_trials'] for r in runs):.0f} trials)")
        if all("top10_share" in r for r in runs):  # searches recorded before it was measured have none
            lo, mid, hi = quartiles([r["top10_share"] for r in runs])
            print(f"top10_share[{label}]: {mid:.2f} [IQR {lo:.2f}-{hi:.2f}]")
    for (bench, ladder, method, bohb), runs in sorted(groups.items()):
        if bench in random_costs and (method, ladder, bohb) != ("random", "default", "{}"):
            label = f"{bench}/{ladder}/{method}" + ("" if bohb == "{}" else f"/{bohb}")
            needed = [r["cost_to_target"] for r in runs]
            ratio = quartiles(needed)[1] / quartiles(random_costs[bench])[1]
            lo, hi = ratio_interval(needed, random_costs[bench])
            print(f"cost_ratio_vs_random[{label}]: {ratio:.2f} [95 % bootstrap {lo:.2f}-{hi:.2f}]")
    if png is not None:
        plot(groups, png)
        print(f"anytime_regret_png: {png}")


def plot(groups: dict[tuple, list[dict]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    benches = sorted({key[0] for key in groups})
    fig, axes = plt.subplots(1, len(benches), figsize=(7 * len(benches), 4.5), squeeze=False)
    for ax, bench in zip(axes[0], benches):
        for (b, ladder, method, bohb), runs in sorted(groups.items()):
            if b != bench:
                continue
            cap = runs[0]["cost_cap_s"]
            grid = np.linspace(0, cap, 200)
            values = np.array([[regret_at(r["curve"], t) for t in grid] for r in runs])
            values = np.where(np.isfinite(values), values, np.nan)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns before a first result
                lo, mid, hi = (np.nanpercentile(values, q, axis=0) for q in (25, 50, 75))
            label = method if ladder == "default" else f"{method} ({ladder} ladder)"
            ax.plot(grid / 3600, mid, label=label + ("" if bohb == "{}" else f" {bohb}"))
            ax.fill_between(grid / 3600, lo, hi, alpha=0.15)
        ax.set_xlabel("cost (hours of evaluation time, 1 worker)")
        ax.set_ylabel("regret of the incumbent (loss, nats)")
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_title(f"{bench}: median and IQR over seeds")
        ax.legend(fontsize=8)
    fig.savefig(png, dpi=110, bbox_inches="tight")


# -- worker scaling --------------------------------------------------------------------------------------------


def worker_scaling(root: Path, iterations: int, trial_s: float) -> None:
    base = load_ladder("simulated-ladder").mapping
    rungs = [{**r, "rung_config": {**r["rung_config"], "sleep_s": trial_s}} for r in base["rungs"]]
    ladder = ladder_from_mapping("bench", {**base, "rungs": rungs})
    space = space_from_mapping({"strategy": "one-shot", "n_layers": 6})
    walls, counts = {}, {}
    for n_workers in (1, 2):
        settings = SearchSettings(n_workers=n_workers, n_iterations=iterations, seed=0, threads_per_worker=1,
                                  ping_interval_s=1)
        records, walls[n_workers] = run_quiet_search(settings, space, ladder, root / f"scaling-{n_workers}")
        counts[n_workers] = len(records)
        label = "1_worker" if n_workers == 1 else f"{n_workers}_workers"
        print(f"search_wall_s_{label}: {walls[n_workers]:.1f} ({len(records)} trials of {trial_s:g} s)", flush=True)
    assert counts[1] == counts[2], f"the two searches ran different trial counts: {counts}"
    print(f"worker_scaling_2_vs_1: {walls[1] / walls[2]:.2f}", flush=True)


# -- command line ----------------------------------------------------------------------------------------------


def parse_bohb(text: str | None) -> tuple[tuple[str, float], ...]:
    if not text:
        return ()
    pairs = [item.split("=", 1) for item in text.split(",")]
    return tuple(sorted((k.strip(), float(v)) for k, v in pairs))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="scaling,hybridbench6,hybridbench16",
                        help="comma-separated sections: scaling, hybridbench6, hybridbench16")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"subset of {list(METHODS)}")
    parser.add_argument("--ladders", default="default,mad", help="ladders to run (mad: HybridBench-6 only)")
    parser.add_argument("--seeds", type=int, default=None, help="searches per method (default 30; 3 with --quick)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed ... (tuning uses other seeds)")
    parser.add_argument("--cost-cap", type=float, default=None, help="top-rung evaluations' cost per search "
                        f"(default {COST_CAP})")
    parser.add_argument("--bohb", default=None, help="search.bohb.* overrides for bohb/bo, e.g. "
                        "'random_fraction=0.2,top_n_percent=10' (default: the shipped defaults)")
    parser.add_argument("--hb16-table", default=None, help="HybridBench-16 table (default: the shipped one)")
    parser.add_argument("--out", default="bench_search_out", help="folder of searches.jsonl and the PNG")
    parser.add_argument("--resume", action="store_true", help="reuse the searches already in --out")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="searches run at once")
    parser.add_argument("--quick", action="store_true", help="3 seeds, small cost caps, 0.3 s scaling trials")
    parser.add_argument("--trial-s", type=float, default=None, help="seconds per scaling trial (default 1)")
    args = parser.parse_args(argv)
    sections = args.only.split(",")
    unknown = sorted(set(sections) - {"scaling", *PLAN})
    if unknown:
        parser.error(f"--only {unknown}: allowed {['scaling', *PLAN]}")
    methods = args.methods.split(",")
    if set(methods) - set(METHODS):
        parser.error(f"--methods {sorted(set(methods) - set(METHODS))}: allowed {list(METHODS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "searches.jsonl"
    if log.exists() and log.stat().st_size and not args.resume:
        parser.error(f"{log} holds searches already; pass --resume to reuse them or choose another --out")
    if args.resume and (torn := repair_torn_tail(log)):
        print(f"warning: {torn}", flush=True)
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    if "scaling" in sections:
        with tempfile.TemporaryDirectory() as tmp:
            worker_scaling(Path(tmp), 3 if args.quick else 6, args.trial_s or (0.3 if args.quick else 1.0))
    seeds = args.seeds or (3 if args.quick else 30)
    bohb = parse_bohb(args.bohb)
    tasks = []
    for name in (s for s in sections if s in PLAN):
        cap = args.cost_cap or (COST_CAP[name] / 4 if args.quick else COST_CAP[name])
        print(f"{name}: {benchmark(name, args.hb16_table).description}; cost cap {cap:g} top-rung evaluations; "
              f"{seeds} seeds from {args.first_seed}", flush=True)
        for (ladder, method), seed in itertools.product(PLAN[name], range(args.first_seed, args.first_seed + seeds)):
            if method in methods and ladder in args.ladders.split(","):
                tasks.append(Task(name, ladder, method, seed, cap, args.hb16_table,
                                  bohb if METHODS[method][0] == "bohb" else ()))
    done = {r["key"]: r for r in read_jsonl(log)} if log.exists() else {}
    todo = [t for t in tasks if t.key not in done]
    if done:
        print(f"resuming: {len(tasks) - len(todo)} of {len(tasks)} searches done", flush=True)
    results = [done[t.key] for t in tasks if t.key in done]
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(max(1, args.workers)) as pool:
        for i, result in enumerate(pool.imap_unordered(run_task, todo), 1):
            append_jsonl(log, result)
            results.append(result)
            print(f"[search {i}/{len(todo)}] {result['key']}: {result['n_trials']} trials, cost to target "
                  f"{result['cost_to_target']:.0f} s, {result['wall_s']:.0f} s wall "
                  f"({(time.perf_counter() - start) / i * (len(todo) - i) / 60:.0f} min left)", flush=True)
    if results:
        report(results, out / "anytime_regret.png")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
