"""MAD and pretraining mixed in one rung, its weight chosen on held-out data: how the mix ranks against the reference.

Reads the shipped HybridBench-6 table (no evaluation). For a pretraining rung P, the mixed score of a
pattern is ``loss_P + w * loss_mad-quick`` (the ``blend`` rung computes the same up to a constant factor).
The weight ``w`` is chosen by k-fold cross-validation over patterns: on each split's training patterns,
the ``w`` of :data:`WEIGHTS` whose mix of seed means ranks those patterns most like the reference; the
figures are measured on the held-out patterns only, averaged over ``--repeats`` random splits. Prints:

- ``cv_<name>[P]: mean (sd over folds)`` for the held-out Spearman against the reference's seed means of:
  the mix of seed means (``mix_seed_means``), the mix of one seed of each part (``mix_one_seed``, what one
  evaluation scores), P alone (``alone_seed_means``, ``alone_one_seed``) and mad-quick alone
  (``mad_seed_means``); and the held-out Spearman against the ladder's next rung ``--next`` (adjacent
  agreement: ``adjacent_mix``, ``adjacent_alone``);
- ``cv_weight_median[P]``: the weights the training folds chose; ``final_weight[P]``: the weight chosen on
  every pattern (what a shipped blend rung uses; its in-sample figures are not reported);
- ``cpu_s_mix[P]`` / ``cpu_s_alone[P]``: median CPU seconds per evaluation of the mix (both parts) and of P.

    python benchmarks/hybridbench6_mix.py
"""

from __future__ import annotations

import argparse
from statistics import fmean, median, pstdev

import numpy as np

from composer_automl.calibrate.stats import losses_by_seed, median_cost, seed_means, spearman
from composer_automl.rungs.tabular import table_path
from composer_automl.table import ok_rows, read_rows

MAD_RUNG = "mad-quick"
WEIGHTS = (0.0, *np.round(np.logspace(-1, 1.5, 26), 3))
"""Candidate weights of the MAD part (0: the pretraining rung alone)."""


def best_weight(pre: dict[str, float], mad: dict[str, float], ref: dict[str, float], patterns: list[str]) -> float:
    """The weight of :data:`WEIGHTS` whose mix ranks ``patterns`` most like ``ref`` (the smallest on ties)."""
    target = np.array([ref[p] for p in patterns])
    scores = [spearman(np.array([pre[p] + w * mad[p] for p in patterns]), target) for w in WEIGHTS]
    return float(WEIGHTS[int(np.nanargmax(scores))])


def cross_validated(rows, pretrain: str, reference: str, next_rung: str, k: int = 4, repeats: int = 25,
                    seed: int = 0) -> dict[str, list[float]]:
    """Per fold of ``repeats`` random k-fold splits: the weight its training patterns chose and the held-out
    figures (see the module docstring). Only the training patterns ever reach :func:`best_weight`."""
    ref, nxt = seed_means(rows, reference), seed_means(rows, next_rung)
    pre, mad = seed_means(rows, pretrain), seed_means(rows, MAD_RUNG)
    pre_seeds, mad_seeds = losses_by_seed(rows, pretrain), losses_by_seed(rows, MAD_RUNG)
    seeds = sorted(set(pre_seeds) & set(mad_seeds))
    patterns = sorted(set(ref) & set(nxt) & set(pre) & set(mad))
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {name: [] for name in ("weight", "mix_seed_means", "mix_one_seed", "alone_seed_means",
                                                          "alone_one_seed", "mad_seed_means", "adjacent_mix",
                                                          "adjacent_alone")}
    for _ in range(repeats):
        folds = rng.permutation(len(patterns)) % k
        for fold in range(k):
            train = [p for p, f in zip(patterns, folds) if f != fold]
            test = [p for p, f in zip(patterns, folds) if f == fold]
            w = best_weight(pre, mad, ref, train)

            def rho(a: dict, b: dict | None, against: dict) -> float:
                return spearman(np.array([a[p] + (w * b[p] if b is not None else 0.0) for p in test]),
                                np.array([against[p] for p in test]))

            out["weight"].append(w)
            out["mix_seed_means"].append(rho(pre, mad, ref))
            out["mix_one_seed"].append(fmean(rho(pre_seeds[s], mad_seeds[s], ref) for s in seeds))
            out["alone_seed_means"].append(rho(pre, None, ref))
            out["alone_one_seed"].append(fmean(rho(pre_seeds[s], None, ref) for s in seeds))
            out["mad_seed_means"].append(rho(mad, None, ref))
            out["adjacent_mix"].append(rho(pre, mad, nxt))
            out["adjacent_alone"].append(rho(pre, None, nxt))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="hybridbench6", help="calibration table (shipped name or path)")
    parser.add_argument("--pretrain", default="pretrain-narrow-b4", help="comma-separated rungs mixed with mad-quick")
    parser.add_argument("--next", default="pretrain-tiny-b4", help="the ladder's next rung (adjacent agreement)")
    parser.add_argument("--reference", default="pretrain-ref")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=25)
    args = parser.parse_args(argv)
    rows = ok_rows(read_rows(table_path(args.table)))
    pretrain_rungs = args.pretrain.split(",")
    recorded = sorted({r.rung for r in rows})
    unknown = [r for r in [*pretrain_rungs, MAD_RUNG, args.reference, args.next] if r not in recorded]
    if unknown:
        parser.error(f"rung(s) {unknown} not in {table_path(args.table)}; it has {recorded}")
    print(f"table: {table_path(args.table)}; mixed with {MAD_RUNG}; reference {args.reference}; next rung {args.next}; "
          f"{args.folds}-fold cross-validation over patterns, {args.repeats} random splits; CPU seconds per evaluation")
    for pretrain in pretrain_rungs:
        figures = cross_validated(rows, pretrain, args.reference, args.next, args.folds, args.repeats)
        weights = figures.pop("weight")
        for name, values in figures.items():
            print(f"cv_{name}[{pretrain}]: {fmean(values):.3f} ({pstdev(values):.3f})")
        print(f"cv_weight_median[{pretrain}]: {median(weights):.3f}")
        ref, pre, mad = (seed_means(rows, r) for r in (args.reference, pretrain, MAD_RUNG))
        print(f"final_weight[{pretrain}]: {best_weight(pre, mad, ref, sorted(set(ref) & set(pre) & set(mad))):.3f}")
        alone = median_cost(rows, pretrain, "cpu_time_s")
        print(f"cpu_s_mix[{pretrain}]: {alone + median_cost(rows, MAD_RUNG, 'cpu_time_s'):.1f}")
        print(f"cpu_s_alone[{pretrain}]: {alone:.1f}")


if __name__ == "__main__":
    main()
