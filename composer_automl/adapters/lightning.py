"""Lightning internals the tensor-parallel training module needs (pinned by ``tests/adapters/test_lightning.py``).

Lightning 2.x keeps gradient accumulation and batch progress in its fit loop and writes the
loop state into every checkpoint under ``loops/fit_loop``; neither has a public accessor.
"""

from __future__ import annotations

from typing import Any

import lightning as L

BATCH_PROGRESS = ("loops", "fit_loop", "epoch_loop.batch_progress")
"""Path of the training batch counters inside a Lightning checkpoint dict."""
COUNTERS = ("ready", "started", "processed", "completed")


def is_last_micro_batch(trainer: L.Trainer) -> bool:
    """Whether the optimizer steps after the batch being trained (the last micro-batch of an accumulation)."""
    return not trainer.fit_loop._should_accumulate()


def set_batch_progress(checkpoint: dict[str, Any], batches: int) -> None:
    """Make a checkpoint's restored fit loop count ``batches`` training batches (total and current epoch).

    Lightning decides where an optimizer step ends from the batches seen (``ready % accumulate_grad_batches``);
    a resume with another accumulation count must start counting from whole optimizer steps. The counters
    keep their differences: a checkpoint written at a batch's end has ``completed = processed - 1``, which is
    how Lightning tells where it stopped (and so advances the logger's step past the saved one).
    """
    progress = checkpoint.get(BATCH_PROGRESS[0], {}).get(BATCH_PROGRESS[1], {}).get(BATCH_PROGRESS[2])
    if progress:
        for counters in (progress["total"], progress["current"]):
            shift = batches - counters["processed"]
            counters.update({name: counters[name] + shift for name in COUNTERS})
