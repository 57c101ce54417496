"""MAD evaluation: real Lightning training of tiny models, caching, TensorBoard logs, the rung, signal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from composer_automl.config import ConfigError, to_dataclass
from composer_automl.mad.command import load_mad_rung
from composer_automl.mad.data import load_or_generate
from composer_automl.mad.evaluate import MADConfig, evaluate_pattern, run_schedule
from composer_automl.mad.tasks import RecallSetting
from composer_automl.paths import cache_dir, group_dir
from composer_automl.rungs.base import RungResult
from composer_automl.spec import SearchWidth
from composer_automl.rungs.registry import load_rung, rung_from_mapping

TINY_WIDTH = SearchWidth(d_model=32, n_heads=4, n_kv_heads=2, ffn_hidden=64)


def tiny_config(tmp_path: Path, **changes) -> MADConfig:
    base = dict(
        tasks=["compression", "memorization"],
        overrides={"compression": {"seq_len": 8}, "memorization": {"vocab_size": 17, "seq_len": 8}},
        batch_size=8,
        max_steps=4,
        train_examples_scale=0.002,  # compression 12,800 → 26 examples, memorization 256 → 1
        num_test_examples=16,
        evals_per_run=2,
        cache_dir=str(tmp_path / "cache"),
    )
    return MADConfig(**{**base, **changes})


def test_evaluate_pattern_scores_logs_and_is_deterministic(tmp_path):
    """Two runs with one seed give equal results; results JSON and one TensorBoard run with per-run tags."""
    config = tiny_config(tmp_path)
    lines: list[str] = []
    first = evaluate_pattern("AM", config, TINY_WIDTH, tmp_path / "a", seed=3, log=lines.append)
    second = evaluate_pattern("AM", config, TINY_WIDTH, tmp_path / "b", seed=3, log=lambda _: None)
    assert [(r.accuracy, r.loss) for r in first.runs] == [(r.accuracy, r.loss) for r in second.runs]
    assert first.task_seconds == pytest.approx({r.task: r.seconds for r in first.runs}) and first.runs[0].seconds > 0
    assert list(first.task_scores) == list(first.task_losses) == ["compression", "memorization"]
    assert first.score == pytest.approx(np.mean(list(first.task_scores.values())))
    assert first.loss_score == pytest.approx(np.mean([r.loss / np.log(r.vocab_size) for r in first.runs]))
    assert all(0.0 <= acc <= 1.0 for acc in first.task_scores.values()) and first.wall_time_s > 0
    assert first.device == "cpu, 32-true" and lines[0] == "mad: AM on cpu, 32-true, 2 runs"
    assert len(lines) == 3 and "compression base" in lines[1] and "acc=" in lines[1] and "loss=" in lines[1]
    saved = json.loads((tmp_path / "a" / "mad_results.json").read_text())
    assert saved["pattern"] == "AM" and saved["mad_score"] == pytest.approx(first.score)
    assert saved["device"] == "cpu, 32-true"
    event_dirs = {p.parent for p in (tmp_path / "a").rglob("events.out.tfevents.*")}
    assert event_dirs == {tmp_path / "a"}, "every run of the trial logs into one TensorBoard run"
    events = EventAccumulator(str(tmp_path / "a"), size_guidance={"scalars": 0}).Reload()
    tag = "compression/base-lr0.001-wd0"
    losses = [e.value for e in events.Scalars(f"{tag}/test_loss")]
    accs = [e.value for e in events.Scalars(f"{tag}/test_acc")]
    assert len(losses) == len(accs) == 2
    best = int(np.argmin(losses))  # the run reports its lowest-test-loss evaluation
    assert first.runs[0].loss == pytest.approx(losses[best], abs=1e-6)
    assert first.runs[0].accuracy == pytest.approx(accs[best], abs=1e-6)
    assert {f"memorization/base-lr0.001-wd0/{m}" for m in ("test_loss", "test_acc")} <= set(events.Tags()["scalars"])


def test_sweep_keeps_best_run_per_setting(tmp_path):
    """With two learning rates each setting trains twice and its score is the better run."""
    result = evaluate_pattern("AM", tiny_config(tmp_path, tasks=["compression"], lrs=[1e-4, 1e-2]), TINY_WIDTH,
                              tmp_path / "out", seed=0, log=lambda _: None)
    assert [(r.lr, r.setting) for r in result.runs] == [(1e-4, "base"), (1e-2, "base")]
    assert result.task_scores["compression"] == max(r.accuracy for r in result.runs)
    assert result.task_losses["compression"] == pytest.approx(min(r.loss for r in result.runs) / np.log(16))


def test_dataset_cache_written_once_and_reused(tmp_path):
    """A setting's arrays are cached under (task, setting, seed) and read back identically; other seeds differ."""
    setting = RecallSetting(vocab_size=16, seq_len=16, num_train_examples=10)
    a = load_or_generate("in-context-recall", setting, 0, 5, tmp_path)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1 and not list(tmp_path.glob(".*tmp*"))
    mtime = files[0].stat().st_mtime_ns
    b = load_or_generate("in-context-recall", setting, 0, 5, tmp_path)
    assert files[0].stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(a.train_inputs, b.train_inputs)
    np.testing.assert_array_equal(a.test_targets, b.test_targets)
    c = load_or_generate("in-context-recall", setting, 1, 5, tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 2 and not np.array_equal(a.train_inputs, c.train_inputs)
    assert a.train_inputs.shape == (10, 15) and a.test_inputs.shape == (5, 15)  # recall: the model sees seq_len − 1
    assert not np.array_equal(a.train_inputs[:5], a.test_inputs), "train and test come from separate streams"


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    """MAD datasets and prepared corpora share one root: $COMPOSER_AUTOML_CACHE, else $XDG_CACHE_HOME/composer-automl."""
    monkeypatch.delenv("COMPOSER_AUTOML_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir("mad") == tmp_path / "composer-automl" / "mad"
    monkeypatch.setenv("COMPOSER_AUTOML_CACHE", str(tmp_path / "x"))
    assert cache_dir("mad") == tmp_path / "x" / "mad" and cache_dir("data") == tmp_path / "x" / "data"


def test_run_schedule_epochs_steps_and_eval_intervals():
    """Steps = min(max_steps, epochs × batches); evaluations every epoch by default, else at even intervals."""
    assert run_schedule(95, MADConfig(batch_size=10, max_steps=1000, epochs=3, evals_per_run=4)) == (32, 8, 10)
    assert run_schedule(10_000, MADConfig(max_steps=50, evals_per_run=5)) == (50, 10, 79)
    assert run_schedule(12_800, MADConfig()) == (20_000, 100, 100)  # the reference: 200 epochs, one eval each


def test_rung_returns_plain_floats(tmp_path):
    """The mad rung returns loss = 1 − MAD score (or the loss score) and plain-float metrics per task."""
    data = dict(kind="mad", **{k: v for k, v in vars(tiny_config(tmp_path, tasks=["compression"])).items()})
    pattern = __import__("composer_automl.patterns", fromlist=["Pattern"]).Pattern.parse("MA")
    result = rung_from_mapping("tiny", data)(pattern, TINY_WIDTH, tmp_path / "rung", 0)
    assert isinstance(result, RungResult)
    assert set(result.metrics) == {"compression/acc", "compression/loss", "compression/seconds", "mad_score",
                                   "mad_loss"}
    assert all(type(v) is float for v in [result.loss, result.wall_time_s, *result.metrics.values()])
    assert result.loss == pytest.approx(1 - result.metrics["mad_score"])
    by_loss = rung_from_mapping("tiny", {**data, "score": "loss"})
    assert by_loss.metric == "mad_loss"
    assert by_loss(pattern, TINY_WIDTH, tmp_path / "rung2", 0).loss == pytest.approx(result.metrics["mad_loss"])


@pytest.mark.parametrize("name", ["mad-quick", "mad-standard", "mad-full"])
def test_shipped_mad_rungs_validate(name):
    """Every shipped mad rung loads through load_rung with kind mad; quick < standard < full in runs."""
    rung = load_rung(name)
    assert rung.kind == "mad" and isinstance(rung.config, MADConfig)
    assert yaml.safe_load((group_dir("fidelity") / f"{name}.yaml").read_text())["kind"] == "mad"
    runs = len(rung.config.settings()) * len(rung.config.lrs) * len(rung.config.weight_decays)
    assert runs == {"mad-quick": 6, "mad-standard": 6, "mad-full": 396}[name]


def test_mad_full_is_the_reference_protocol():
    """mad-full: 66 settings × 3 lr × 2 wd, and the reference's optimizer, schedule, targets and scoring."""
    c = load_rung("mad-full").config
    assert len(c.settings()) == 66 and c.lrs == [1e-4, 5e-4, 1e-3] and c.weight_decays == [0.0, 0.1]
    assert (c.batch_size, c.epochs, c.num_test_examples, c.train_examples_scale) == (128, 200, 1280, 1.0)
    assert c.betas == [0.9, 0.999] and c.decay_all_params and c.warmup_fraction == 0.0
    assert c.lr_schedule == "cosine-epoch" and c.min_lr == 1e-6
    assert c.evals_per_run is None and c.early_stop_accuracy == 0.999  # evaluated and checked every epoch
    assert c.train_on == "all" and c.accuracy == "macro" and c.score == "accuracy"
    assert (c.accelerator, c.precision) == ("auto", "auto")


@pytest.mark.parametrize(
    "node, match",
    [
        ({"tasks": ["recall"]}, "^fidelity.tasks='recall' is not allowed; choose one of"),
        ({"tasks": []}, "^fidelity.tasks must name at least one task"),
        ({"lrs": []}, "^fidelity.lrs must be a non-empty list"),
        ({"weight_decays": [-0.1]}, "^fidelity.weight_decays must be"),
        ({"max_steps": 0}, "^fidelity.max_steps must be >= 1, got 0$"),
        ({"overrides": {"compression": {"seq_len": 1}}}, "seq_len"),
        ({"overrides": {"selective-copying": {"num_tokens_to_copy": 200}}}, "num_tokens_to_copy"),
        ({"overrides": {"noisy-in-context-recall": {"vocab_size": 18}}}, "vocab_size"),
        ({"overrides": {"compression": {"copies": 3}}}, r"^fidelity.overrides.compression has unknown field\(s\) \['copies'\]"),
        ({"overrides": {"nope": {"seq_len": 3}}}, "^fidelity.overrides='nope' is not allowed; choose one of"),
        ({"epochz": 3}, "^fidelity.epochz is an unknown key; allowed: "),
        ({"train_on": "every"}, "^fidelity.train_on='every' is not allowed"),
        ({"accuracy": "weighted"}, "^fidelity.accuracy='weighted' is not allowed"),
        ({"lr_schedule": "linear"}, "^fidelity.lr_schedule='linear' is not allowed"),
        ({"betas": [0.9]}, "^fidelity.betas must be two numbers"),
        ({"min_lr": 1.0}, r"^fidelity.min_lr must be in \[0, min\(lrs\)"),
        ({"accelerator": "tpu"}, "^fidelity.accelerator='tpu' is not allowed"),
        ({"accelerator": "cpu", "precision": "16-mixed"}, "^fidelity.precision='16-mixed' does not run on cpu"),
        ({"devices": 2}, "^fidelity.devices=2: a MAD run uses one device"),
    ],
)
def test_bad_rung_config_is_one_config_error(node, match):
    """Unknown tasks/keys and impossible settings fail while loading the config, before any training, naming the
    key under the section typed (``fidelity`` for the mad command)."""
    with pytest.raises(ConfigError, match=match):
        to_dataclass(MADConfig, node, "fidelity")


def test_mad_command_rejects_non_mad_rung():
    """The mad command refuses a fidelity option whose kind is not mad, naming the mad rungs."""
    with pytest.raises(ConfigError, match="kind: mad"):
        load_mad_rung("pretrain-tiny", {"kind": "pretrain", "steps": 3})
    with pytest.raises(ConfigError, match="kind=None"):
        load_mad_rung("ladder", {"rungs": ["mad-quick"]})


def test_attention_solves_recall_far_better_than_mlp_only(tmp_path):
    """Signal: at a small budget a pattern with attention beats the MLP-only pattern on in-context recall."""
    config = MADConfig(
        tasks=["in-context-recall"], overrides={"in-context-recall": {"seq_len": 32}}, lrs=[3e-3],
        batch_size=32, max_steps=80, train_examples_scale=0.1, num_test_examples=128, evals_per_run=1,
        train_on="scored", accuracy="micro", betas=[0.9, 0.95], warmup_fraction=0.1, lr_schedule="cosine-step",
        min_lr=3e-5, cache_dir=str(tmp_path / "cache"),
    )
    width = SearchWidth(d_model=32, n_heads=2, n_kv_heads=1, ffn_hidden=64)
    attn = evaluate_pattern("AMAM", config, width, tmp_path / "a", seed=0, log=lambda _: None).score
    mlp = evaluate_pattern("MMMM", config, width, tmp_path / "m", seed=0, log=lambda _: None).score
    assert mlp < 0.2  # MLP-only sees one token at a time: chance over 8 values
    print(f"recall accuracy: attention {attn:.3f}, mlp-only {mlp:.3f}")
    assert attn > mlp + 0.15, (attn, mlp)
