"""Benchmark the data pipeline and the pretraining rung; prints ``name: value`` lines.

1. Tokenization throughput of ``prepare`` (byte tokenizer, embedded corpus, fresh cache)
   against a plain read + ``np.frombuffer`` + write of the same files (the I/O floor).
2. Pretraining tokens/s through Lightning (the rung's own path) against a plain PyTorch
   loop on the same model, optimizer, schedule and batches, in this process.
3. Rank agreement (Spearman) between the MAD rung (``mad-quick``) and the pretraining
   rung on 8 fixed 6-layer patterns, when the MAD rung is installed.
4. Per-trial data overhead of the pretraining rung on an already-prepared synthetic corpus
   (a raw uint16 token file of ``--corpus-gb`` GB, byte tokenizer, 2048-token documents; CPU):
   the rung's data path (``load_data``: find the cached dataset, open its windows) against the
   path every trial took before the path/size/mtime key (scan every token against the
   vocabulary and for document ends, SHA-256 every byte, then look up the cache), measured in
   the same run at the full size and at a quarter of it.

    python benchmarks/bench_pretrain.py               # ~6-10 min on 2 CPU cores (+ ~2 min, 2.5 GB disk for 4.)
    python benchmarks/bench_pretrain.py --quick       # smaller budgets, 4 patterns for the rank check
    python benchmarks/bench_pretrain.py --data-only   # only 4.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from composer_automl.config import ConfigError
from composer_automl.data.config import DataConfig
from composer_automl.data.corpus import open_corpus, stdlib_files
from composer_automl.data.megatron_io import indexed_dataset
from composer_automl.data.prepare import prepare
from composer_automl.data.tokenizers import ByteTokenizer
from composer_automl.optim import OptimConfig, build_optimizer
from composer_automl.lightning_module import next_token_loss
from composer_automl.model import HybridLM
from composer_automl.patterns import Pattern
from composer_automl.pretrain.config import PretrainConfig
from composer_automl.pretrain.run import load_data, run_pretraining
from composer_automl.pretrain.rung import PretrainRung
from composer_automl.pretrain.rung import search_spec
from composer_automl.spec import SearchWidth
from composer_automl.rungs.registry import load_rung

PATTERNS = ["AMAMAM", "AAMMMM", "MMMMAA", "AMMAMM", "MMMMMM", "AAAAAA", "MAMAMA", "AMMMMA"]
"""The MAD benchmark's fixed 6-layer patterns."""


def bench_prepare(cache: Path) -> dict[str, float]:
    """MB/s of prepare() on the embedded corpus vs a plain byte copy of the same files."""
    cfg = DataConfig(name="stdlib", source="stdlib", valid_fraction=0.1, cache_dir=str(cache), progress=False)
    indexed_dataset()  # import megatron-core outside the timed region
    start = time.perf_counter()
    data = prepare(cfg)
    prepare_s = time.perf_counter() - start
    n_bytes = data.meta["input_bytes"]
    start = time.perf_counter()
    with open(cache / "copy.bin", "wb") as out:
        for path in stdlib_files(cfg.max_bytes):
            np.frombuffer(path.read_bytes(), dtype=np.uint8).astype(np.uint16).tofile(out)
    copy_s = time.perf_counter() - start
    return {"corpus_mb": n_bytes / 1e6, "prepare_mb_per_s": n_bytes / 1e6 / prepare_s,
            "plain_copy_mb_per_s": n_bytes / 1e6 / copy_s, "prepare_over_copy_ratio": copy_s / prepare_s}


