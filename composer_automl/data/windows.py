"""Fixed-length next-token windows over one split of a prepared dataset.

The split's documents are read, in order, as one token stream through
megatron-core's :class:`IndexedDataset`; window ``w`` covers stream positions
``[w·T, w·T + T]`` (T+1 tokens) and yields ``inputs = tok[w·T : w·T+T]``,
``targets = tok[w·T+1 : w·T+T+1]``. Windows do not overlap and cross document
boundaries (documents end with the EOD id, as in GPT pretraining).

To shard (data parallel ranks, dataloader workers) pass explicit window
``indices`` or call :meth:`TokenWindows.shard`; a ``DistributedSampler`` over
the full dataset works too.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from composer_automl.config import ConfigError
from composer_automl.data.megatron_io import indexed_dataset


class TokenWindows(Dataset):
    """``(inputs, targets)`` int64 tensors of length ``seq_len`` from an indexed-dataset prefix."""

    def __init__(self, prefix: str, seq_len: int, indices: Sequence[int] | None = None):
        if seq_len < 1:
            raise ConfigError(f"seq_len={seq_len} must be a positive integer")
        self.prefix, self.seq_len = prefix, seq_len
        self.dataset = indexed_dataset().IndexedDataset(prefix)
        lengths = np.asarray(self.dataset.sequence_lengths, dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(lengths)])  # stream offset of each sequence
        self.n_tokens = int(self.starts[-1])
        self.n_windows = max(0, (self.n_tokens - 1) // seq_len)
        """Windows available in the whole split."""
        self.indices = range(self.n_windows) if indices is None else indices
        if indices is not None and len(indices) and not 0 <= min(indices) <= max(indices) < self.n_windows:
            raise IndexError(f"window indices must lie in [0, {self.n_windows}) for {prefix}")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = torch.from_numpy(self.read(int(self.indices[i]) * self.seq_len, self.seq_len + 1))
        return tokens[:-1], tokens[1:]

    def read(self, start: int, count: int) -> np.ndarray:
        """``count`` tokens of the stream from position ``start``, as int64 (may span sequences)."""
        pieces, seq = [], int(np.searchsorted(self.starts, start, side="right")) - 1
        while count > 0:
            offset = start - int(self.starts[seq])
            take = min(count, int(self.starts[seq + 1]) - start)
            pieces.append(self.dataset.get(seq, offset=offset, length=take))
            start, count, seq = start + take, count - take, seq + 1
        return np.concatenate(pieces).astype(np.int64)

    def subset(self, indices: Sequence[int]) -> "TokenWindows":
        """The same stream restricted to these window indices (of the full split)."""
        return TokenWindows(self.prefix, self.seq_len, indices)

    def shard(self, rank: int, world_size: int) -> "TokenWindows":
        """Every ``world_size``-th of this dataset's windows, starting at ``rank``."""
        return self.subset(self.indices[rank::world_size])
