"""Shared fixtures: deterministic seeds and small factories."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from composer_automl.patterns import Pattern
from composer_automl.rungs.simulated import SimulatedConfig, true_loss
from composer_automl.table import Row, append_row

# Nothing downloads during tests: the Hugging Face libraries (transformers, datasets, lm-eval) stay offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


def simulated_rows(patterns: list[str], rungs: dict[str, float], seeds: int, noise: float = 0.02) -> list[Row]:
    """Rows whose loss is the simulated true loss plus a seeded, pattern- and rung-dependent offset."""
    rows = []
    for rung, cost in rungs.items():
        for seed in range(seeds):
            for i, p in enumerate(patterns):
                offset = noise * (((i * 7 + seed * 13 + len(rung)) % 11) / 10 - 0.5)
                loss = true_loss(Pattern.parse(p), SimulatedConfig()) + offset
                rows.append(Row(pattern=p, rung=rung, seed=seed, status="ok", loss=loss, metrics={"true": loss - offset},
                                wall_time_s=cost, cpu_time_s=cost * 0.9, rung_hash="h" + rung, code_version="test"))
    return rows


@pytest.fixture
def make_table(tmp_path):
    """``make_table(patterns, rungs={name: cost_s}, seeds)`` → a run directory holding that table."""

    def make(patterns: list[str], rungs: dict[str, float], seeds: int = 2, name: str = "table") -> Path:
        run_dir = tmp_path / name
        run_dir.mkdir()
        for row in simulated_rows(patterns, rungs, seeds):
            append_row(run_dir, row)
        return run_dir

    return make