def torch_loop_tokens_per_s(cfg: PretrainConfig, pattern: Pattern, seed: int) -> float:
    """The baseline: the same model/optimizer/schedule/batches trained by a hand-written loop."""
    data = load_data(cfg)
    torch.manual_seed(seed)
    model = HybridLM(search_spec(pattern, SearchWidth(), data.prepared.vocab_size, cfg.seq_len))
    optim = OptimConfig(lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps,
                        max_steps=cfg.max_steps, min_lr_ratio=cfg.min_lr_ratio)
    optimizer, scheduler = build_optimizer(model, optim)
    loader = DataLoader(data.train, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    tokens, step = 0, 0
    start = time.perf_counter()
    while step < cfg.max_steps:
        for inputs, targets in loader:
            loss = next_token_loss(model(inputs), targets)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            tokens, step = tokens + inputs.numel(), step + 1
            if step == cfg.max_steps:
                break
    return tokens / (time.perf_counter() - start)


def bench_throughput(cfg: PretrainConfig, out: Path) -> dict[str, float]:
    """Lightning rung tokens/s vs the plain loop, alternating to share the machine's noise."""
    pattern = Pattern.parse("AMMAMM")
    spec = search_spec(pattern, SearchWidth(), 257, cfg.seq_len)
    saved = torch.get_num_threads()
    torch.set_num_threads(cfg.cpu_threads or saved)
    lightning, plain = [], []
    for rep in range(3):
        lightning.append(run_pretraining(spec, cfg, out / f"tput{rep}", seed=0)["tokens_per_s"])
        plain.append(torch_loop_tokens_per_s(cfg, pattern, seed=0))
    torch.set_num_threads(saved)
    best_l, best_p = max(lightning), max(plain)
    return {"lightning_tokens_per_s": best_l, "torch_loop_tokens_per_s": best_p,
            "lightning_over_torch_loop_ratio": best_l / best_p}


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def bench_rank_agreement(cfg: PretrainConfig, patterns: list[str], out: Path) -> dict[str, float]:
    """Spearman ρ between MAD-quick loss and pretraining validation loss over ``patterns``."""
    try:
        mad = load_rung("mad-quick")
    except (ConfigError, ImportError) as err:
        print(f"# MAD rung unavailable ({err}); rank agreement skipped")
        return {}
    mad_losses, pre_losses = [], []
    for name in patterns:
        pattern = Pattern.parse(name)
        start = time.perf_counter()
        mad_loss = mad(pattern, SearchWidth(), out / f"mad-{name}", seed=0).loss
        pre_loss = PretrainRung().evaluate(pattern, cfg, SearchWidth(), out / f"pre-{name}", seed=0).loss
        mad_losses.append(mad_loss)
        pre_losses.append(pre_loss)
        print(f"# {name}: mad_loss={mad_loss:.4f} pretrain_val_loss={pre_loss:.4f} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    return {"rank_patterns": float(len(patterns)), "spearman_mad_vs_pretrain": spearman(mad_losses, pre_losses)}


def write_token_corpus(path: Path, n_bytes: int, doc_len: int = 2048) -> None:
    """A raw uint16 token file of ``n_bytes``: random byte ids, an end-of-document id every ``doc_len`` tokens."""
    rng, chunk = np.random.default_rng(0), 1 << 24
    with open(path, "wb") as out:
        for start in range(0, n_bytes // 2, chunk):
            tokens = rng.integers(0, 256, min(chunk, n_bytes // 2 - start), dtype=np.uint16)
            tokens[(doc_len - 1 - start) % doc_len :: doc_len] = 256
            tokens.tofile(out)


def scan_hash_lookup(cfg: DataConfig) -> None:
    """The per-trial data path before the path/size/mtime key: every token scanned (vocabulary check,
    document ends), every byte hashed, then the cache looked up."""
    open_corpus(cfg, ByteTokenizer()).count_documents()
    prepare(dataclasses.replace(cfg, content_hash=True))


def median_seconds(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def bench_trial_data_overhead(tmp: Path, corpus_gb: float, reps: int = 5) -> dict[str, float]:
    """Seconds of data work per pretraining trial on prepared corpora of ``corpus_gb`` and a quarter of it."""
    figures = {}
    for label, n_bytes in ((f"{corpus_gb:g}GB", int(corpus_gb * 1e9)), (f"{corpus_gb / 4:g}GB", int(corpus_gb * 0.25e9))):
        source = tmp / f"corpus-{label}.bin"
        write_token_corpus(source, n_bytes)
        cache = tmp / f"cache-{label}"
        data = DataConfig(name="synthetic", source=str(source), cache_dir=str(cache), progress=False)
        rung = dataclasses.replace(load_rung("pretrain-tiny").config, data=data)
        load_data(rung)                   # prepared once, as the search master does before any trial
        scan_hash_lookup(data)            # the content-keyed twin, so the baseline also hits its cache
        after = median_seconds(lambda: load_data(rung), reps)
        before = median_seconds(lambda: (scan_hash_lookup(data), load_data(rung)), max(2, reps // 2))
        figures |= {f"trial_data_overhead_s[{label}]": after, f"trial_data_overhead_before_s[{label}]": before,
                    f"overhead_before_over_after[{label}]": before / after}
        source.unlink()
        shutil.rmtree(cache)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller budgets and 4 patterns")
    parser.add_argument("--no-rank", action="store_true", help="skip the MAD vs pretraining rank check")
    parser.add_argument("--data-only", action="store_true", help="only the per-trial data overhead (4.)")
    parser.add_argument("--corpus-gb", type=float, default=1.0, help="size of the synthetic prepared corpus of 4.")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print(f"# device: cpu ({torch.get_num_threads()} threads); figure 4: uint16 token file, byte tokenizer, "
          f"2048-token documents, pretrain-tiny's data path")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        figures = bench_trial_data_overhead(tmp, args.corpus_gb)
        if not args.data_only:
            figures |= bench_prepare(tmp / "cache")
            rung = load_rung("pretrain-tiny").config
            rung = dataclasses.replace(rung, data=dataclasses.replace(rung.data, cache_dir=str(tmp / "cache")))
            steps = 24 if args.quick else 48
            tput_cfg = dataclasses.replace(rung, train_tokens=steps * rung.batch_size * rung.seq_len)
            figures |= bench_throughput(tput_cfg, tmp)
            if not args.no_rank:
                rank_cfg = dataclasses.replace(rung, train_tokens=rung.train_tokens // 2) if args.quick else rung
                figures |= bench_rank_agreement(rank_cfg, PATTERNS[:4] if args.quick else PATTERNS, tmp)
    for name, value in figures.items():
        print(f"{name}: {value:.4g}")


if __name__ == "__main__":
    main()
