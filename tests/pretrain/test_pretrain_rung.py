"""The pretrain rung: real Lightning training on the embedded corpus, fixed held-out tokens."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from composer_automl.config import ConfigError
from composer_automl.data.config import DataConfig
from composer_automl.patterns import Pattern
from composer_automl.pretrain.config import PretrainConfig
from composer_automl.pretrain.run import load_data
from composer_automl.pretrain.rung import PretrainRung
from composer_automl.spec import SearchWidth
from composer_automl.rungs.registry import load_rung, rung_from_mapping

evaluate = PretrainRung().evaluate

TEST_WIDTH = SearchWidth(d_model=32, n_heads=2, n_kv_heads=1, ffn_hidden=64)

PATTERN = Pattern.parse("AMAM")


def test_training_lowers_validation_loss_and_same_seed_gives_same_loss(make_config, tmp_path):
    """30 steps beat 1 step on held-out loss by a wide margin; repeating a seed repeats the loss exactly."""
    untrained = evaluate(PATTERN, make_config(steps=1), TEST_WIDTH, tmp_path / "one", seed=0)
    trained = evaluate(PATTERN, make_config(steps=30), TEST_WIDTH, tmp_path / "a", seed=0)
    again = evaluate(PATTERN, make_config(steps=30), TEST_WIDTH, tmp_path / "b", seed=0)
    assert trained.loss < untrained.loss - 1.0
    assert again.loss == trained.loss
    assert trained.metrics["val_loss"] == trained.loss
    assert trained.metrics["train_tokens"] == 30 * 8 * 32 and trained.metrics["train_steps"] == 30
    assert trained.metrics["tokens_per_s"] > 0
    assert all(type(v) is float for v in trained.metrics.values())  # crosses Pyro4


def test_tensorboard_event_files_hold_losses_and_throughput(make_config, tmp_path):
    """The run writes TensorBoard events with train/loss, perf/tokens_per_s and val/loss."""
    evaluate(PATTERN, make_config(steps=6), TEST_WIDTH, tmp_path, seed=1)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "perf/tokens_per_s", "val/loss"} <= tags
    assert all(e.value > 0 for e in events.Scalars("perf/tokens_per_s"))


def test_held_out_tokens_are_the_same_for_every_trial(make_config):
    """Two loads of the rung's data give identical validation windows, spread over the valid split."""
    first, second = load_data(make_config()), load_data(make_config())
    assert len(first.valid) == 1024 // 32
    assert list(first.valid.indices) == list(second.valid.indices)
    assert all(torch.equal(first.valid[i][0], second.valid[i][0]) for i in range(len(first.valid)))
    assert max(first.valid.indices) > len(first.valid)  # not just the first windows of the split


def test_corpus_too_small_for_a_batch_is_one_clear_error(tmp_path):
    """A corpus with fewer train tokens than seq_len × batch_size raises ConfigError before training."""
    for i in range(4):
        (tmp_path / f"{i}.txt").write_text("tiny doc " * 5)
    cfg = PretrainConfig(data=DataConfig(source=str(tmp_path / "*.txt"), cache_dir=str(tmp_path / "c"), progress=False),
                         seq_len=128, batch_size=16, valid_tokens=128)
    with pytest.raises(ConfigError, match="too few for one batch of seq_len × batch_size = 128 × 16"):
        evaluate(PATTERN, cfg, TEST_WIDTH, tmp_path / "out", seed=0)
    assert not (tmp_path / "out").exists()


def test_shipped_pretrain_rungs_load_and_bad_keys_fail():
    """fidelity/pretrain-tiny.yaml and pretrain-small.yaml validate; an unknown key is a ConfigError."""
    tiny = load_rung("pretrain-tiny")
    assert tiny.kind == "pretrain" and isinstance(tiny.config, PretrainConfig)
    assert tiny.config.data.source == "stdlib" and tiny.config.accelerator == "cpu"
    assert load_rung("pretrain-small").config.precision == "bf16-mixed"
    with pytest.raises(ConfigError, match="unknown key"):
        rung_from_mapping("x", {"kind": "pretrain", "train_tokenz": 10})
    with pytest.raises(ConfigError, match="valid_tokens"):
        rung_from_mapping("x", {"kind": "pretrain", "seq_len": 256, "valid_tokens": 100})


