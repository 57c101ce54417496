"""MAD's protocol: each task's base setting and its one-at-a-time variations.

Values follow the MAD paper / mad-lab task configs: 66 settings over the six
tasks (11 + 11 + 14 + 13 + 11 + 6). A variation changes one field of the base.
"""

from __future__ import annotations

from dataclasses import dataclass

from composer_automl.mad.tasks import (
    CompressionSetting,
    FuzzyRecallSetting,
    MemorizationSetting,
    NoisyRecallSetting,
    RecallSetting,
    SelectiveCopySetting,
    TaskSetting,
    get_task,
)

BASE_SETTINGS: dict[str, TaskSetting] = {
    "in-context-recall": RecallSetting(vocab_size=16, seq_len=128),
    "fuzzy-in-context-recall": FuzzyRecallSetting(vocab_size=16, seq_len=128, k_motif_size=3, v_motif_size=3),
    "noisy-in-context-recall": NoisyRecallSetting(vocab_size=32, seq_len=128, noise_vocab_size=16, frac_noise=0.2),
    "selective-copying": SelectiveCopySetting(vocab_size=16, seq_len=256, num_tokens_to_copy=16),
    "compression": CompressionSetting(vocab_size=16, seq_len=32),
    "memorization": MemorizationSetting(vocab_size=256, seq_len=32, num_train_examples=256),
}
"""Task → MAD base setting."""

_EXAMPLES = (6400, 3200, 1600, 800)
VARIATIONS: dict[str, dict[str, tuple]] = {
    "in-context-recall": {"vocab_size": (32, 64, 128), "seq_len": (256, 512, 1024), "num_train_examples": _EXAMPLES},
    "fuzzy-in-context-recall": {"vocab_size": (32, 64, 128), "seq_len": (256, 512, 1024), "num_train_examples": _EXAMPLES},
    "noisy-in-context-recall": {
        "vocab_size": (48, 80, 144),  # includes the 16 noise tokens
        "seq_len": (256, 512, 1024),
        "num_train_examples": _EXAMPLES,
        "frac_noise": (0.4, 0.6, 0.8),
    },
    "selective-copying": {
        "vocab_size": (32, 64, 128),
        "seq_len": (512, 1024),
        "num_train_examples": _EXAMPLES,
        "num_tokens_to_copy": (32, 64, 96),
    },
    "compression": {"vocab_size": (32, 64, 128), "seq_len": (64, 128, 256), "num_train_examples": _EXAMPLES},
    "memorization": {"vocab_size": (512, 1024, 2048, 4096, 8192)},
}
"""Task → field → values tried one at a time (all other fields at the base)."""


@dataclass(frozen=True)
class SettingId:
    """One task setting of the protocol."""

    task: str
    setting: TaskSetting
    name: str
    """``base`` or ``<field>=<value>``."""


def task_settings(task: str, variations: bool = True) -> list[SettingId]:
    """The base setting of ``task`` then (optionally) each one-at-a-time variation."""
    get_task(task)
    base = BASE_SETTINGS[task]
    out = [SettingId(task, base, "base")]
    if variations:
        for field, values in VARIATIONS[task].items():
            out += [SettingId(task, base.replace(**{field: v}), f"{field}={v}") for v in values]
    return out


def protocol(tasks: list[str] | tuple[str, ...], variations: bool = True) -> list[SettingId]:
    """All settings for ``tasks`` in order (validated: unknown task → ConfigError)."""
    for task in tasks:
        get_task(task)
    return [s for task in tasks for s in task_settings(task, variations)]
