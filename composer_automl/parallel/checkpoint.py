"""Checkpoints sharded by tensor-parallel rank.

A checkpoint is a folder ``step_NNNNNN.ckpt/`` holding one Lightning checkpoint per
TP rank (``tp_00.pt`` …: that rank's weight shards, optimizer state, schedule,
loop counters) written by the ranks of data-parallel replica 0, plus
``meta.json`` (TP size, model spec, step) written last: a folder with
``meta.json`` is complete. Resuming needs the same model spec and TP size.
"""

from __future__ import annotations

import json
from pathlib import Path

from composer_automl.config import ConfigError
from composer_automl.spec import ModelSpec
from composer_automl.files import atomic_write_text

META = "meta.json"


def shard_path(folder: str | Path, tp_rank: int) -> Path:
    return Path(folder) / f"tp_{tp_rank:02d}.pt"


def write_meta(folder: str | Path, spec: ModelSpec, tp: int, step: int) -> None:
    """Mark ``folder`` complete (atomic rename)."""
    atomic_write_text(Path(folder) / META, json.dumps({"tp": tp, "step": step, "model": spec.to_dict()}, indent=1))


def check_checkpoint(folder: str | Path, spec: ModelSpec, tp: int) -> dict:
    """Return the checkpoint's meta; ConfigError unless it is complete and matches ``spec`` and ``tp``."""
    meta_path = Path(folder) / META
    if not meta_path.is_file():
        raise ConfigError(f"resume={str(folder)!r} is not a complete checkpoint folder (no {META})")
    meta = json.loads(meta_path.read_text())
    if meta["model"] != spec.to_dict():
        diff = sorted(k for k in set(meta["model"]) | set(spec.to_dict()) if meta["model"].get(k) != spec.to_dict().get(k))
        raise ConfigError(
            f"resume={str(folder)!r} was saved from another model (fields {diff} differ): "
            f"checkpoint {[meta['model'].get(k) for k in diff]} vs model {[spec.to_dict().get(k) for k in diff]}"
        )
    if meta["tp"] != tp:
        raise ConfigError(
            f"resume={str(folder)!r} was saved with parallel.tp={meta['tp']}; resharding is not supported, "
            f"so resume with parallel.tp={meta['tp']} (got {tp})"
        )
    return meta


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    """The complete ``step_NNNNNN.ckpt`` folder with the largest N, or None."""
    done = [p for p in Path(ckpt_dir).glob("step_*.ckpt") if (p / META).is_file()]
    return max(done, key=lambda p: json.loads((p / META).read_text())["step"], default=None)
