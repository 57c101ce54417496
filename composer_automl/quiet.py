"""Quiet training loops: Lightning's per-Trainer banners and known-harmless warnings silenced.

Searches and calibrations start hundreds of Trainers; each would print its GPU/TPU
banner and the same data-loader hints. Real warnings still show.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from typing import Iterator

HARMLESS_WARNINGS = (
    ".*does not have many workers.*",  # our datasets are in memory or memory-mapped
    ".*LitLogger.*",
    ".*smaller than the logging interval.*",  # short runs log less often than log_every_n_steps
    ".*no `val_dataloader`.*",  # pretraining validates after fit, by design
)
"""Message patterns of warnings that carry no information for our runs."""


THIRD_PARTY_DEPRECATIONS: tuple[tuple[type[Warning], str, str], ...] = (
    (FutureWarning, r".*isinstance\(treespec, LeafSpec\)` is deprecated.*", ""),  # torch, raised by Lightning
    (FutureWarning, r"After 0\.17 or January 2028.*numpy\.random\.Generator.*", ""),  # statsmodels' KDE (BOHB's model)
    (DeprecationWarning, "", r"megatron(\..*)?"),  # megatron-core's own deprecations, raised inside it
    (FutureWarning, "", r"megatron(\..*)?"),
    (DeprecationWarning, "", r"(lightning|lightning_fabric|pytorch_lightning)(\..*)?"),
    (UserWarning, r"(Transformer Engine and )?Apex (is|are) not installed.*", r"megatron(\..*)?"),  # CPU: expected
)
"""(category, message regex, module regex) of deprecation warnings that third-party code raises about
itself: nothing a user of the CLI can act on. Our own code's warnings and every other warning still show."""


def install_cli_warning_filters() -> None:
    """Hide :data:`THIRD_PARTY_DEPRECATIONS` and :data:`HARMLESS_WARNINGS` for the whole process.

    Called by the console script (and the local worker processes it starts), never on import: a user
    who imports the package keeps Python's warning settings.
    """
    for category, message, module in THIRD_PARTY_DEPRECATIONS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    for pattern in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", pattern)


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's INFO banners and :data:`HARMLESS_WARNINGS` inside the block."""
    names = ("lightning.pytorch", "lightning.fabric", "lightning")
    saved = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.WARNING)
    with warnings.catch_warnings():
        for pattern in HARMLESS_WARNINGS:
            warnings.filterwarnings("ignore", pattern)
        try:
            yield
        finally:
            for name, level in saved.items():
                logging.getLogger(name).setLevel(level)
