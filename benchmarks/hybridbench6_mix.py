"""MAD and pretraining mixed: how a sum of the two rungs' losses ranks against the reference.

Reads the shipped HybridBench-6 table (no evaluation). For each pretraining rung P, the mixed
score of a pattern is ``loss_P + w * loss_mad-quick`` with ``w`` = the ratio of the two rungs'
standard deviations over the 64 patterns (puts the MAD loss on the pretraining loss's scale; it
is fitted on this table, so the figures are optimistic by that much). Prints one line per figure:

- ``mix_weight[P]``: ``w``;
- ``mix_spearman_one_seed[P]``: mean over seeds s of the Spearman between the mix of the two rungs'
  seed-s rows and the reference's seed means (what one evaluation of each part scores);
- ``mix_spearman_seed_means[P]``: the same on each rung's three-seed means;
- ``mix_cpu_s[P]``: the two rungs' median CPU seconds per evaluation, summed; and the same
  figures of P alone (``alone_*``), as the baseline.

    python benchmarks/hybridbench6_mix.py
"""

from __future__ import annotations

import argparse

import numpy as np

from composer_automl.calibrate.stats import losses_by_seed, median_cost, seed_means, spearman
from composer_automl.table import ok_rows, read_rows
from composer_automl.rungs.tabular import table_path

MAD_RUNG = "mad-quick"


def mixed_figures(rows, pretrain: str, reference: str) -> dict[str, float]:
    """Weight, per-seed and seed-mean Spearman against ``reference`` of pretrain + w · MAD, and of pretrain alone."""
    ref = seed_means(rows, reference)
    patterns = sorted(ref)
    target = np.array([ref[p] for p in patterns])
    pre, mad = seed_means(rows, pretrain), seed_means(rows, MAD_RUNG)
    weight = float(np.std([pre[p] for p in patterns]) / np.std([mad[p] for p in patterns]))

    def rho(a: dict[str, float], b: dict[str, float] | None = None) -> float:
        return spearman(np.array([a[p] + (weight * b[p] if b else 0.0) for p in patterns]), target)

    pre_seeds, mad_seeds = losses_by_seed(rows, pretrain), losses_by_seed(rows, MAD_RUNG)
    seeds = sorted(set(pre_seeds) & set(mad_seeds))
    return {
        "mix_weight": weight,
        "mix_spearman_one_seed": float(np.mean([rho(pre_seeds[s], mad_seeds[s]) for s in seeds])),
        "mix_spearman_seed_means": rho(pre, mad),
        "mix_cpu_s": median_cost(rows, pretrain, "cpu_time_s") + median_cost(rows, MAD_RUNG, "cpu_time_s"),
        "alone_spearman_one_seed": float(np.mean([rho(pre_seeds[s]) for s in seeds])),
        "alone_spearman_seed_means": rho(pre),
        "alone_cpu_s": median_cost(rows, pretrain, "cpu_time_s"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="hybridbench6", help="calibration table (shipped name or path)")
    parser.add_argument("--pretrain", default="pretrain-narrow-b4,pretrain-tiny-b4", help="comma-separated rungs")
    parser.add_argument("--reference", default="pretrain-ref")
    args = parser.parse_args(argv)
    rows = ok_rows(read_rows(table_path(args.table)))
    pretrain_rungs = args.pretrain.split(",")
    recorded = sorted({r.rung for r in rows})
    unknown = [r for r in [*pretrain_rungs, MAD_RUNG, args.reference] if r not in recorded]
    if unknown:
        parser.error(f"rung(s) {unknown} not in {table_path(args.table)}; it has {recorded}")
    print(f"table: {table_path(args.table)}; mixed with {MAD_RUNG}; reference {args.reference}; CPU seconds per evaluation")
    for pretrain in pretrain_rungs:
        for name, value in mixed_figures(rows, pretrain, args.reference).items():
            print(f"{name}[{pretrain}]: {value:.3f}")


if __name__ == "__main__":
    main()
