"""Training throughput and MFU through ``composer-automl train``'s own path: hybrid vs Llama-style baseline.

    python benchmarks/bench_train_gpu.py [--sizes 350M,1B] [--choices local,local+compile] [--steps 10]
    python benchmarks/bench_train_gpu.py --accelerator cpu --smoke    # the same code on CPU, tiny models

For each size (350M, 1B) the paper's ``2A+4M`` pattern is stacked to the baseline's
parameter count (``composer_automl.extrapolate.fit_depth``; the 1B baseline is Llama 3.2
1B) and both are trained by the real ``train`` code: ``plan`` → Lightning ``Trainer`` with
``MegatronDDPStrategy`` (TP=1, one device), bf16-mixed on GPU, on a synthetic megatron
indexed dataset read in place, once per kernel choice. A choice is ``IMPL[+FLAG…]``: ``local`` or
``te`` (``parallel.impl``), then ``fused`` (``parallel.fusions``), ``compile`` (``parallel.compile``),
``selective`` / ``full`` (``trainer.activation_checkpointing``), ``foreach`` (``optim.fused=false``:
torch's multi-tensor AdamW instead of the fused one) and ``mbN`` (micro-batch N instead of
``--micro-batch``). The first choice is the reference of the ratios; the default list starts with
``local+fused+foreach``, the defaults of commit a7bc85e (the issue-23 measurements), then today's
defaults (``local``), compiled layers, compiled layers with selective checkpointing at twice the
micro-batch, and ``te`` where Transformer Engine imports.
Choices run in order, each on the baseline then the hybrid, every figure printed as soon as it is
known (a run cut short by a timeout keeps whole pairs). Each run trains ``2 × --steps`` optimizer steps; the figures are the second window's
``perf/tokens_per_s`` and ``perf/mfu`` as the run logs them (the first window holds the
warm-up: allocator, autotuning, compilation) and the run's peak GPU memory. Ratios compare
figures of this run only. Without a CUDA device (and ``--accelerator gpu``) it prints
``skipped`` and exits 0.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
from pathlib import Path

import lightning as L
import numpy as np
import torch


def write_tokens(prefix: Path, vocab_size: int, n_tokens: int) -> None:
    """A megatron indexed dataset of random ids in 4096-token documents (what the trainer reads in place)."""
    from megatron.core.datasets.indexed_dataset import DType, IndexedDatasetBuilder

    rng = np.random.default_rng(0)
    builder = IndexedDatasetBuilder(f"{prefix}.bin", dtype=DType.optimal_dtype(vocab_size))
    for start in range(0, n_tokens, 4096):
        doc = rng.integers(0, vocab_size, min(4096, n_tokens - start))
        builder.add_document(torch.from_numpy(doc), [len(doc)])
    builder.finalize(f"{prefix}.idx")


class LastWindow(L.Callback):
    """Keeps the last logged ``perf/*`` figures of a run."""

    def __init__(self):
        self.figures: dict[str, float] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        for key in ("perf/tokens_per_s", "perf/mfu"):
            if key in trainer.callback_metrics:
                self.figures[key] = float(trainer.callback_metrics[key])


FLAGS = {
    "fused": ("parallel", "fusions", True),
    "compile": ("parallel", "compile", True),
    "selective": ("trainer", "activation_checkpointing", "selective"),
    "full": ("trainer", "activation_checkpointing", "full"),
    "foreach": ("optim", "fused", False),
}
"""Flag of a kernel choice → (config section, key, value)."""


def choice_overrides(choice: str, micro_batch: int) -> dict[str, dict]:
    """Config sections of a kernel choice ``IMPL[+FLAG…]`` (see the module docstring)."""
    impl, *flags = choice.split("+")
    overrides = {"parallel": {"impl": impl, "fusions": False}, "trainer": {"micro_batch_size": micro_batch},
                 "optim": {}}
    for flag in flags:
        if flag.startswith("mb") and flag[2:].isdigit():
            overrides["trainer"]["micro_batch_size"] = int(flag[2:])
        elif flag in FLAGS:
            section, key, value = FLAGS[flag]
            overrides[section][key] = value
        else:
            raise SystemExit(f"error: kernel choice {choice!r}: unknown flag {flag!r}; flags: {sorted(FLAGS)}, mbN")
    return overrides


def train_figures(spec_file: Path, data: Path, out: Path, choice: str, args) -> dict[str, float]:
    """tokens/s, MFU and peak memory of the second ``--steps`` window of one ``composer-automl train`` run."""
    from composer_automl.config import to_dataclass
    from composer_automl.train.command import plan, train
    from composer_automl.train.config import TrainConfig

    overrides = choice_overrides(choice, args.micro_batch)
    config = to_dataclass(TrainConfig, {
        "model": str(spec_file), "out_dir": str(out), "data": {"path": str(data)},
        "trainer": {"accelerator": args.accelerator, "devices": 1, "max_steps": 2 * args.steps,
                    "seq_len": args.seq_len, "log_every": args.steps, "val_every": 0, "ckpt_every": 0,
                    **overrides["trainer"]},
        "parallel": {"tp": 1, **overrides["parallel"]},
        "optim": {"warmup_steps": 1, "max_steps": 2 * args.steps, **overrides["optim"]},
    }, "train")
    window = LastWindow()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    train(plan(config), callbacks=[window])
    if torch.cuda.is_available():
        window.figures["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    free_memory()
    return window.figures


def free_memory() -> None:
    """Free a run's model and optimizer state before the next run builds its own."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def kernel_choices(accelerator: str) -> list[str]:
    from composer_automl.parallel.kernels import transformer_engine_error

    if accelerator == "cpu":
        return ["local"]  # CPU runs never fuse
    return (["local+fused+foreach", "local", "local+compile", "local+compile+selective+mb16"]
            + ([] if transformer_engine_error() else ["te"]))


def model_pairs(args) -> list[tuple[str, object, object]]:
    """(size, baseline spec, hybrid spec) at matched parameters, max_seq_len ≥ ``--seq-len``."""
    from composer_automl.extrapolate.fit import fit_depth
    from composer_automl.patterns import Pattern
    from composer_automl.presets import get_preset

    if args.smoke:
        tiny = get_preset("tiny").replace(max_seq_len=max(args.seq_len, 256))
        return [("tiny", tiny, tiny.replace(pattern=Pattern.parse("AMMAMM")))]
    pairs = []
    for size in args.sizes.split(","):
        seq = max(args.seq_len, 2048)
        baseline = get_preset("llama3.2-1B" if size == "1B" else size).replace(max_seq_len=seq)
        hybrid = fit_depth(Pattern.parse("2A+4M"), size, "stack").spec.replace(max_seq_len=seq)
        pairs.append((size, baseline, hybrid))
    return pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="350M,1B", help="comma list of 350M, 1B")
    parser.add_argument("--choices", default=None,
                        help="comma list of kernel choices IMPL[+FLAG...] (default: see the module docstring)")
    parser.add_argument("--smoke", action="store_true", help="tiny models: check the path, not a speed figure")
    parser.add_argument("--accelerator", choices=("gpu", "cpu"), default="gpu")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="steps per window (the run trains two windows)")
    args = parser.parse_args()
    if args.accelerator == "gpu" and not torch.cuda.is_available():
        print("skipped: no CUDA device (bench_train_gpu measures bf16 training on a GPU)")
        return 0
    from composer_automl.quiet import quiet_lightning
    from composer_automl.throughput import peak_flops

    device = torch.cuda.get_device_name(0) if args.accelerator == "gpu" else "cpu"
    dtype = "bf16-mixed" if args.accelerator == "gpu" else "fp32"
    if args.accelerator == "gpu":
        peak = peak_flops(torch.device("cuda", 0), "bf16-mixed")
        print(f"peak_bf16_tflops: {peak.flops / 1e12:.1f}")
        print(f"# peak from: {peak.source}")
    print(f"# device: {device}, {dtype}, TP=1, micro-batch {args.micro_batch} × seq_len {args.seq_len}, "
          f"{args.steps} measured steps after {args.steps} warm-up steps, composer-automl train's Lightning path")
    kernels = args.choices.split(",") if args.choices else kernel_choices(args.accelerator)
    micro_batches = [choice_overrides(c, args.micro_batch)["trainer"]["micro_batch_size"] for c in kernels]
    reference = kernels[0]
    with tempfile.TemporaryDirectory() as tmp, quiet_lightning():
        tmp = Path(tmp)
        for size, baseline, hybrid in model_pairs(args):
            files = {}
            for label, spec in (("baseline", baseline), ("hybrid", hybrid)):
                files[label] = tmp / f"{size}-{label}.yaml", tmp / f"{size}-{label}-tokens"
                spec.save_yaml(files[label][0])
                write_tokens(files[label][1], spec.vocab_size,
                             2 * args.steps * max(micro_batches) * (args.seq_len + 1) + 4096)
                print(f"{size}_{label}_pattern: {spec.pattern.run_length()}")
                print(f"{size}_{label}_params_m: {spec.num_params() / 1e6:.1f}")
            rate: dict[str, float] = {}
            # Choice by choice, both models, each figure printed as soon as it is known: a run cut short by a
            # timeout still holds whole pairs and their ratios.
            for choice in kernels:
                for label in ("baseline", "hybrid"):
                    spec_file, data = files[label]
                    try:
                        got = train_figures(spec_file, data, tmp / f"{size}-{label}-{choice}", choice, args)
                    except Exception as err:  # one failing choice (out of memory, a compile error) leaves the others
                        print(f"{size}_{label}_error[{choice}]: {type(err).__name__}: {str(err).splitlines()[0][:200]}",
                              flush=True)
                        free_memory()
                        continue
                    rate[f"{label}[{choice}]"] = got["perf/tokens_per_s"]
                    print(f"{size}_{label}_tokens_per_s[{choice}]: {got['perf/tokens_per_s']:.0f}")
                    print(f"{size}_{label}_mfu[{choice}]: {got.get('perf/mfu', float('nan')):.3f}")
                    if "peak_mem_gib" in got:
                        print(f"{size}_{label}_peak_mem_gib[{choice}]: {got['peak_mem_gib']:.1f}")
                    if choice != reference and f"{label}[{reference}]" in rate:
                        ratio = rate[f"{label}[{choice}]"] / rate[f"{label}[{reference}]"]
                        print(f"{size}_{label}_{choice}_over_{reference}: {ratio:.3f}")
                    sys.stdout.flush()
                if f"hybrid[{choice}]" in rate and f"baseline[{choice}]" in rate:
                    ratio = rate[f"hybrid[{choice}]"] / rate[f"baseline[{choice}]"]
                    print(f"{size}_hybrid_vs_baseline_throughput[{choice}]: {ratio:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
