"""The six MAD synthetic tasks: settings and sample generators.

Every generator is a pure function ``sample(rng, setting) -> (inputs, targets)``
of an explicit :class:`numpy.random.Generator`; both arrays are int64 of length
``setting.seq_len``. ``targets[t]`` is the token position ``t`` must predict and
is ``IGNORE_INDEX`` (−100) wherever the task does not score.

Vocabulary layout (token ids), per task:

- in-context recall / noisy recall: keys ``[0, K)``, values ``[K, 2K)``,
  noise ``[V−noise_vocab_size, V)``; ``K = (V − noise_vocab_size) // 2``.
- fuzzy recall: keys ``[0, K)``, values ``[K, 2K)``, pad ``V−1``; ``K = (V−1) // 2``.
- selective copying: data ``[0, V−2)``, blank ``V−2``, copy ``V−1``.
- compression: data ``[0, V−1)``, compression token ``V−1``.
- memorization: keys ``[0, K)``, values ``[K, 2K)``, insert ``V−1``; ``K = (V−1) // 2``.

Differences from mad-lab, on purpose: models train on the scored positions only
(mad-lab trains recall tasks on every next token), fuzzy-recall keys take 1..k
tokens in train and test alike, and compression does not score its own
compression token.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

from composer_automl.config import ConfigError

IGNORE_INDEX = -100
MEMORIZATION_MAP_SEED = 12345
"""Seed of the fixed memorization key→value map (independent of the data seed)."""


@dataclass(frozen=True)
class TaskSetting:
    """Fields every task has: vocabulary, sequence length, training-set size."""

    vocab_size: int
    """Total number of token ids the model sees (all segments, special tokens included)."""
    seq_len: int
    """Length of every input sequence."""
    num_train_examples: int = 12_800
    """Training sequences (MAD varies this to probe sample efficiency)."""

    def __post_init__(self) -> None:
        for name in ("vocab_size", "seq_len", "num_train_examples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{self.task_label()}.{name} must be a positive integer, got {value!r}")
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError if the setting cannot produce a sample."""

    def task_label(self) -> str:
        return type(self).__name__

    def replace(self, **changes) -> "TaskSetting":
        return dataclasses.replace(self, **changes)

    def label(self) -> str:
        """Short id of the setting, e.g. ``v16-t128-n12800``."""
        parts = {"vocab_size": "v", "seq_len": "t", "num_train_examples": "n", "noise_vocab_size": "nv",
                 "frac_noise": "fn", "k_motif_size": "km", "v_motif_size": "vm", "num_tokens_to_copy": "c"}
        return "-".join(f"{parts[f.name]}{getattr(self, f.name)}" for f in dataclasses.fields(self))


def _need(ok: bool, setting: TaskSetting, message: str) -> None:
    if not ok:
        raise ConfigError(f"{setting.task_label()} {setting.label()}: {message}")


# -- in-context recall (multi-query), noisy in-context recall -------------------------------


@dataclass(frozen=True)
class RecallSetting(TaskSetting):
    """Multi-query associative recall: key-value pairs, every repeated key is a probe."""

    noise_vocab_size: int = 0
    """Noise tokens, in their own segment at the top of the vocabulary."""
    frac_noise: float = 0.0
    """Probability that a key-value slot is replaced by two noise tokens."""

    def validate(self) -> None:
        kv_vocab = self.vocab_size - self.noise_vocab_size
        _need(self.noise_vocab_size >= 0, self, "noise_vocab_size must be >= 0")
        _need(kv_vocab >= 4, self, f"vocab_size={self.vocab_size} is too small for >=2 keys + >=2 values "
              f"+ {self.noise_vocab_size} noise tokens (need vocab_size >= {self.noise_vocab_size + 4})")
        _need(self.seq_len % 2 == 0 and self.seq_len >= 4, self,
              f"seq_len={self.seq_len} must be even and >= 4 (room for a key-value pair and a probe)")
        _need(0.0 <= self.frac_noise < 1.0, self, f"frac_noise={self.frac_noise} must be in [0, 1)")
        _need(self.frac_noise == 0 or self.noise_vocab_size > 0, self, "frac_noise > 0 needs noise_vocab_size > 0")


@dataclass(frozen=True)
class NoisyRecallSetting(RecallSetting):
    """In-context recall with noise tokens interleaved between the pairs."""


