"""GPU training throughput and MFU: extrapolated hybrids vs the Llama-style baseline (bf16, one GPU).

    python benchmarks/bench_train_gpu.py [--quick] [--seq-len 2048] [--micro-batch 8] [--steps 20]

For each size (350M, 1B) the paper's ``2A+4M`` pattern is stacked to the
baseline's parameter count (``composer_automl.extrapolate.fit_depth``) and
both are trained with the real tensor-parallel stack (megatron-core GPTModel,
TP=1, Lightning-free loop: forward, backward, AdamW step) under bf16 autocast.
Prints ``name: value`` lines: tokens/s, MFU (flops_per_token × tokens/s / peak)
and the hybrid/baseline throughput ratio at matched parameters. Without a CUDA
device it prints a "skipped" line and exits 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def measure(spec, seq_len: int, micro_batch: int, steps: int, warmup: int) -> float:
    """Training tokens/s of ``spec`` on the current GPU (TP=1)."""
    import torch

    from composer_automl.lightning_module import OptimConfig, build_optimizer
    from composer_automl.parallel import build_parallel_model
    from composer_automl.train.module import masked_mean_loss

    model = build_parallel_model(spec, tp=1).cuda()
    optimizer, _ = build_optimizer(model, OptimConfig(max_steps=steps + warmup))
    gen = torch.Generator(device="cuda").manual_seed(0)
    tokens = torch.randint(0, spec.vocab_size, (micro_batch, seq_len + 1), device="cuda", generator=gen)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    for step in range(warmup + steps):
        if step == warmup:
            torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = masked_mean_loss(model, inputs, targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    del model, optimizer
    torch.cuda.empty_cache()
    return steps * micro_batch * seq_len / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="350M only, fewer steps")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: skipped")
        return

    import torch.distributed as dist

    from composer_automl.extrapolate.fit import fit_depth
    from composer_automl.parallel.state import init_model_parallel
    from composer_automl.patterns import Pattern
    from composer_automl.presets import get_preset
    from composer_automl.throughput import device_peak_flops

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29511")
    os.environ.setdefault("CUDA_DEVICE_MAX_CONNECTIONS", "1")
    dist.init_process_group("nccl", rank=0, world_size=1)
    torch.cuda.set_device(0)
    init_model_parallel(tp=1)
    name = torch.cuda.get_device_name(0)
    peak = device_peak_flops(torch.device("cuda", 0), "bf16-mixed")  # Lightning's device table
    print(f"device: {name}")
    print(f"peak_bf16_tflops: {peak / 1e12 if peak else 'unknown'}")
    steps = 8 if args.quick else args.steps
    sizes = ("350M",) if args.quick else ("350M", "1B")
    for size in sizes:
        hybrid = fit_depth(Pattern.parse("2A+4M"), size, "stack").spec.replace(max_seq_len=max(args.seq_len, 2048))
        baseline = (get_preset("llama3.2-1B") if size == "1B" else get_preset(size)).replace(max_seq_len=max(args.seq_len, 2048))
        results = {}
        for label, spec in (("baseline", baseline), ("hybrid", hybrid)):
            tps = measure(spec, args.seq_len, args.micro_batch, steps, args.warmup)
            mfu = spec.flops_per_token(args.seq_len) * tps / peak if peak else float("nan")
            results[label] = tps
            print(f"{size}_{label}_pattern: {spec.pattern.run_length()}")
            print(f"{size}_{label}_params_m: {spec.num_params() / 1e6:.1f}")
            print(f"{size}_{label}_tokens_per_s: {tps:.0f}")
            print(f"{size}_{label}_mfu: {mfu:.3f}")
        print(f"{size}_hybrid_vs_baseline_throughput: {results['hybrid'] / results['baseline']:.3f}")
    dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
