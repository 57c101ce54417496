"""A search worker's fixed cost per trial: its first trial against later ones, per way of compiling, and rung costs.

    python benchmarks/bench_trial_overhead.py [--trials 4] [--steps 16]        # on a GPU
    python benchmarks/bench_trial_overhead.py --rung-costs                     # + cost_s of the GPU ladder's rungs
    python benchmarks/bench_trial_overhead.py --accelerator cpu --smoke        # the same code on CPU

A search worker is a long-lived process: it pays CUDA's start-up, the corpus's opening and, with ``compile: true``,
Inductor's compilation on its first trial, and what a later trial pays again is the per-trial fixed cost. For
each mode a fresh worker process (``python -m``, like the engine's local workers) evaluates ``--trials``
distinct 16-layer patterns through the worker's own ``Evaluator`` on the GPU ladder's ``gpu-search`` rung (its
width, batch and precision; shortened to ``--steps`` optimizer steps, so that the fixed cost dominates):

- ``eager``: ``compile: false``;
- ``layers``: ``compile: true`` as shipped: each layer compiled, one graph per layer kind and width, shared by
  every later model of the worker;
- ``model``: the whole model compiled per trial (what ``compile: true`` did before: every new pattern is a new
  graph).

Lines: ``trial_s_first[MODE]``, ``trial_s_later[MODE]`` (median of the trials after the first),
``trial_s_later[layers]_vs_[model]`` and ``trial_s_later[layers]_vs_[eager]`` (ratios measured in this run).
``--rung-costs`` then times full-length trials of ``gpu-narrow`` and ``gpu-search`` in one worker (compiled
layers, the first trial discarded): ``rung_cost_s[RUNG]``, the median seconds a rung file's ``cost_s`` states.
On CPU (``--accelerator cpu``) the rung runs in fp32 with short windows: a check of the code path, not a
GPU figure. Without a CUDA device (and ``--accelerator gpu``) it prints ``skipped`` and exits 0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PATTERNS = ("AMAMAMAMAMAMAMAM", "AAMMMAMMAAMMMAMM", "MAMMAAMMMAMAMMAA", "AMMMAMMMAMMMAMMM", "AAAMMMMMAAMMMMMM",
            "MMAMAMAAMMMAMAMM")
"""Distinct 16-layer patterns, one per trial (the first is the Llama pattern)."""

MODES = ("eager", "layers", "model")


def rung_mapping(name: str, accelerator: str, steps: int | None, smoke: bool) -> dict:
    """The resolved one-rung ladder of ``name`` on ``accelerator``, shortened to ``steps`` optimizer steps."""
    from composer_automl.engine.ladder import load_ladder

    mapping = load_ladder(name).mapping
    config = dict(mapping["rungs"][0]["rung_config"])
    if accelerator == "cpu":
        config.update(accelerator="cpu", precision="32-true", seq_len=64 if smoke else 128, batch_size=4)
    if steps:
        config.update(train_tokens=steps * config["batch_size"] * config["seq_len"],
                      valid_tokens=4 * config["seq_len"])
    return {**mapping, "rungs": [{**mapping["rungs"][0], "rung_config": config}]}


def worker(mapping: dict, mode: str, patterns: list[str], out_dir: Path) -> list[float]:
    """In a worker process: evaluate ``patterns`` one after another → each trial's wall seconds."""
    from composer_automl.engine.ladder import ladder_from_mapping
    from composer_automl.engine.worker import Evaluator
    from composer_automl.model import HybridLM
    from composer_automl.quiet import install_cli_warning_filters

    install_cli_warning_filters()
    config = mapping["rungs"][0]["rung_config"]
    config["compile"] = mode != "eager"
    if mode == "model":  # the former compile: the whole model, a new graph for every pattern
        HybridLM.compile_layers = lambda self, backend="inductor": self.compile(backend=backend)
    evaluate = Evaluator(ladder_from_mapping("bench", mapping), out_dir)
    walls = []
    for i, pattern in enumerate(patterns):
        start = time.perf_counter()
        evaluate((0, 0, i), pattern, {}, 1.0, seed=0)
        walls.append(time.perf_counter() - start)
    return walls


def in_worker(mapping: dict, mode: str, patterns: list[str]) -> list[float]:
    """Run :func:`worker` in a fresh process (a new worker: nothing compiled, nothing cached in memory)."""
    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "job.json"
        job.write_text(json.dumps({"mapping": mapping, "mode": mode, "patterns": patterns, "out": tmp}))
        proc = subprocess.run([sys.executable, __file__, "--worker-job", str(job)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"worker ({mode}) failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accelerator", choices=("gpu", "cpu"), default="gpu")
    parser.add_argument("--trials", type=int, default=4, help="patterns per worker (first + later ones)")
    parser.add_argument("--steps", type=int, default=16, help="optimizer steps per trial")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {MODES}")
    parser.add_argument("--rung-costs", action="store_true", help="also time full-length trials of the GPU ladder")
    parser.add_argument("--smoke", action="store_true", help="2 trials of 2 steps, short windows (a path check)")
    parser.add_argument("--worker-job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_job:
        job = json.loads(Path(args.worker_job).read_text())
        print(json.dumps(worker(job["mapping"], job["mode"], job["patterns"], Path(job["out"]))))
        return 0
    modes = [m for m in args.modes.split(",") if m]
    if set(modes) - set(MODES) or not modes or not 2 <= args.trials <= len(PATTERNS):
        print(f"error: --modes must be a comma-separated subset of {MODES} (got {args.modes!r}) and --trials "
              f"in [2, {len(PATTERNS)}] (got {args.trials})", file=sys.stderr)
        return 2
    if args.accelerator == "gpu":
        import torch

        if not torch.cuda.is_available():
            print("skipped: no CUDA device (bench_trial_overhead measures GPU search workers)")
            return 0
        device = f"{torch.cuda.get_device_name(0)}, bf16-mixed"
    else:
        device = "CPU, fp32 (a path check, not a GPU figure)"
    trials, steps = (2, 2) if args.smoke else (args.trials, args.steps)
    patterns = list(PATTERNS[:trials])
    mapping = rung_mapping("gpu-search", args.accelerator, steps, args.smoke)
    config = mapping["rungs"][0]["rung_config"]
    print(f"# {device}; gpu-search rung at search width, {steps} steps of {config['batch_size']} x "
          f"{config['seq_len']} tokens per trial, {trials} 16-layer patterns per worker", flush=True)
    later = {}
    for mode in modes:
        walls = in_worker(mapping, mode, patterns)
        later[mode] = statistics.median(walls[1:])
        print(f"trial_s_first[{mode}]: {walls[0]:.2f}", flush=True)
        print(f"trial_s_later[{mode}]: {later[mode]:.2f}", flush=True)
    for baseline in ("model", "eager"):
        if "layers" in later and baseline in later:
            print(f"trial_s_later[layers]_vs_[{baseline}]: {later['layers'] / later[baseline]:.3f}", flush=True)
    if args.rung_costs:
        for rung in ("gpu-narrow", "gpu-search"):
            full = rung_mapping(rung, args.accelerator, 2 if args.smoke else None, args.smoke)
            walls = in_worker(full, "layers", list(PATTERNS[:3]))
            print(f"rung_cost_s[{rung}]: {statistics.median(walls[1:]):.1f} (first trial {walls[0]:.1f} s)",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
