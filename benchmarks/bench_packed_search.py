"""Packed GPU search: trials per minute with ``search.workers_per_gpu=K`` against one worker per GPU.

    python benchmarks/bench_packed_search.py [--workers-per-gpu 4] [--trials 12]
    python benchmarks/bench_packed_search.py --accelerator cpu --smoke   # the same code on CPU, tiny rung

The same random search (seed 0, ``--trials`` trials, one budget) runs twice through ``run_search``
with its real worker processes: first with one local worker per visible GPU
(``workers_per_gpu=1``), then with K workers sharing each GPU (``workers_per_gpu=K``; each
worker sees only its GPU and may allocate 1/K of its memory). The rung is the GPU ladder's bottom rung
``gpu-narrow`` (the embedded standard-library corpus, byte tokens, half the search width, 32 x 512 tokens per
step, layers compiled once per worker) in ``--precision`` with ``--train-tokens`` tokens: a trial at search width
uses a fraction of a GPU, which is what packing recovers. Prints ``name: value`` lines:

- ``packed_search_wall_s[wpg=K]``: wall time of the whole ``run_search`` call (worker start-up,
  every trial, shutdown);
- ``packed_trials_per_min[wpg=K]``: trials over that wall time;
- ``packed_trial_s_median[wpg=K]``: median seconds of one trial as its worker timed it (process
  already up: Trainer, dataset, model build, training, validation);
- ``packed_search_throughput[wpg=K]_vs_[wpg=1]``: the trials-per-minute ratio (goal: > 1; ideal K
  while the GPU has room).

Each worker gets the default CPU threads (cores / n_workers). On CPU (``--accelerator cpu``)
``workers_per_gpu`` has nothing to share: the second search runs K workers, a check of the path,
not a GPU figure. Without a CUDA device (and
``--accelerator gpu``) it prints ``skipped`` and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path


def rung_ladder(accelerator: str, precision: str, train_tokens: int, valid_tokens: int):
    """A one-rung ladder: ``gpu-narrow`` on the given device, precision and token counts (on CPU: eager, short
    windows, a check of the path)."""
    from composer_automl.engine.ladder import ladder_from_mapping, load_ladder

    base = load_ladder("gpu-narrow").mapping
    cpu = {"compile": False, "seq_len": 128, "batch_size": 8} if accelerator == "cpu" else {}
    rung = {**base["rungs"][0]["rung_config"], "accelerator": accelerator, "precision": precision,
            "train_tokens": train_tokens, "valid_tokens": valid_tokens, **cpu}
    return ladder_from_mapping("bench-packed", {**base, "rungs": [{**base["rungs"][0], "rung_config": rung}]})


def one_search(n_workers: int, workers_per_gpu: int, trials: int, ladder, root: Path) -> tuple[float, list]:
    """A quiet random search of ``trials`` trials → (wall seconds of ``run_search``, its trial records)."""
    from composer_automl.search.results import read_trials
    from composer_automl.search.run import SearchSettings, run_search
    from composer_automl.spaces import space_from_mapping

    settings = SearchSettings(n_workers=n_workers, workers_per_gpu=workers_per_gpu, optimizer="random",
                              n_iterations=trials, seed=0, ping_interval_s=1)  # threads: CPU cores / n_workers
    space = space_from_mapping({"strategy": "one-shot", "n_layers": 6})
    run_dir = root / f"wpg{workers_per_gpu}"
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        run_search(settings, space, ladder, run_dir)
    return time.perf_counter() - start, read_trials(run_dir)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers-per-gpu", type=int, default=4, help="K, the packed search's workers per GPU")
    parser.add_argument("--trials", type=int, default=12, help="trials of each search")
    parser.add_argument("--accelerator", choices=("gpu", "cpu"), default="gpu")
    parser.add_argument("--precision", default=None, help="rung precision (default bf16-mixed on GPU, 32-true on CPU)")
    parser.add_argument("--train-tokens", type=int, default=2_097_152, help="training tokens per trial (128 steps)")
    parser.add_argument("--smoke", action="store_true", help="a tiny rung and 2 trials: check the path, not a figure")
    args = parser.parse_args()
    if args.workers_per_gpu < 2:
        print(f"error: --workers-per-gpu must be >= 2, got {args.workers_per_gpu}", file=sys.stderr)
        return 2
    if args.accelerator == "gpu":
        import torch

        if not torch.cuda.is_available():
            print("skipped: no CUDA device (bench_packed_search measures searches packed on GPUs)")
            return 0
    from composer_automl.engine.pool import visible_gpus
    from composer_automl.quiet import install_cli_warning_filters

    install_cli_warning_filters()
    precision = args.precision or ("bf16-mixed" if args.accelerator == "gpu" else "32-true")
    train_tokens, valid_tokens, trials = args.train_tokens, 32 * 512, args.trials
    if args.smoke:
        train_tokens, valid_tokens, trials = 8 * 128 * 4, 2048, 2
    n_gpus = len(visible_gpus()) if args.accelerator == "gpu" else 1
    k = args.workers_per_gpu
    ladder = rung_ladder(args.accelerator, precision, train_tokens, valid_tokens)
    where = f"{n_gpus} GPU(s)" if args.accelerator == "gpu" else "CPU"
    print(f"# {where}, gpu-narrow rung in {precision}, {train_tokens} training tokens per trial, "
          f"{trials} trials per search (random, seed 0)", flush=True)
    per_min = {}
    with tempfile.TemporaryDirectory() as tmp:
        for wpg in (1, k):
            n_workers = n_gpus * wpg
            wall_s, records = one_search(n_workers, wpg if args.accelerator == "gpu" else 1, trials, ladder,
                                         Path(tmp) / f"k{wpg}")
            ok = [r for r in records if r.loss is not None]
            label = f"[wpg={wpg}]"
            if len(ok) != len(records) or not records:
                print(f"packed_search_failed{label}: {len(records) - len(ok)} of {len(records)} trials failed "
                      f"(see the worker logs)", flush=True)
            per_min[wpg] = 60.0 * len(records) / wall_s
            print(f"packed_search_wall_s{label}: {wall_s:.1f} ({len(records)} trials, {n_workers} workers)", flush=True)
            print(f"packed_trials_per_min{label}: {per_min[wpg]:.2f}", flush=True)
            if records:
                print(f"packed_trial_s_median{label}: {statistics.median(r.elapsed_s for r in records):.2f}",
                      flush=True)
    print(f"packed_search_throughput[wpg={k}]_vs_[wpg=1]: {per_min[k] / per_min[1]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
