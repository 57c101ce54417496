"""MAD task generators against the reference definitions, measured over >= 1,000 sequences.

Each property is checked on the task's MAD base setting and on one variation.
"""

from __future__ import annotations

import numpy as np
import pytest

from composer_automl.config import ConfigError
from composer_automl.mad.settings import BASE_SETTINGS
from composer_automl.mad.tasks import (
    TASKS,
    CompressionSetting,
    FuzzyRecallSetting,
    MemorizationSetting,
    NoisyRecallSetting,
    RecallSetting,
    SelectiveCopySetting,
    generate,
    get_task,
    memorization_map,
)
from composer_automl.tokens import IGNORE_INDEX

N = 1000
VARIATION = {
    "in-context-recall": {"vocab_size": 32},
    "fuzzy-in-context-recall": {"vocab_size": 32},
    "noisy-in-context-recall": {"frac_noise": 0.6},
    "selective-copying": {"num_tokens_to_copy": 32},
    "compression": {"seq_len": 64},
    "memorization": {"vocab_size": 512},
}
"""One MAD variation per task (fields of the base setting changed)."""


def both(task):
    """(task, setting) parameters: the MAD base setting and one variation."""
    base = BASE_SETTINGS[task]
    return [pytest.param(task, base, id=f"{task}-base"),
            pytest.param(task, base.replace(**VARIATION[task]), id=f"{task}-var")]


def make(task, setting, split="train", n=N, seed=0):
    return generate(task, setting, np.random.default_rng(seed), n, split=split)


def full_tokens(inputs: np.ndarray, dense: np.ndarray) -> np.ndarray:
    """The whole generated sequence of a next-token task: inputs plus the last target."""
    return np.concatenate([inputs, dense[-1:]])


def split_runs(tokens, is_key):
    """Alternating runs of key tokens and value tokens (pads removed): [(kind, run), ...]."""
    runs = []
    for t in tokens:
        kind = "k" if is_key(t) else "v"
        if runs and runs[-1][0] == kind:
            runs[-1][1].append(int(t))
        else:
            runs.append((kind, [int(t)]))
    return [(kind, tuple(run)) for kind, run in runs]


@pytest.mark.parametrize("task", list(TASKS))
def test_shapes_dtypes_and_token_ranges(task):
    """Every task yields three equal-shape int64 arrays; inputs and targets inside the vocabulary."""
    s = BASE_SETTINGS[task]
    for split in ("train", "test"):
        x, scored, dense = make(task, s, split, n=20)
        assert x.shape == scored.shape == dense.shape and x.dtype == scored.dtype == dense.dtype == np.int64
        assert x.min() >= 0 and x.max() < s.vocab_size
        for y in (scored, dense):
            kept = y[y != IGNORE_INDEX]
            assert kept.size > 0 and kept.min() >= 0 and kept.max() < s.vocab_size


def test_sequence_lengths_follow_the_reference():
    """Recall models see seq_len − 1 tokens, fuzzy recall seq_len (padded to seq_len + 1), the others seq_len."""
    lengths = {task: make(task, BASE_SETTINGS[task], n=1)[0].shape[1] for task in TASKS}
    assert lengths == {"in-context-recall": 127, "fuzzy-in-context-recall": 128, "noisy-in-context-recall": 127,
                       "selective-copying": 256, "compression": 32, "memorization": 32}


@pytest.mark.parametrize("task", list(TASKS))
def test_deterministic_under_seed_and_different_across_seeds(task):
    """Same seed → identical arrays; another seed → different inputs."""
    s = BASE_SETTINGS[task]
    a, b, c = make(task, s, n=20, seed=1), make(task, s, n=20, seed=1), make(task, s, n=20, seed=2)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("task, setting", both("in-context-recall") + both("noisy-in-context-recall")
                         + both("fuzzy-in-context-recall"))
def test_recall_family_trains_on_every_next_token(task, setting):
    """Dense targets cover every position (the next token); scored targets are a subset of them."""
    x, scored, dense = make(task, setting)
    assert (dense != IGNORE_INDEX).all()
    np.testing.assert_array_equal(dense[:, :-1], x[:, 1:])
    kept = scored != IGNORE_INDEX
    np.testing.assert_array_equal(scored[kept], dense[kept])


