"""Import megatron-core's indexed-dataset module quietly (its package init warns about optional CUDA extras)."""

from __future__ import annotations

import warnings
from types import ModuleType


def indexed_dataset() -> ModuleType:
    """``megatron.core.datasets.indexed_dataset`` (IndexedDataset, IndexedDatasetBuilder, DType)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*Transformer Engine and Apex are not installed.*")
        from megatron.core.datasets import indexed_dataset as module
    return module
