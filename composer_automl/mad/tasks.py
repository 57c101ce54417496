"""The six MAD synthetic tasks: settings and sample generators, as the MAD reference defines them.

Every generator is a pure function ``sample(rng, setting) -> Sample`` of an explicit
:class:`numpy.random.Generator`. A :class:`Sample` holds three int64 arrays of one
length: the model's ``inputs``, the ``scored`` targets (what accuracy and the test
loss count; ``IGNORE_INDEX`` elsewhere) and the ``dense`` targets a model trains on
with ``train_on: all``: the next token at every position for the recall family (as
the reference trains them), the scored targets for the other tasks.

Vocabulary layout (token ids), per task, with ``V = vocab_size``:

- in-context recall / noisy recall (multi-query): keys ``[0, K)``, values ``[K, 2K)``,
  noise ``[V−noise_vocab_size, V)``; ``K = (V − noise_vocab_size) // 2``.
- fuzzy recall (multi-query): keys ``[0, K)``, values ``[K, V−1)`` (the upper half of the
  non-special tokens: 8 at V=16), pad ``V−1``; ``K = (V−1) // 2``. Training keys and
  values are motifs of 1..k and 1..v distinct tokens; test keys have exactly
  ``k_motif_size`` tokens (that is what the task tests), test values 1..v.
- selective copying: data ``[0, V−2)``, blank ``V−2``, copy ``V−1``. Data tokens keep
  their order; blanks go only before data tokens, so the last data token sits right
  before the copy token.
- compression: data ``[0, V−1)``, compression token ``V−1``; every position is
  scored, the compression token's own included.
- memorization: keys ``[0, K)``, values ``[K, 2K)``, insert ``V−1``; ``K = (V−1) // 2``.

Sequence lengths follow the reference: recall and noisy recall build ``seq_len``
tokens and the model sees the first ``seq_len − 1`` (the last one is only a target);
fuzzy recall left-pads to ``seq_len + 1`` tokens and the model sees ``seq_len``; the
other tasks are ``seq_len`` long.

Deliberate differences from the reference (athms/mad-lab), each to keep every scored
position answerable or the code well-defined:

- recall: the slot that is never noise is drawn among the body's pairs, so the final
  probe always has a presented key (the reference may draw the final slot, leaving a
  noisy sequence without any key: an error there);
- fuzzy recall: the probe pair is always placed inside the body (the reference can end
  the body before reaching its random probe position, and then scores a probe whose
  key never appeared);
- selective copying draws the blank positions from the task's ``rng`` (the reference
  uses NumPy's global RNG there, so its data are not reproducible from the seed);
- memorization's value segment is ``[K, 2K)`` (the reference's map leaves its top value
  token unused anyway: ``K`` keys are paired with ``K`` of its ``K+1`` values).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np

from composer_automl.config import ConfigError
from composer_automl.tokens import IGNORE_INDEX

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


@dataclass(frozen=True)
class Sample:
    """One generated sequence: model inputs, scored targets and dense (training) targets."""

    inputs: np.ndarray
    scored: np.ndarray
    """Targets counted by accuracy and test loss; ``IGNORE_INDEX`` elsewhere."""
    dense: np.ndarray
    """Targets of ``train_on: all`` training (the next token everywhere, recall family)."""


def _next_token_sample(tokens: np.ndarray, scored_next: np.ndarray) -> Sample:
    """A sequence trained on every next token: inputs ``tokens[:-1]``, targets ``tokens[1:]``.

    ``scored_next[t]`` is the scored target of the token at position ``t`` (it is predicted
    from position ``t − 1``), ``IGNORE_INDEX`` where nothing is scored.
    """
    return Sample(tokens[:-1], scored_next[1:], tokens[1:].copy())


def sample_recall(rng: np.random.Generator, s: RecallSetting) -> Sample:
    """Multi-query key-value recall: every value of a key seen before is scored.

    Slot ``i`` holds the key at ``2i`` and the value at ``2i+1`` (or two noise tokens);
    the model predicts a repeated key's value at the key's position. The last slot is
    always a probe of a key already shown.
    """
    n_keys = (s.vocab_size - s.noise_vocab_size) // 2
    n_pairs = s.seq_len // 2
    tokens = np.empty(s.seq_len, dtype=np.int64)
    scored = np.full(s.seq_len, IGNORE_INDEX, dtype=np.int64)
    values = rng.integers(n_keys, 2 * n_keys, size=n_keys)  # this sequence's key→value map
    seen = np.zeros(n_keys, dtype=bool)
    not_noise = rng.integers(n_pairs - 1)  # this slot is never noise: the probe has a key to recall
    for i in range(n_pairs):
        if i == n_pairs - 1:
            key = rng.choice(np.flatnonzero(seen))  # the final probe: a key already shown
        elif i != not_noise and s.frac_noise > 0 and rng.random() < s.frac_noise:
            tokens[2 * i : 2 * i + 2] = rng.integers(s.vocab_size - s.noise_vocab_size, s.vocab_size, size=2)
            continue
        else:
            key = rng.integers(n_keys)
        tokens[2 * i], tokens[2 * i + 1] = key, values[key]
        if seen[key]:
            scored[2 * i + 1] = values[key]
        seen[key] = True
    return _next_token_sample(tokens, scored)


# -- fuzzy in-context recall --------------------------------------------------------------


@dataclass(frozen=True)
class FuzzyRecallSetting(TaskSetting):
    """Recall where keys and values are motifs of 1..k adjacent tokens."""

    k_motif_size: int = 3
    """Longest key motif (tokens)."""
    v_motif_size: int = 3
    """Longest value motif (tokens)."""

    def validate(self) -> None:
        n_keys = (self.vocab_size - 1) // 2
        n_values = self.vocab_size - 1 - n_keys
        _need(self.k_motif_size >= 1 and self.v_motif_size >= 1, self, "motif sizes must be >= 1")
        _need(n_keys >= max(self.k_motif_size, 2) and n_values >= self.v_motif_size, self,
              f"vocab_size={self.vocab_size} is too small for key motifs of {self.k_motif_size} and value motifs of "
              f"{self.v_motif_size} distinct tokens + a pad token "
              f"(need vocab_size >= {2 * max(self.k_motif_size, self.v_motif_size, 2) + 1})")
        pair = self.k_motif_size + self.v_motif_size
        _need(self.seq_len >= 3 * pair, self,
              f"seq_len={self.seq_len} is too short for a key-value pair, its probe and one more pair "
              f"(need seq_len >= {3 * pair})")


def sample_fuzzy_recall(rng: np.random.Generator, s: FuzzyRecallSetting, train: bool = True) -> Sample:
    """Motif key→value pairs, left-padded; every value token of a repeated key is scored.

    Training keys have 1..k tokens, test keys exactly ``k_motif_size``; values 1..v
    tokens. A probe pair sits at a random place in the body and is repeated at the end.
    """
    n_keys = (s.vocab_size - 1) // 2
    pad = s.vocab_size - 1
    key_vocab, value_vocab = np.arange(n_keys), np.arange(n_keys, s.vocab_size - 1)

    def motif(vocab: np.ndarray, longest: int, exact: bool = False) -> tuple[int, ...]:
        size = longest if exact else int(rng.integers(1, longest + 1))
        return tuple(int(t) for t in rng.choice(vocab, size=size, replace=False))

    def key() -> tuple[int, ...]:
        return motif(key_vocab, s.k_motif_size, exact=not train)

    probe_key, probe_value = key(), motif(value_vocab, s.v_motif_size)
    kv_map = {probe_key: probe_value}  # one value per key within the sequence
    total = s.seq_len + 1  # the model sees tokens[:-1]
    capacity = total - 2 * (len(probe_key) + len(probe_value))  # room beside the two probe copies
    pairs: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    used = 0
    while True:
        k = key()
        v = kv_map.setdefault(k, motif(value_vocab, s.v_motif_size))
        if used + len(k) + len(v) > capacity:
            break
        pairs.append((k, v))
        used += len(k) + len(v)
    pairs.insert(int(rng.integers(len(pairs) + 1)), (probe_key, probe_value))
    pairs.append((probe_key, probe_value))

    tokens = [pad] * (capacity - used)
    scored = np.full(total, IGNORE_INDEX, dtype=np.int64)
    seen: set[tuple[int, ...]] = set()
    for k, v in pairs:
        tokens += k
        if k in seen:
            scored[len(tokens) : len(tokens) + len(v)] = v
        seen.add(k)
        tokens += v
    return _next_token_sample(np.array(tokens, dtype=np.int64), scored)


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


def sample_selective_copy(rng: np.random.Generator, s: SelectiveCopySetting) -> Sample:
    """``[data with blanks inserted before data tokens] copy blank×n``; the n trailing blanks predict the data."""
    n = s.num_tokens_to_copy
    blank, copy = s.vocab_size - 2, s.vocab_size - 1
    n_blanks = s.seq_len - 2 * n - 1
    data = rng.integers(0, s.vocab_size - 2, size=n)
    blanks_before = np.bincount(rng.integers(0, n, size=n_blanks), minlength=n)  # blanks in front of data token i
    region = np.full(n + n_blanks, blank, dtype=np.int64)
    region[np.arange(n) + np.cumsum(blanks_before)] = data  # order kept; the last data token ends the region
    inputs = np.concatenate([region, [copy], np.full(n, blank)]).astype(np.int64)
    targets = np.full(s.seq_len, IGNORE_INDEX, dtype=np.int64)
    targets[-n:] = data
    return Sample(inputs, targets, targets.copy())


# -- compression --------------------------------------------------------------------------


@dataclass(frozen=True)
class CompressionSetting(TaskSetting):
    """Encode a random sequence into one vector (the last position) and decode it back."""

    def validate(self) -> None:
        _need(self.vocab_size >= 2, self, f"vocab_size={self.vocab_size} must be >= 2 (data + compression token)")
        _need(self.seq_len >= 2, self, f"seq_len={self.seq_len} must be >= 2")


def sample_compression(rng: np.random.Generator, s: CompressionSetting) -> Sample:
    """Random data tokens then the compression token; every position (that token's too) is restored."""
    inputs = np.empty(s.seq_len, dtype=np.int64)
    inputs[:-1] = rng.integers(0, s.vocab_size - 1, size=s.seq_len - 1)
    inputs[-1] = s.vocab_size - 1
    return Sample(inputs, inputs.copy(), inputs.copy())


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


def sample_memorization(rng: np.random.Generator, s: MemorizationSetting) -> Sample:
    """``key insert key insert ...``; each insert position predicts ``map[key]``."""
    kv_map = memorization_map(s.vocab_size)
    keys = rng.integers(0, len(kv_map), size=s.seq_len // 2)
    inputs = np.full(s.seq_len, s.vocab_size - 1, dtype=np.int64)
    inputs[0::2] = keys
    targets = np.full(s.seq_len, IGNORE_INDEX, dtype=np.int64)
    targets[1::2] = kv_map[keys]
    return Sample(inputs, targets, targets.copy())


# -- registry -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """A MAD task: its setting type, sample generators and model head."""

    name: str
    setting_cls: type[TaskSetting]
    sample: Callable[[np.random.Generator, TaskSetting], Sample]
    """Generator of training sequences."""
    test_sample: Callable[[np.random.Generator, TaskSetting], Sample] | None = None
    """Generator of test sequences when they differ from training ones (fuzzy recall's full-size keys)."""
    autoencoder: bool = False
    """Read out through an encoder bottleneck + decoder (compression) instead of an LM head."""


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task("in-context-recall", RecallSetting, sample_recall),
        Task("fuzzy-in-context-recall", FuzzyRecallSetting, sample_fuzzy_recall,
             test_sample=functools.partial(sample_fuzzy_recall, train=False)),
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


def generate(task: str, setting: TaskSetting, rng: np.random.Generator, n: int,
             split: str = "train") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` samples of ``split`` (``train`` or ``test``) stacked: inputs, scored and dense targets, (n, T) int64."""
    spec = get_task(task)
    if not isinstance(setting, spec.setting_cls):
        raise ConfigError(f"task {task} needs a {spec.setting_cls.__name__}, got {type(setting).__name__}")
    sample = spec.test_sample if split == "test" and spec.test_sample else spec.sample
    samples = [sample(rng, setting) for _ in range(n)]
    return tuple(np.stack([getattr(x, f) for x in samples]) for f in ("inputs", "scored", "dense"))