@pytest.mark.parametrize("task, setting", both("in-context-recall") + both("noisy-in-context-recall"))
def test_recall_probes_answerable_from_context(task, setting):
    """Every scored position asks for the value of a key shown earlier with that value; keys keep one value."""
    n_keys = (setting.vocab_size - setting.noise_vocab_size) // 2
    for split in ("train", "test"):
        x, scored, dense = make(task, setting, split)
        for inputs, targets, nxt in zip(x, scored, dense):
            tokens = full_tokens(inputs, nxt)
            seen: dict[int, int] = {}
            for i in range(0, len(tokens), 2):
                k, v = int(tokens[i]), int(tokens[i + 1])
                if k >= 2 * n_keys:  # a noise slot: nothing scored there
                    assert v >= 2 * n_keys and targets[i] == IGNORE_INDEX
                    continue
                assert 0 <= k < n_keys <= v < 2 * n_keys
                assert (targets[i] != IGNORE_INDEX) == (k in seen), "scored exactly where the key was seen before"
                assert seen.setdefault(k, v) == v
                if targets[i] != IGNORE_INDEX:
                    assert targets[i] == v
            assert targets[-1] != IGNORE_INDEX, "the last pair is always a probe"


def test_noisy_recall_noise_fraction_and_segment():
    """Noise tokens come from their own top segment, at about the requested fraction of slots."""
    s = BASE_SETTINGS["noisy-in-context-recall"].replace(frac_noise=0.4)
    x, _, dense = make("noisy-in-context-recall", s)
    tokens = np.concatenate([x, dense[:, -1:]], axis=1)
    noise_slots = (tokens[:, ::2] >= s.vocab_size - s.noise_vocab_size).mean()
    assert 0.36 < noise_slots < 0.41  # 0.4 of the free slots (the probe and one pair are never noise)


@pytest.mark.parametrize("task, setting", both("fuzzy-in-context-recall"))
def test_fuzzy_recall_keys_values_and_probes(task, setting):
    """Train keys take every size 1..k, test keys exactly k; values 1..v from the upper half; probes answerable."""
    n_keys = (setting.vocab_size - 1) // 2
    pad = setting.vocab_size - 1
    key_sizes = {"train": set(), "test": set()}
    value_tokens = set()
    for split in ("train", "test"):
        x, scored, dense = make(task, setting, split)
        for inputs, targets, nxt in zip(x, scored, dense):
            tokens = full_tokens(inputs, nxt)
            body_start = int(np.argmax(tokens != pad))
            assert (tokens[:body_start] == pad).all() and (tokens[body_start:] != pad).all(), "left padding only"
            runs = split_runs(tokens[body_start:], lambda t: t < n_keys)
            assert runs[0][0] == "k" and len(runs) % 2 == 0
            kv: dict = {}
            position = body_start
            for (_, k), (_, v) in zip(runs[0::2], runs[1::2]):
                key_sizes[split].add(len(k))
                assert 1 <= len(v) <= setting.v_motif_size and len(set(k)) == len(k) and len(set(v)) == len(v)
                value_tokens.update(v)
                value_at = position + len(k)  # first value token's position in tokens
                expected = np.array(v) if k in kv else np.full(len(v), IGNORE_INDEX)
                if k in kv:
                    assert kv[k] == v, "a repeated key is answered by the value shown with it before"
                np.testing.assert_array_equal(targets[value_at - 1 : value_at - 1 + len(v)], expected)
                kv.setdefault(k, v)
                position = value_at + len(v)
            assert targets[-1] != IGNORE_INDEX, "the final pair is a probe"
    assert key_sizes["train"] == set(range(1, setting.k_motif_size + 1))
    assert key_sizes["test"] == {setting.k_motif_size}
    assert value_tokens == set(range(n_keys, setting.vocab_size - 1))  # 8 value tokens at vocab 16


