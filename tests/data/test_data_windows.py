"""TokenWindows: aligned next-token windows over a prepared split, shardable."""

from __future__ import annotations

import numpy as np
import torch

from composer_automl.data.config import DataConfig
from composer_automl.data.prepare import prepare
from composer_automl.data.windows import TokenWindows


def test_windows_are_shifted_by_one_and_cross_documents(tmp_path):
    """targets[t] == inputs[t+1]; concatenated windows reproduce the token stream across document ends."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(8):
        (src / f"{i}.txt").write_text(f"{i}" * (5 + i))
    data = prepare(DataConfig(source=str(src), cache_dir=str(tmp_path / "c"), valid_fraction=0.2, progress=False))
    windows = TokenWindows(data.prefix("train"), seq_len=4)
    stream = windows.read(0, windows.n_tokens)
    assert windows.n_windows == (windows.n_tokens - 1) // 4
    for w in range(windows.n_windows):
        inputs, targets = windows[w]
        assert inputs.dtype == torch.int64 and inputs.shape == (4,)
        assert torch.equal(inputs, torch.from_numpy(stream[w * 4:w * 4 + 4]))
        assert torch.equal(targets, torch.from_numpy(stream[w * 4 + 1:w * 4 + 5]))
    assert (stream == 256).sum() == data.meta["splits"]["train"]["n_documents"]


def test_shards_partition_the_windows(tmp_path):
    """shard(r, 2) for r = 0, 1 together cover every window exactly once."""
    (tmp_path / "a.txt").write_text("a" * 300)
    (tmp_path / "b.txt").write_text("b" * 300)
    data = prepare(DataConfig(source=str(tmp_path / "*.txt"), cache_dir=str(tmp_path / "c"), progress=False))
    full = TokenWindows(data.prefix("train"), seq_len=16)
    shards = [full.shard(r, 2) for r in range(2)]
    assert sorted(list(shards[0].indices) + list(shards[1].indices)) == list(range(full.n_windows))
    assert torch.equal(shards[1][0][0], full[1][0])
