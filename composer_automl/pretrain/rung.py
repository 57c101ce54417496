"""The ``pretrain`` rung kind: train a pattern at search width, score the held-out loss.

``fidelity/<name>.yaml`` with ``kind: pretrain``; the rest of the file is a
:class:`PretrainConfig`. The budget knob is ``train_tokens``. The loss the optimizer
minimises is the validation loss on the fixed held-out windows.
"""

from __future__ import annotations

import time
from pathlib import Path

from composer_automl.patterns import Pattern
from composer_automl.pretrain.config import PretrainConfig
from composer_automl.pretrain.run import load_data, run_pretraining
from composer_automl.rungs.base import RungKind, RungResult
from composer_automl.spec import ModelSpec, SearchWidth


def search_spec(pattern: Pattern, width: SearchWidth, vocab_size: int, seq_len: int) -> ModelSpec:
    """The model a search trial trains: the pattern at search width."""
    return ModelSpec(pattern=pattern, d_model=width.d_model, n_heads=width.n_heads, n_kv_heads=width.n_kv_heads,
                     ffn_hidden=width.ffn_hidden, vocab_size=vocab_size, max_seq_len=seq_len)


class PretrainRung(RungKind):
    """``kind: pretrain``: a short pretraining run; loss = held-out validation loss."""

    config = PretrainConfig

    def metric(self, config: PretrainConfig) -> str:
        return "val_loss"

    def prepare_inputs(self, config: PretrainConfig) -> str:
        """Prepare the rung's corpus once: every trial then finds it by its path/size/mtime key without
        reading the corpus."""
        data = load_data(config)
        state = "cached" if data.prepared.reused else "prepared"
        return f"corpus {state} at {data.prepared.path} ({data.prepared.meta['n_tokens']:,} tokens)"

    def evaluate(self, pattern: Pattern, config: PretrainConfig, width: SearchWidth, out_dir: Path,
                 seed: int) -> RungResult:
        """Pretrain ``pattern`` for ``config.train_tokens``."""
        start = time.perf_counter()
        data = load_data(config)
        spec = search_spec(pattern, width.narrowed(config.d_model, config.ffn_hidden), data.prepared.vocab_size,
                           config.seq_len)
        metrics = run_pretraining(spec, config, Path(out_dir), seed, data)
        return RungResult(loss=metrics["val_loss"], metrics=metrics, wall_time_s=time.perf_counter() - start)