@pytest.mark.parametrize("task, setting", both("selective-copying"))
def test_selective_copying_keeps_order_and_ends_data_at_the_copy_token(task, setting):
    """Data tokens keep their order among blanks, the last one right before the copy token; the tail recalls them."""
    blank, copy, n = setting.vocab_size - 2, setting.vocab_size - 1, setting.num_tokens_to_copy
    x, scored, dense = make(task, setting)
    np.testing.assert_array_equal(scored, dense)
    copy_at = setting.seq_len - n - 1
    blanks_in_front = set()
    for inputs, targets in zip(x, scored):
        assert inputs[copy_at] == copy and (inputs[copy_at + 1 :] == blank).all()
        region = inputs[:copy_at]
        assert region[-1] != blank, "the last data token sits right before the copy token"
        data = region[region != blank]
        assert len(data) == n and data.max() < blank
        np.testing.assert_array_equal(targets[-n:], data)  # data order kept
        assert (targets[:-n] == IGNORE_INDEX).all()
        blanks_in_front.add(int(np.argmax(region != blank)))
    assert len(blanks_in_front) > 1, "blanks are spread, not only in front"


@pytest.mark.parametrize("task, setting", both("compression"))
def test_compression_scores_every_position_including_the_compression_token(task, setting):
    """Targets restore all T positions: the data tokens and the compression token itself."""
    x, scored, dense = make(task, setting)
    assert (x[:, -1] == setting.vocab_size - 1).all() and (x[:, :-1] < setting.vocab_size - 1).all()
    np.testing.assert_array_equal(scored, x)
    np.testing.assert_array_equal(dense, x)
    assert (scored != IGNORE_INDEX).sum(axis=1).tolist() == [setting.seq_len] * N


@pytest.mark.parametrize("task, setting", both("memorization"))
def test_memorization_probes_answerable_from_the_training_map(task, setting):
    """Insert positions predict map[key]: one fixed map for train and test, every seed; keys drawn from it."""
    kv_map = memorization_map(setting.vocab_size)
    n_keys = (setting.vocab_size - 1) // 2
    assert sorted(kv_map.tolist()) == list(range(n_keys, 2 * n_keys))
    train_keys = set()
    for split, seed in (("train", 0), ("test", 0), ("test", 1)):
        x, scored, dense = make(task, setting, split, seed=seed)
        np.testing.assert_array_equal(scored, dense)
        assert (x[:, 1::2] == setting.vocab_size - 1).all() and (scored[:, 0::2] == IGNORE_INDEX).all()
        np.testing.assert_array_equal(scored[:, 1::2], kv_map[x[:, 0::2]])
        if split == "train":
            train_keys = set(x[:, 0::2].ravel().tolist())
    assert train_keys == set(range(n_keys)), "with 1,000 training sequences every key of the map is shown"


def test_base_settings_generate():
    """All six MAD base settings are valid and generate both splits."""
    for task, setting in BASE_SETTINGS.items():
        for split in ("train", "test"):
            x, _, _ = generate(task, setting, np.random.default_rng(0), 1, split=split)
            assert x.shape[0] == 1


@pytest.mark.parametrize(
    "make_setting, field",
    [
        (lambda: RecallSetting(vocab_size=16, seq_len=2), "seq_len"),
        (lambda: RecallSetting(vocab_size=16, seq_len=63), "seq_len"),
        (lambda: NoisyRecallSetting(vocab_size=18, seq_len=64, noise_vocab_size=16, frac_noise=0.2), "vocab_size"),
        (lambda: NoisyRecallSetting(vocab_size=32, seq_len=64, noise_vocab_size=16, frac_noise=1.0), "frac_noise"),
        (lambda: FuzzyRecallSetting(vocab_size=16, seq_len=12), "seq_len"),
        (lambda: FuzzyRecallSetting(vocab_size=6, seq_len=64), "vocab_size"),
        (lambda: SelectiveCopySetting(vocab_size=16, seq_len=32, num_tokens_to_copy=16), "num_tokens_to_copy"),
        (lambda: MemorizationSetting(vocab_size=4, seq_len=32), "vocab_size"),
        (lambda: CompressionSetting(vocab_size=16, seq_len=0), "seq_len"),
    ],
)
def test_impossible_settings_raise_config_error(make_setting, field):
    """Settings that cannot produce a sample fail at construction with a ConfigError naming the field."""
    with pytest.raises(ConfigError, match=field):
        make_setting()


def test_unknown_task_and_wrong_setting_type():
    """Unknown task names list the six tasks; a setting of another task is rejected."""
    with pytest.raises(ConfigError, match="in-context-recall"):
        get_task("recall")
    with pytest.raises(ConfigError, match="RecallSetting"):
        generate("in-context-recall", BASE_SETTINGS["compression"], np.random.default_rng(0), 1)
