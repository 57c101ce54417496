"""Small megatron indexed datasets for training tests (written with megatron's own builder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch


def make_dataset(folder: Path, vocab_size: int = 256, n_docs: int = 40, seed: int = 0) -> Path:
    """``train``/``valid`` splits of random documents (with a learnable bigram bias) plus ``meta.json``."""
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, docs in (("train", n_docs), ("valid", max(4, n_docs // 4))):
        builder = IndexedDatasetBuilder(str(folder / f"{split}.bin"), dtype=np.uint16)
        for _ in range(docs):
            start = rng.integers(0, vocab_size, size=1)
            steps = rng.integers(1, 4, size=int(rng.integers(40, 120)))
            doc = (start + np.cumsum(steps)) % vocab_size  # mostly-predictable next token
            builder.add_document(torch.from_numpy(doc.astype(np.int64)), [len(doc)])
        builder.finalize(str(folder / f"{split}.idx"))
    (folder / "meta.json").write_text(json.dumps({"vocab_size": vocab_size, "eod_id": 0}))
    return folder