def test_rung_width_overrides_train_a_narrower_model(make_config, tmp_path):
    """d_model / ffn_hidden in the rung config narrow the search width (fewer parameters, same data); bad values fail."""
    wide = evaluate(PATTERN, make_config(steps=2), TEST_WIDTH, tmp_path / "wide", seed=0)
    narrow = evaluate(PATTERN, make_config(steps=2, d_model=16, ffn_hidden=32), TEST_WIDTH, tmp_path / "narrow", seed=0)
    expected = SearchWidth(d_model=16, n_heads=2, n_kv_heads=1, ffn_hidden=32)
    assert TEST_WIDTH.narrowed(16, 32) == expected and TEST_WIDTH.narrowed(None, None) == TEST_WIDTH
    assert narrow.metrics["n_params"] < wide.metrics["n_params"]
    assert narrow.metrics["train_tokens"] == wide.metrics["train_tokens"]
    assert load_rung("pretrain-narrow").config.d_model == 64
    with pytest.raises(ConfigError, match="^d_model=0 must be a positive integer or null$"):
        make_config(d_model=0)


def test_master_prepares_the_corpus_once_and_trials_never_read_it(tmp_path):
    """``prepare_inputs`` (what the search master runs before any trial) tokenizes once; afterwards the
    corpus file's bytes are replaced by out-of-vocabulary ids with size and mtime kept, and trials still
    run on the prepared folder: a trial finds its data by path/size/mtime without reading the corpus."""
    source = tmp_path / "corpus.bin"
    tokens = np.random.default_rng(0).integers(0, 256, 30_000).astype(np.uint16)
    tokens[99::100] = 256
    tokens.tofile(source)
    rung = rung_from_mapping("p", {
        "kind": "pretrain", "seq_len": 32, "batch_size": 8, "train_tokens": 2 * 8 * 32, "valid_tokens": 256,
        "data": {"source": str(source), "cache_dir": str(tmp_path / "cache"), "progress": False}})
    assert rung.prepare_inputs().startswith("corpus prepared at ")
    assert rung.prepare_inputs().startswith("corpus cached at ")
    before = source.stat()
    np.full(30_000, 60_000, dtype=np.uint16).tofile(source)
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    result = rung(PATTERN, TEST_WIDTH, tmp_path / "trial", seed=0)
    assert np.isfinite(result.loss)
    assert len(list((tmp_path / "cache").iterdir())) == 1


@pytest.mark.slow  # Inductor compiles the forward and backward for the CPU: ~1 min on 2 cores
@pytest.mark.timeout(600)
def test_compiled_layers_train_to_the_eager_loss_and_a_later_trial_compiles_nothing(make_config, tmp_path):
    """pretrain.compile=true (each layer compiled by Inductor, through the same run code) trains to the eager run's
    held-out loss for the same seed; a second trial of another pattern in the same process (a search worker's next
    trial) reuses the compiled layers: no new graph, and its loss is its eager loss too."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    graphs = []
    for i, pattern in enumerate((PATTERN, Pattern.parse("MMAAM"))):
        eager = evaluate(pattern, make_config(steps=4), TEST_WIDTH, tmp_path / f"eager{i}", seed=0)
        compiled = evaluate(pattern, make_config(steps=4, compile=True), TEST_WIDTH, tmp_path / f"compiled{i}", seed=0)
        assert compiled.loss == pytest.approx(eager.loss, rel=1e-4)
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[1] == graphs[0] > 0


@pytest.mark.gpu
@pytest.mark.timeout(600)
def test_compiled_bf16_run_on_cuda_matches_eager(make_config, tmp_path):
    """On a GPU, bf16-mixed training with pretrain.compile=true reaches the eager bf16 held-out loss."""
    gpu = dict(accelerator="gpu", precision="bf16-mixed", steps=8)
    eager = evaluate(PATTERN, make_config(**gpu), TEST_WIDTH, tmp_path / "eager", seed=0)
    compiled = evaluate(PATTERN, make_config(compile=True, **gpu), TEST_WIDTH, tmp_path / "compiled", seed=0)
    assert compiled.loss == pytest.approx(eager.loss, rel=2e-2)
