"""``composer-automl data prepare [data=<corpus>] [data.KEY=VALUE ...]``: tokenize a corpus.

Prints where the train/valid prefixes are (reuse them in ``train``/``pretrain``
configs) and the tokenization throughput.
"""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from composer_automl.cli import run_hydra_app
from composer_automl.config import located, to_dataclass
from composer_automl.data.config import DataConfig
from composer_automl.data.prepare import SPLITS, PreparedData, prepare

ACTIONS = ("prepare",)


def describe(data: PreparedData) -> list[str]:
    """Human-readable summary lines of a prepared dataset."""
    meta = data.meta
    if data.reused:
        how = "reused from cache"
    else:
        seconds = max(meta["prepare_seconds"], 1e-9)
        how = f"built in {seconds:.2f} s ({meta['input_bytes'] / seconds / 1e6:.1f} MB/s)"
    lines = [f"dataset: {data.path} ({how})",
             f"tokenizer: {meta['tokenizer']['identity']}  vocab_size: {meta['vocab_size']}  eod_id: {meta['eod_id']}"]
    for split in SPLITS:
        counts = meta["splits"][split]
        lines.append(f"{split}: prefix={data.prefix(split)} documents={counts['n_documents']} tokens={counts['n_tokens']}")
    return lines


def prepare_task(cfg: DictConfig) -> PreparedData:
    config = to_dataclass(DataConfig, cfg.data, "data")
    with located("data"):
        data = prepare(config)
    print("\n".join(describe(data)))
    return data


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ACTIONS:
        print(f"usage: composer-automl data {{{','.join(ACTIONS)}}} [data=<corpus>] [data.KEY=VALUE ...]",
              file=sys.stderr)
        given = f"unknown action {argv[0]!r}" if argv else "no action given"
        print(f"error: {given} for composer-automl data; choose one of {list(ACTIONS)}", file=sys.stderr)
        sys.exit(2)
    run_hydra_app("data", prepare_task, argv[1:])
