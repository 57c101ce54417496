"""Train/test arrays of one task setting, generated once and cached on disk.

The cache key is (task, setting, seed, test-set size, generator version); a
file is written under a temporary name and renamed, so a crash never leaves a
half-written dataset. The cache folder is ``composer_automl.paths.cache_dir("mad")``:
``$COMPOSER_AUTOML_CACHE/mad``, else ``$XDG_CACHE_HOME/composer-automl/mad``, else
``~/.cache/composer-automl/mad``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from composer_automl import paths
from composer_automl.files import atomic_write
from composer_automl.mad.tasks import TaskSetting, generate

GENERATOR_VERSION = 2
"""Bump when a generator changes so stale cached datasets are not reused."""


@dataclass(frozen=True)
class MADData:
    """Generated splits of one setting: (N, T) int64 arrays, targets −100 where unscored."""

    train_inputs: np.ndarray
    train_scored: np.ndarray
    """Training targets at the scored positions only (``train_on: scored``)."""
    train_dense: np.ndarray
    """Training targets of ``train_on: all`` (every next token for the recall family)."""
    test_inputs: np.ndarray
    test_targets: np.ndarray
    """Scored test targets: what accuracy and test loss count."""

    def train_targets(self, train_on: str) -> np.ndarray:
        """The training targets of ``train_on`` (``all`` or ``scored``)."""
        return self.train_dense if train_on == "all" else self.train_scored


def cache_key(task: str, setting: TaskSetting, seed: int, num_test_examples: int) -> str:
    """Stable hash of everything that determines the generated arrays."""
    payload = {
        "task": task,
        "setting": dataclasses.asdict(setting),
        "seed": seed,
        "num_test_examples": num_test_examples,
        "version": GENERATOR_VERSION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def generate_splits(task: str, setting: TaskSetting, seed: int, num_test_examples: int) -> MADData:
    """Generate both splits from independent child streams of ``seed`` (no disk)."""
    train_seq, test_seq = np.random.SeedSequence(seed).spawn(2)
    x, scored, dense = generate(task, setting, np.random.default_rng(train_seq), setting.num_train_examples)
    tx, ty, _ = generate(task, setting, np.random.default_rng(test_seq), num_test_examples, split="test")
    return MADData(x, scored, dense, tx, ty)


def load_or_generate(
    task: str, setting: TaskSetting, seed: int, num_test_examples: int, cache_dir: Path | None = None
) -> MADData:
    """The splits of a setting, from ``cache_dir`` if present, else generated and cached."""
    cache_dir = Path(cache_dir) if cache_dir is not None else paths.cache_dir("mad")
    path = cache_dir / f"{task}-{cache_key(task, setting, seed, num_test_examples)}.npz"
    if path.is_file():
        with np.load(path) as z:
            return MADData(*(z[f.name] for f in dataclasses.fields(MADData)))
    data = generate_splits(task, setting, seed, num_test_examples)
    def save(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            np.savez(fh, **dataclasses.asdict(data))

    atomic_write(path, save)  # concurrent workers never read a partial file
    return data
