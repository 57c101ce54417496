"""Shared fixtures: deterministic seeds and small factories."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

# Nothing downloads during tests: the Hugging Face libraries (transformers, datasets, lm-eval) stay offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield
