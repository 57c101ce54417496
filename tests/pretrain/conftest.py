"""Small pretraining configs on a slice of the embedded corpus (fast on one CPU core)."""

from __future__ import annotations

import pytest

from composer_automl.data.config import DataConfig
from composer_automl.pretrain.config import PretrainConfig

@pytest.fixture(scope="session")
def corpus_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("corpus-cache"))


@pytest.fixture
def make_config(corpus_cache):
    """Factory of a tiny PretrainConfig on the first 300 kB of the standard-library corpus."""

    def make(steps: int = 30, **overrides) -> PretrainConfig:
        data = DataConfig(name="stdlib", source="stdlib", max_bytes=300_000, valid_fraction=0.1,
                          cache_dir=corpus_cache, progress=False)
        fields = dict(data=data, seq_len=32, batch_size=8, train_tokens=steps * 8 * 32, valid_tokens=1024,
                      lr=1e-2, warmup_steps=2, log_every_n_steps=2)
        fields.update(overrides)
        return PretrainConfig(**fields)

    return make
