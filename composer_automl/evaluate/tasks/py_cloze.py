"""The py_cloze task's items (``py_cloze.jsonl`` beside this file) for lm-eval's ``custom_dataset``: no download."""

from __future__ import annotations

import json
from pathlib import Path

ITEMS = Path(__file__).with_name("py_cloze.jsonl")


def load(**_metadata):
    """``{"test": Dataset}`` of ``{"context", "choices", "label"}`` rows (lm-eval passes the task's metadata)."""
    import datasets

    rows = [json.loads(line) for line in ITEMS.read_text().splitlines() if line.strip()]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
