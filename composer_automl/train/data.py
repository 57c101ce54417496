"""Training data: windows of a prepared dataset, sharded by data-parallel rank, resumable by sample.

The run reads one global stream of samples: sample ``p`` is window
``perm_e[p mod N]`` of the epoch ``e = p // N`` permutation (seeded by
``(seed, e)``). Optimizer step ``s`` consumes the global batch
``G = B × accum × DP`` samples ``[s·G, (s+1)·G)``; its micro-batch ``m`` on
data-parallel rank ``r`` holds samples ``s·G + (m·DP + r)·B + j``, ``j < B``.
A sampler therefore needs only the number of samples consumed so far to start
exactly where a checkpointed run stopped — no data-loader state is saved — and
any layout with the same ``G`` (e.g. micro 8 × accum 1 ↔ micro 2 × accum 4, or
another DP size) reads the same samples in every optimizer step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Sampler

from composer_automl.config import ConfigError
from composer_automl.data.prepare import read_meta
from composer_automl.data.windows import TokenWindows

SPLITS = ("train", "valid")


def _is_prefix(path: Path) -> bool:
    return Path(f"{path}.bin").is_file() and Path(f"{path}.idx").is_file()


def check_dataset(path: str | Path, vocab_size: int, valid_path: str | None = None,
                  validate: bool = True) -> tuple[str, str | None]:
    """Check the training data; return the (train, valid) megatron prefixes it is read from in place.

    ``path`` is either a folder prepared by ``composer-automl data`` (``train``/``valid``
    .bin/.idx and ``meta.json``) or the prefix of an existing megatron indexed dataset
    (``PREFIX.bin``/``PREFIX.idx``, e.g. ``/data/dclm_text_document``), whose validation
    split is ``valid_path`` (another prefix) when ``validate``. ConfigError if unusable.
    """
    folder = Path(path)
    if _is_prefix(folder) and not folder.is_dir():
        if valid_path is not None and not _is_prefix(Path(valid_path)):
            raise ConfigError(f"data.valid_path={valid_path!r} is not a megatron .bin/.idx prefix")
        if validate and valid_path is None:
            raise ConfigError(
                f"data.path={str(path)!r} is a megatron prefix without a validation split: "
                "set data.valid_path=PREFIX or trainer.val_every=0"
            )
        return str(folder), valid_path
    if valid_path is not None:
        raise ConfigError("data.valid_path applies only when data.path is a megatron .bin/.idx prefix")
    missing = [f"{split}{ext}" for split in SPLITS for ext in (".bin", ".idx") if not (folder / f"{split}{ext}").is_file()]
    if not folder.is_dir() or missing:
        raise ConfigError(
            f"data={str(path)!r} is not a prepared dataset (missing {missing or 'the folder'}) nor a megatron "
            "PREFIX with PREFIX.bin/PREFIX.idx; create one with `composer-automl data`"
        )
    meta = read_meta(folder) if (folder / "meta.json").is_file() else {}
    if meta.get("vocab_size", 0) > vocab_size:
        raise ConfigError(
            f"data vocab_size={meta['vocab_size']} exceeds model.vocab_size={vocab_size}; "
            "use a model spec with a vocabulary at least as large as the tokenizer's"
        )
    return str(folder / "train"), str(folder / "valid")


class StepBatchSampler(Sampler[list[int]]):
    """Endless micro-batches of window indices for one data-parallel rank, after ``start_sample`` consumed samples.

    ``start_sample`` must be a multiple of ``batch_size × dp_size`` (a run is
    checkpointed between optimizer steps, so it is a multiple of the global batch).
    """

    def __init__(self, n_windows: int, batch_size: int, dp_rank: int, dp_size: int, seed: int, start_sample: int = 0):
        if start_sample % (batch_size * dp_size):
            raise ValueError(f"start_sample={start_sample} is not a multiple of micro-batch × DP = {batch_size * dp_size}")
        self.n, self.batch_size, self.dp_rank, self.dp_size = n_windows, batch_size, dp_rank, dp_size
        self.seed, self.start_sample = seed, start_sample
        self._epoch, self._perm = -1, np.empty(0, dtype=np.int64)

    def _window(self, position: int) -> int:
        epoch = position // self.n
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, np.random.default_rng((self.seed, epoch)).permutation(self.n)
        return int(self._perm[position % self.n])

    def batch(self, k: int) -> list[int]:
        """Window indices of this rank's ``k``-th micro-batch after ``start_sample``."""
        first = self.start_sample + (k * self.dp_size + self.dp_rank) * self.batch_size
        return [self._window(first + j) for j in range(self.batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        k = 0
        while True:
            yield self.batch(k)
            k += 1


class WindowData(L.LightningDataModule):
    """Train/valid token windows of a prepared dataset for one data-parallel rank.

    ``dp_rank``/``dp_size`` are read when the loaders are built (after the strategy
    set up megatron's groups); the train loader starts after ``consumed_samples``
    (those of the checkpoint a run resumes from; 0 for a new run).
    """

    def __init__(self, train_prefix: str, valid_prefix: str | None, seq_len: int, micro_batch_size: int,
                 val_batches: int, seed: int, consumed_samples: int = 0):
        super().__init__()
        self.train_prefix, self.valid_prefix = train_prefix, valid_prefix
        self.seq_len, self.micro_batch_size = seq_len, micro_batch_size
        self.val_batches, self.seed, self.consumed_samples = val_batches, seed, consumed_samples

    def _dp(self) -> tuple[int, int]:
        from composer_automl.parallel.state import dp_rank, dp_size

        return dp_rank(), dp_size()

    def train_dataloader(self) -> DataLoader:
        windows = TokenWindows(self.train_prefix, self.seq_len)
        if windows.n_windows == 0:
            raise ConfigError(f"data={self.train_prefix!r}: the train split is shorter than one window of {self.seq_len} tokens")
        rank, size = self._dp()
        sampler = StepBatchSampler(windows.n_windows, self.micro_batch_size, rank, size, self.seed, self.consumed_samples)
        return DataLoader(windows, batch_sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        windows = TokenWindows(self.valid_prefix, self.seq_len)
        rank, size = self._dp()
        per_rank = min(self.val_batches * self.micro_batch_size, windows.n_windows // size)
        indices = list(range(rank * per_rank, (rank + 1) * per_rank))  # same count on every rank
        return DataLoader(windows.subset(indices), batch_size=self.micro_batch_size)
