"""MAD task generators: shapes, vocab segments, key→value consistency, probes, scoring masks, seeds."""

from __future__ import annotations

import numpy as np
import pytest

from composer_automl.config import ConfigError
from composer_automl.mad.settings import BASE_SETTINGS
from composer_automl.mad.tasks import (
    IGNORE_INDEX,
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

SMALL = {
    "in-context-recall": RecallSetting(vocab_size=16, seq_len=64),
    "fuzzy-in-context-recall": FuzzyRecallSetting(vocab_size=16, seq_len=64),
    "noisy-in-context-recall": NoisyRecallSetting(vocab_size=32, seq_len=64, noise_vocab_size=16, frac_noise=0.4),
    "selective-copying": SelectiveCopySetting(vocab_size=16, seq_len=64, num_tokens_to_copy=8),
    "compression": CompressionSetting(vocab_size=16, seq_len=32),
    "memorization": MemorizationSetting(vocab_size=64, seq_len=32),
}


def make(task: str, seed: int = 0, n: int = 50):
    return generate(task, SMALL[task], np.random.default_rng(seed), n)


@pytest.mark.parametrize("task", list(TASKS))
def test_shapes_dtypes_and_token_ranges(task):
    """Every task yields (n, seq_len) int64 arrays, inputs inside the vocabulary, targets scored somewhere."""
    x, y = make(task)
    s = SMALL[task]
    assert x.shape == y.shape == (50, s.seq_len)
    assert x.dtype == y.dtype == np.int64
    assert x.min() >= 0 and x.max() < s.vocab_size
    scored = y[y != IGNORE_INDEX]
    assert scored.size > 0 and scored.min() >= 0 and scored.max() < s.vocab_size
    assert set(np.unique(y)) <= set(range(s.vocab_size)) | {IGNORE_INDEX}


@pytest.mark.parametrize("task", list(TASKS))
def test_deterministic_under_seed_and_different_across_seeds(task):
    """Same seed → identical arrays; another seed → different inputs."""
    a, b, c = make(task, 1), make(task, 1), make(task, 2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("task", ["in-context-recall", "noisy-in-context-recall"])
def test_recall_keys_values_consistent_and_probes_seen(task):
    """Keys/values/noise stay in their segments; a key keeps one value per sequence; scored keys were seen before."""
    s = SMALL[task]
    n_keys = (s.vocab_size - s.noise_vocab_size) // 2
    x, y = make(task, n=100)
    for inputs, targets in zip(x, y):
        seen: dict[int, int] = {}
        for i in range(0, s.seq_len, 2):
            k, v = int(inputs[i]), int(inputs[i + 1])
            if k >= 2 * n_keys:  # a noise slot: both tokens are noise, nothing scored
                assert v >= 2 * n_keys and targets[i] == targets[i + 1] == IGNORE_INDEX
                continue
            assert 0 <= k < n_keys <= v < 2 * n_keys
            assert targets[i] in (IGNORE_INDEX, v) and targets[i + 1] == IGNORE_INDEX
            assert (targets[i] != IGNORE_INDEX) == (k in seen), "scored exactly where the key was seen before"
            assert seen.setdefault(k, v) == v, "key→value must be consistent within a sequence"
        assert targets[-2] == inputs[-1], "the last pair is always a probe"


def test_noisy_recall_noise_fraction_and_segment():
    """Noise tokens come from their own top segment, at roughly the requested fraction of slots."""
    s = SMALL["noisy-in-context-recall"]
    x, _ = make("noisy-in-context-recall", n=200)
    noise_slots = (x[:, ::2] >= s.vocab_size - s.noise_vocab_size).mean()
    assert 0.3 < noise_slots < 0.45  # 0.4 of the free slots (the probe and one pair are never noise)
    clean = make("in-context-recall", n=50)[0]
    assert clean.max() < SMALL["in-context-recall"].vocab_size


def test_fuzzy_recall_motifs_consistent_and_probe_at_end():
    """Fuzzy recall: scored tokens are values of a key motif seen earlier, predicted one position ahead."""
    s = SMALL["fuzzy-in-context-recall"]
    n_keys, pad = (s.vocab_size - 1) // 2, s.vocab_size - 1
    x, y = make("fuzzy-in-context-recall", n=50)
    for inputs, targets in zip(x, y):
        body = inputs[inputs != pad]
        assert (inputs[: len(inputs) - len(body)] == pad).all(), "padding only on the left"
        # split into alternating key / value runs by segment
        runs, cur = [], [int(body[0])]
        for t in body[1:]:
            if (t < n_keys) == (cur[-1] < n_keys):
                cur.append(int(t))
            else:
                runs.append(tuple(cur))
                cur = [int(t)]
        runs.append(tuple(cur))
        assert runs[0][0] < n_keys and len(runs) % 2 == 0
        pairs = list(zip(runs[0::2], runs[1::2]))
        kv: dict = {}
        for k, v in pairs:
            assert 1 <= len(k) <= s.k_motif_size and 1 <= len(v) <= s.v_motif_size
            assert kv.setdefault(k, v) == v
        assert pairs[-1][0] in [k for k, _ in pairs[:-1]], "the final key is a probe of a key already seen"
        scored = np.flatnonzero(targets != IGNORE_INDEX)
        np.testing.assert_array_equal(targets[scored], inputs[scored + 1])
        assert (inputs[scored + 1] >= n_keys).all(), "only value tokens are scored"
        assert targets[-2] == inputs[-1]


def test_selective_copying_layout():
    """Data tokens sit among blanks before one copy token; the trailing blanks predict them in order."""
    s = SMALL["selective-copying"]
    blank, copy = s.vocab_size - 2, s.vocab_size - 1
    x, y = make("selective-copying")
    n = s.num_tokens_to_copy
    for inputs, targets in zip(x, y):
        region = inputs[: s.seq_len - n - 1]
        data = region[region != blank]
        assert len(data) == n and data.max() < blank
        assert inputs[s.seq_len - n - 1] == copy and (inputs[-n:] == blank).all()
        assert (targets[: s.seq_len - n] == IGNORE_INDEX).all()
        np.testing.assert_array_equal(targets[-n:], data)


def test_compression_targets_restore_data_tokens():
    """Compression: inputs end with the compression token; targets are the data tokens (that token unscored)."""
    s = SMALL["compression"]
    x, y = make("compression")
    assert (x[:, -1] == s.vocab_size - 1).all() and (x[:, :-1] < s.vocab_size - 1).all()
    np.testing.assert_array_equal(y[:, :-1], x[:, :-1])
    assert (y[:, -1] == IGNORE_INDEX).all()


def test_memorization_map_fixed_across_samples_splits_and_seeds():
    """Memorization: insert positions predict map[key], the same map for every sample and seed."""
    s = SMALL["memorization"]
    kv_map = memorization_map(s.vocab_size)
    n_keys = (s.vocab_size - 1) // 2
    assert sorted(kv_map.tolist()) == list(range(n_keys, 2 * n_keys))
    for seed in (0, 1):
        x, y = make("memorization", seed)
        assert (x[:, 1::2] == s.vocab_size - 1).all() and (y[:, 0::2] == IGNORE_INDEX).all()
        np.testing.assert_array_equal(y[:, 1::2], kv_map[x[:, 0::2]])
    np.testing.assert_array_equal(memorization_map(s.vocab_size), kv_map)


def test_base_settings_generate():
    """All six MAD base settings are valid and produce a sample of their sequence length."""
    for task, setting in BASE_SETTINGS.items():
        x, y = generate(task, setting, np.random.default_rng(0), 1)
        assert x.shape == (1, setting.seq_len)


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
        generate("in-context-recall", SMALL["compression"], np.random.default_rng(0), 1)
