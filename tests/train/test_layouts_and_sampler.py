"""Shipped launch layouts compose into valid train configs (global batch ≥ 1M tokens); the sampler resumes exactly."""

from __future__ import annotations

from hydra import compose, initialize_config_dir

from composer_automl.config import to_dataclass
from composer_automl.parallel.model import check_layout
from composer_automl.paths import CONFIG_DIR, group_options
from composer_automl.presets import get_preset
from composer_automl.train.command import layout
from composer_automl.train.config import TrainConfig
from composer_automl.train.data import StepBatchSampler

EXPECTED = {"1x8_tp8": (1, 8, 8), "1x8_tp2_dp4": (1, 8, 2), "4x8_tp8": (4, 8, 8)}


def test_every_launch_layout_composes_and_fits_the_1b_model():
    """Each launch/*.yaml sets nodes, GPUs and TP as named, validates, TP divides the 1B model, and
    its default global batch (micro × accum × DP × seq_len) is at least 1M tokens."""
    assert set(EXPECTED) <= set(group_options("launch"))
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        for name, (nodes, devices, tp) in EXPECTED.items():
            cfg = compose("train", overrides=[f"launch={name}", "data.path=/some/data"])
            config = to_dataclass(TrainConfig, cfg)
            assert (config.trainer.num_nodes, config.trainer.devices, config.parallel.tp) == (nodes, devices, tp)
            check_layout(get_preset("1B"), tp, config.trainer.world_size)
            tokens = layout(config).global_batch * config.trainer.seq_len  # what a checkpoint stores and resumes
            assert tokens >= 1_000_000, (name, tokens)  # Llama-like global batch of ~1M tokens


def test_step_sampler_shards_by_dp_rank_and_resumes_at_any_step():
    """DP ranks get disjoint windows within an epoch; a sampler started after k micro-batches'
    samples yields exactly the batches an uninterrupted one yields from micro-batch k."""
    ranks = [StepBatchSampler(64, 4, rank, 2, seed=3) for rank in (0, 1)]
    first_epoch = [i for step in range(8) for r in ranks for i in r.batch(step)]
    assert sorted(first_epoch) == list(range(64))
    uninterrupted = iter(StepBatchSampler(64, 4, 1, 2, seed=3))
    expected = [next(uninterrupted) for _ in range(20)][7:]
    resumed = iter(StepBatchSampler(64, 4, 1, 2, seed=3, start_sample=7 * 4 * 2))
    assert [next(resumed) for _ in range(13)] == expected
