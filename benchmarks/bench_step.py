"""Training-step overhead of Lightning vs a plain PyTorch loop, and hybrid vs Llama-style speed.

Figures (ratios measured in this run, so machine noise cancels):
  lightning_vs_plain_step_time: median step time under a Lightning Trainer / plain loop (aim <= 1.10)
  hybrid_vs_am_tokens_per_s: fwd+bwd tokens/s of a 1:2 attention:MLP hybrid / the AM pattern
                             at (nearly) equal parameter count
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from composer_automl.lightning_module import HybridLMModule, next_token_loss
from composer_automl.optim import OptimConfig, build_optimizer
from composer_automl.patterns import Pattern
from composer_automl.spec import ModelSpec


class RepeatedBatch(Dataset):
    """The same (inputs, targets) batch ``length`` times (batch dimension already included)."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, length: int):
        self.inputs, self.targets, self.length = inputs, targets, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        return self.inputs, self.targets


class StepTimer(L.Callback):
    """Wall time between consecutive batch starts: the step plus all of the loop's overhead."""

    def __init__(self):
        self.starts: list[float] = []

    def on_train_batch_start(self, *args) -> None:
        self.starts.append(time.perf_counter())

    def on_train_end(self, *args) -> None:
        self.starts.append(time.perf_counter())

    @property
    def times(self) -> list[float]:
        return [b - a for a, b in zip(self.starts, self.starts[1:])]


def bench_spec(layers: str = "AMMAMM") -> ModelSpec:
    return ModelSpec(pattern=layers, d_model=256, n_heads=8, n_kv_heads=4, ffn_hidden=768, vocab_size=512, max_seq_len=256)


def make_batch(spec: ModelSpec, batch: int, seq: int) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = torch.randint(0, spec.vocab_size, (batch, seq + 1), generator=torch.Generator().manual_seed(0))
    return tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()


def lightning_step_times(spec: ModelSpec, batch, steps: int) -> list[float]:
    L.seed_everything(0)
    module = HybridLMModule(spec, OptimConfig(max_steps=steps))
    timer = StepTimer()
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=steps, logger=False, enable_checkpointing=False,
        enable_model_summary=False, enable_progress_bar=False, callbacks=[timer],
    )
    loader = DataLoader(RepeatedBatch(*batch, steps), batch_size=None)
    trainer.fit(module, loader)
    return timer.times


def plain_step_times(spec: ModelSpec, batch, steps: int) -> list[float]:
    L.seed_everything(0)
    module = HybridLMModule(spec, OptimConfig(max_steps=steps))
    optimizer, scheduler = build_optimizer(module.model, module.optim)
    module.train()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        inputs, targets = batch
        loss = next_token_loss(module.model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        times.append(time.perf_counter() - start)
    return times


def matched_hybrid(baseline: ModelSpec) -> ModelSpec:
    """The (AMM)^k pattern, plus an optional tail, whose size is closest to ``baseline``."""
    target = baseline.num_params()
    candidates = []
    for k in range(1, 4 * baseline.n_layers):
        for tail in ("", "A", "M", "AM", "MM"):
            spec = baseline.replace(pattern=Pattern.parse("AMM") * k + tail if tail else Pattern.parse("AMM") * k)
            candidates.append((abs(spec.num_params() - target), spec))
    return min(candidates, key=lambda c: c[0])[1]


def fwd_bwd_tokens_per_s(spec: ModelSpec, batch, reps: int) -> float:
    torch.manual_seed(0)
    module = HybridLMModule(spec)
    inputs, targets = batch
    for _ in range(2):  # warm-up
        next_token_loss(module.model(inputs), targets).backward()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        next_token_loss(module.model(inputs), targets).backward()
        times.append(time.perf_counter() - start)
    return inputs.numel() / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    spec = bench_spec()
    batch = make_batch(spec, args.batch, args.seq)
    warm = 5  # drop the first steps (allocator, autograd graph caching)
    # Alternate the two measurements so drifting machine load hits both alike.
    lightning, plain = [], []
    for _ in range(2):
        plain += plain_step_times(spec, batch, args.steps)[warm:]
        lightning += lightning_step_times(spec, batch, args.steps)[warm:]
    print(f"plain_step_ms: {1000 * statistics.median(plain):.2f}")
    print(f"lightning_step_ms: {1000 * statistics.median(lightning):.2f}")
    print(f"lightning_vs_plain_step_time: {statistics.median(lightning) / statistics.median(plain):.3f}")

    baseline = bench_spec("AM" * 6)
    hybrid = matched_hybrid(baseline)
    am = fwd_bwd_tokens_per_s(baseline, batch, args.steps // 2)
    hy = fwd_bwd_tokens_per_s(hybrid, batch, args.steps // 2)
    print(f"hybrid_pattern: {hybrid.pattern.run_length()}")
    print(f"hybrid_vs_am_params: {hybrid.num_params() / baseline.num_params():.4f}")
    print(f"hybrid_vs_am_tokens_per_s: {hy / am:.3f}")


if __name__ == "__main__":
    main()
