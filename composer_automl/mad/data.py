"""Train/test arrays of one task setting, generated once and cached on disk.

The cache key is (task, setting, seed, test-set size, generator version); a
file is written under a temporary name and renamed, so a crash never leaves a
half-written dataset. The cache folder is ``$COMPOSER_AUTOML_MAD_CACHE``, else
``$XDG_CACHE_HOME/composer-automl/mad``, else ``~/.cache/composer-automl/mad``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from composer_automl.mad.tasks import TaskSetting, generate

GENERATOR_VERSION = 1
"""Bump when a generator changes so stale cached datasets are not reused."""


@dataclass(frozen=True)
class MADData:
    """Generated splits of one setting: (N, T) int64 arrays, targets −100 where unscored."""

    train_inputs: np.ndarray
    train_targets: np.ndarray
    test_inputs: np.ndarray
    test_targets: np.ndarray


def default_cache_dir() -> Path:
    """Where generated datasets are cached (see module docstring)."""
    if os.environ.get("COMPOSER_AUTOML_MAD_CACHE"):
        return Path(os.environ["COMPOSER_AUTOML_MAD_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg) if xdg else Path.home() / ".cache"
    return root / "composer-automl" / "mad"


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
    x, y = generate(task, setting, np.random.default_rng(train_seq), setting.num_train_examples)
    tx, ty = generate(task, setting, np.random.default_rng(test_seq), num_test_examples)
    return MADData(x, y, tx, ty)


def load_or_generate(
    task: str, setting: TaskSetting, seed: int, num_test_examples: int, cache_dir: Path | None = None
) -> MADData:
    """The splits of a setting, from ``cache_dir`` if present, else generated and cached."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_dir / f"{task}-{cache_key(task, setting, seed, num_test_examples)}.npz"
    if path.is_file():
        with np.load(path) as z:
            return MADData(*(z[name] for name in ("train_inputs", "train_targets", "test_inputs", "test_targets")))
    data = generate_splits(task, setting, seed, num_test_examples)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **dataclasses.asdict(data))
    os.replace(tmp, path)  # atomic: concurrent workers never read a partial file
    return data
