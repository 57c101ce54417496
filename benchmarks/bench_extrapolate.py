"""Extrapolated hybrid vs its Llama 3.2 baseline at matched parameters: CPU fp32 speed and KV cache.

What it times is a single-device ``HybridLM`` on the CPU in fp32 at a reduced vocabulary (a
forward pass; with ``--train`` also forward+backward): a relative figure between two layer
stacks, not a GPU training throughput (that is ``bench_train_gpu.py``).

Builds the target preset's ``AM``×k baseline and the hybrid that ``fit_depth``
extrapolates from a searched pattern (params within ±2%), then times both in the
same process, interleaving repetitions so that drift on a shared CPU hits both
alike, and keeps each model's fastest repetition (as ``timeit`` advises: slower
ones measure other processes, not the model). Prints one ``name: value`` line per figure; ratios are hybrid over baseline
for speed (higher is better) and baseline over hybrid for the KV cache.

On CPU the vocabulary is reduced (``--vocab``, default 8192) so that the LM head
does not dominate a short sequence: the layer stacks are the real 1B ones, the
embedding/head are not. Sizes and ratios at the full vocabulary are printed too.

    python benchmarks/bench_extrapolate.py            # 1B, 2A+4M stacked, forward, batch 1, seq 128
    python benchmarks/bench_extrapolate.py --train    # also forward+backward (minutes on CPU)
    python benchmarks/bench_extrapolate.py --quick    # 350M, 2 reps
"""

from __future__ import annotations

import argparse
import gc
import time

import torch

from composer_automl.extrapolate.fit import fit_depth
from composer_automl.model import HybridLM
from composer_automl.patterns import Pattern
from composer_automl.spec import ModelSpec


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pattern", default="2A+4M", help="searched pattern to extrapolate")
    p.add_argument("--method", default="stack", choices=["stack", "stretch"])
    p.add_argument("--target", default="1B", choices=["350M", "1B", "3B"])
    p.add_argument("--vocab", type=int, default=8192, help="reduced vocabulary for timing (0 = the preset's)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--reps", type=int, default=5, help="timed repetitions per model")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--train", action="store_true", help="also time forward+backward (slow on CPU at 1B)")
    p.add_argument("--quick", action="store_true", help="350M target, 2 reps, forward only")
    args = p.parse_args()
    if args.quick:
        args.target, args.reps, args.train = "350M", 2, False
    return args


def time_interleaved(models: dict[str, HybridLM], idx: torch.Tensor, reps: int, warmup: int,
                     train: bool) -> dict[str, float]:
    """Fastest seconds per step for each model; repetitions alternate between the models."""

    def step(model: HybridLM) -> None:
        if train:
            logits = model(idx)  # (B, T, V)
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), idx.flatten())
            loss.backward()
            model.zero_grad(set_to_none=True)
        else:
            with torch.inference_mode():
                model(idx)

    times: dict[str, list[float]] = {name: [] for name in models}
    for i in range(warmup + reps):
        for name, model in models.items():
            start = time.perf_counter()
            step(model)
            elapsed = time.perf_counter() - start
            if i >= warmup:
                times[name].append(elapsed)
            print(f"# {'train' if train else 'forward'} {name} rep {i - warmup + 1 if i >= warmup else 'warmup'}: "
                  f"{elapsed:.3f} s", flush=True)
    return {name: min(t) for name, t in times.items()}


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    fit = fit_depth(Pattern.parse(args.pattern), args.target, args.method)
    full = {"baseline": fit.baseline, "hybrid": fit.spec}
    print(f"# target {args.target}: hybrid {fit.spec.pattern.run_length()} ({fit.spec.n_layers} layers) "
          f"vs baseline AMx{fit.baseline.n_layers // 2}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, CPU fp32")
    print(f"params_ratio_full_vocab: {fit.spec.num_params() / fit.baseline.num_params():.4f}")
    print(f"flops_per_token_ratio_seq2048: {fit.spec.flops_per_token(2048) / fit.baseline.flops_per_token(2048):.4f}")
    print(f"kv_cache_reduction: {fit.baseline.kv_cache_bytes(2048) / fit.spec.kv_cache_bytes(2048):.4f}")

    vocab = args.vocab or fit.baseline.vocab_size
    specs: dict[str, ModelSpec] = {
        name: spec.replace(vocab_size=vocab, max_seq_len=args.seq) for name, spec in full.items()
    }
    print(f"# measures: CPU fp32 HybridLM forward{' and forward+backward' if args.train else ''} at vocab {vocab} "
          f"(reduced from {fit.baseline.vocab_size}), batch {args.batch}, seq {args.seq}, {args.reps} reps after "
          f"{args.warmup} warm-up; not a GPU training figure (bench_train_gpu.py)")
    print(f"params_ratio_bench_vocab: {specs['hybrid'].num_params() / specs['baseline'].num_params():.4f}")
    models = {name: HybridLM(spec).eval() for name, spec in specs.items()}
    for name, model in models.items():  # the built model has exactly the counted parameters
        assert sum(p.numel() for p in model.parameters()) == specs[name].num_params(), name
    idx = torch.randint(0, vocab, (args.batch, args.seq))
    tokens = args.batch * args.seq
    modes = [False, True] if args.train else [False]
    for train in modes:
        label = "train" if train else "forward"
        if train:
            for model in models.values():
                model.train()
        secs = time_interleaved(models, idx, args.reps, args.warmup, train)
        print(f"cpu_fp32_{label}_tokens_per_s_baseline: {tokens / secs['baseline']:.1f}")
        print(f"cpu_fp32_{label}_tokens_per_s_hybrid: {tokens / secs['hybrid']:.1f}")
        print(f"cpu_fp32_{label}_speedup: {secs['baseline'] / secs['hybrid']:.4f}")
        gc.collect()


if __name__ == "__main__":
    main()