def sample_recall(rng: np.random.Generator, s: RecallSetting) -> tuple[np.ndarray, np.ndarray]:
    """Key-value pairs with per-sequence consistent values; repeated keys are scored.

    Slot ``i`` occupies positions ``2i`` (key) and ``2i+1`` (value); the key position
    predicts the value when that key appeared before. The last pair is always a probe.
    """
    n_keys = (s.vocab_size - s.noise_vocab_size) // 2
    n_pairs = s.seq_len // 2
    inputs = np.empty(s.seq_len, dtype=np.int64)
    targets = np.full(s.seq_len, IGNORE_INDEX, dtype=np.int64)
    values = rng.integers(n_keys, 2 * n_keys, size=n_keys)  # this sequence's key→value map
    seen = np.zeros(n_keys, dtype=bool)
    first_pair = rng.integers(n_pairs - 1)  # this slot is never noise: the probe has a key to recall
    for i in range(n_pairs):
        if i == n_pairs - 1:
            key = rng.choice(np.flatnonzero(seen))  # the final probe: a key already shown
        elif i != first_pair and s.frac_noise > 0 and rng.random() < s.frac_noise:
            inputs[2 * i : 2 * i + 2] = rng.integers(s.vocab_size - s.noise_vocab_size, s.vocab_size, size=2)
            continue
        else:
            key = rng.integers(n_keys)
        inputs[2 * i], inputs[2 * i + 1] = key, values[key]
        if seen[key]:
            targets[2 * i] = values[key]
        seen[key] = True
    return inputs, targets


# -- fuzzy in-context recall --------------------------------------------------------------


@dataclass(frozen=True)
class FuzzyRecallSetting(TaskSetting):
    """Recall where keys and values are motifs of 1..k adjacent tokens."""

    k_motif_size: int = 3
    """Longest key motif (tokens)."""
    v_motif_size: int = 3
    """Longest value motif (tokens)."""

    def validate(self) -> None:
        half = (self.vocab_size - 1) // 2
        _need(self.k_motif_size >= 1 and self.v_motif_size >= 1, self, "motif sizes must be >= 1")
        _need(half >= max(self.k_motif_size, self.v_motif_size, 2), self,
              f"vocab_size={self.vocab_size} is too small for motifs of {self.k_motif_size}/{self.v_motif_size} "
              f"distinct tokens + a pad token (need vocab_size >= {2 * max(self.k_motif_size, self.v_motif_size, 2) + 1})")
        pair = self.k_motif_size + self.v_motif_size
        _need(self.seq_len >= 3 * pair, self,
              f"seq_len={self.seq_len} is too short for a key-value pair, its probe and one more pair "
              f"(need seq_len >= {3 * pair})")


def sample_fuzzy_recall(rng: np.random.Generator, s: FuzzyRecallSetting) -> tuple[np.ndarray, np.ndarray]:
    """Motif key→value pairs, left-padded; the value tokens of repeated keys are scored.

    A probe pair sits at a random place in the body and is repeated at the end.
    Value token ``j`` is predicted at the position just before it (the last key
    token for ``j = 0``).
    """
    n_keys = (s.vocab_size - 1) // 2
    pad = s.vocab_size - 1

    def motif(low: int, longest: int) -> tuple[int, ...]:
        size = rng.integers(1, longest + 1)
        return tuple(int(t) for t in rng.choice(np.arange(low, low + n_keys), size=size, replace=False))

    probe_key, probe_value = motif(0, s.k_motif_size), motif(n_keys, s.v_motif_size)
    kv_map = {probe_key: probe_value}  # one value per key within the sequence
    capacity = s.seq_len - 2 * (len(probe_key) + len(probe_value))  # room beside the two probe copies
    pairs: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    used = 0
    while True:
        key = motif(0, s.k_motif_size)
        value = kv_map.setdefault(key, motif(n_keys, s.v_motif_size))
        if used + len(key) + len(value) > capacity:
            break
        pairs.append((key, value))
        used += len(key) + len(value)
    pairs.insert(int(rng.integers(len(pairs) + 1)), (probe_key, probe_value))
    pairs.append((probe_key, probe_value))

    tokens = [pad] * (s.seq_len - used - 2 * (len(probe_key) + len(probe_value)))
    targets = np.full(s.seq_len, IGNORE_INDEX, dtype=np.int64)
    seen: set[tuple[int, ...]] = set()
    for key, value in pairs:
        tokens += key
        if key in seen:  # a probe: position p−1 predicts value token at p
            targets[len(tokens) - 1 : len(tokens) - 1 + len(value)] = value
        seen.add(key)
        tokens += value
    return np.array(tokens, dtype=np.int64), targets


# -- selective copying --------------------------------------------------------------------


@dataclass(frozen=True)
class SelectiveCopySetting(TaskSetting):
    """Copy the data tokens scattered among blanks, in order, after a copy token."""

    num_tokens_to_copy: int = 16
    """Data tokens to remember and reproduce."""

    def validate(self) -> None:
        _need(self.vocab_size >= 3, self, f"vocab_size={self.vocab_size} must be >= 3 (data + blank + copy tokens)")
        _need(self.num_tokens_to_copy >= 1, self, "num_tokens_to_copy must be >= 1")
        _need(self.seq_len >= 2 * self.num_tokens_to_copy + 1, self,
              f"num_tokens_to_copy={self.num_tokens_to_copy} does not fit: seq_len must be >= "
              f"2*num_tokens_to_copy+1 = {2 * self.num_tokens_to_copy + 1}")


