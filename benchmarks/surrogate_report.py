"""How well a ``surrogate`` rung ranks patterns it was not fitted on: k-fold cross-validation over patterns.

For each rung of a calibration table and each regressor of :data:`~composer_automl.rungs.surrogate.MODELS`,
every fold's patterns are predicted by a model fitted on the other folds only (``cross_validate``); the
figures are held out. Prints, per ``<table>/<rung>/<model>``:

- ``surrogate_spearman`` / ``surrogate_kendall``: held-out rank correlation with the measured seed-mean loss;
- ``surrogate_top5_overlap``: share of the measured best 5 % that the held-out predictions also put there;

and per rung ``seed_noise_std`` (the noise the surrogate adds per seed) and ``n_patterns``. With ``--out`` the
figures are also written as JSON (``surrogate_cv.json`` beside a shipped table). The regressor the
``surrogate`` rung uses by default was chosen on HybridBench-6 (``--table hybridbench6``), so its figures on
HybridBench-16 are not selected on the table they are reported on.

    python benchmarks/surrogate_report.py --table hybridbench16 --out benchmarks/hybridbench16/surrogate_cv.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from composer_automl.config import ConfigError
from composer_automl.rungs.surrogate import MODELS, cross_validate, seed_noise_std
from composer_automl.rungs.tabular import load_table, table_path

FOLDS = 5


def report(table: str, rungs: list[str] | None = None, models: tuple[str, ...] = MODELS, k: int = FOLDS) -> dict:
    """``{"table", "k", "rungs": {rung: {"seed_noise_std", "n_patterns", "models": {model: figures}}}}``."""
    path = table_path(table).resolve()
    out = {"table": table, "k": k, "rungs": {}}
    for rung in rungs or sorted(load_table(path)):
        try:
            figures = {model: cross_validate(path, rung, model, k=k) for model in models}
        except ConfigError as err:  # too few patterns measured at this rung (yet)
            out.setdefault("skipped", {})[rung] = err.message
            continue
        n_patterns = next(iter(figures.values()))["n_patterns"]
        out["rungs"][rung] = {"seed_noise_std": seed_noise_std(path, rung), "n_patterns": n_patterns,
                              "models": figures}
    return out


def print_report(result: dict, name: str) -> None:
    for rung, why in result.get("skipped", {}).items():
        print(f"skipped[{name}/{rung}]: {why}")
    for rung, entry in result["rungs"].items():
        print(f"n_patterns[{name}/{rung}]: {entry['n_patterns']}")
        print(f"seed_noise_std[{name}/{rung}]: {entry['seed_noise_std']:.4f}")
        for model, cv in entry["models"].items():
            label = f"{name}/{rung}/{model}"
            print(f"surrogate_spearman[{label}]: {cv['spearman']:.3f}")
            print(f"surrogate_kendall[{label}]: {cv['kendall']:.3f}")
            print(f"surrogate_top5_overlap[{label}]: {cv['top5_overlap']:.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="hybridbench16", help="a shipped table's name, a table.jsonl or a run dir")
    parser.add_argument("--rungs", default=None, help="comma-separated rungs (default: every rung of the table)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"subset of {list(MODELS)}")
    parser.add_argument("--folds", type=int, default=FOLDS)
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    models = tuple(args.models.split(","))
    if set(models) - set(MODELS):
        parser.error(f"--models {sorted(set(models) - set(MODELS))}: allowed {list(MODELS)}")
    result = report(args.table, args.rungs.split(",") if args.rungs else None, models, args.folds)
    print(f"table: {table_path(args.table).resolve()}; {args.folds}-fold cross-validation over patterns (held-out figures)")
    print_report(result, Path(args.table).stem if args.table.endswith(".jsonl") else Path(args.table).name)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        print(f"written: {args.out}")


if __name__ == "__main__":
    main()