def sample_selective_copy(rng: np.random.Generator, s: SelectiveCopySetting) -> tuple[np.ndarray, np.ndarray]:
    """``[data tokens scattered among blanks] copy blank×n``; the n trailing blanks predict the data."""
    n = s.num_tokens_to_copy
    blank, copy = s.vocab_size - 2, s.vocab_size - 1
    region = s.seq_len - n - 1
    data = rng.integers(0, s.vocab_size - 2, size=n)
    inputs = np.full(s.seq_len, blank, dtype=np.int64)
    inputs[np.sort(rng.choice(region, size=n, replace=False))] = data
    inputs[region] = copy
    targets = np.full(s.seq_len, IGNORE_INDEX, dtype=np.int64)
    targets[region + 1 :] = data
    return inputs, targets


# -- compression --------------------------------------------------------------------------


@dataclass(frozen=True)
class CompressionSetting(TaskSetting):
    """Encode a random sequence into one vector (the last position) and decode it back."""

    def validate(self) -> None:
        _need(self.vocab_size >= 2, self, f"vocab_size={self.vocab_size} must be >= 2 (data + compression token)")
        _need(self.seq_len >= 2, self, f"seq_len={self.seq_len} must be >= 2")


def sample_compression(rng: np.random.Generator, s: CompressionSetting) -> tuple[np.ndarray, np.ndarray]:
    """Random data tokens then the compression token; targets restore every data token."""
    inputs = np.empty(s.seq_len, dtype=np.int64)
    inputs[:-1] = rng.integers(0, s.vocab_size - 1, size=s.seq_len - 1)
    inputs[-1] = s.vocab_size - 1
    targets = inputs.copy()
    targets[-1] = IGNORE_INDEX
    return inputs, targets


# -- memorization -------------------------------------------------------------------------


@dataclass(frozen=True)
class MemorizationSetting(TaskSetting):
    """Recall values of one key→value map fixed across all samples and splits."""

    def validate(self) -> None:
        _need(self.vocab_size >= 5, self, f"vocab_size={self.vocab_size} must be >= 5 (>=2 keys, >=2 values, insert)")
        _need(self.seq_len % 2 == 0, self, f"seq_len={self.seq_len} must be even (key, insert pairs)")


def memorization_map(vocab_size: int) -> np.ndarray:
    """The fixed map: ``map[key]`` for keys ``[0, K)``, a permutation of values ``[K, 2K)``."""
    n_keys = (vocab_size - 1) // 2
    return n_keys + np.random.default_rng(MEMORIZATION_MAP_SEED).permutation(n_keys)


def sample_memorization(rng: np.random.Generator, s: MemorizationSetting) -> tuple[np.ndarray, np.ndarray]:
    """``key insert key insert ...``; each insert position predicts ``map[key]``."""
    kv_map = memorization_map(s.vocab_size)
    keys = rng.integers(0, len(kv_map), size=s.seq_len // 2)
    inputs = np.full(s.seq_len, s.vocab_size - 1, dtype=np.int64)
    inputs[0::2] = keys
    targets = np.full(s.seq_len, IGNORE_INDEX, dtype=np.int64)
    targets[1::2] = kv_map[keys]
    return inputs, targets


# -- registry -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """A MAD task: its setting type, sample generator and model head."""

    name: str
    setting_cls: type[TaskSetting]
    sample: Callable[[np.random.Generator, TaskSetting], tuple[np.ndarray, np.ndarray]]
    autoencoder: bool = False
    """Read out through an encoder bottleneck + decoder (compression) instead of an LM head."""


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task("in-context-recall", RecallSetting, sample_recall),
        Task("fuzzy-in-context-recall", FuzzyRecallSetting, sample_fuzzy_recall),
        Task("noisy-in-context-recall", NoisyRecallSetting, sample_recall),
        Task("selective-copying", SelectiveCopySetting, sample_selective_copy),
        Task("compression", CompressionSetting, sample_compression, autoencoder=True),
        Task("memorization", MemorizationSetting, sample_memorization),
    )
}
"""Task name → :class:`Task`, in MAD's order."""


def get_task(name: str) -> Task:
    """Look a task up by name; unknown names raise a ConfigError listing the six."""
    if name not in TASKS:
        raise ConfigError(f"unknown MAD task {name!r}; choose from {list(TASKS)}")
    return TASKS[name]


def generate(task: str, setting: TaskSetting, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples stacked: inputs and targets of shape (n, seq_len), int64."""
    spec = get_task(task)
    if not isinstance(setting, spec.setting_cls):
        raise ConfigError(f"task {task} needs a {spec.setting_cls.__name__}, got {type(setting).__name__}")
    pairs = [spec.sample(rng, setting) for _ in range(n)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
