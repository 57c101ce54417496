"""One MAD run's pieces: best-evaluation choice, accuracy averaging, the lr schedules, devices."""

from __future__ import annotations

import pytest
import torch

from composer_automl.config import ConfigError
from composer_automl.mad.evaluate import MADConfig, evaluate_pattern
from composer_automl.mad.models import Evaluation, MADModule, best_evaluation
from composer_automl.optim import OptimConfig
from composer_automl.patterns import Pattern
from composer_automl.spec import SearchWidth
from composer_automl.spec import ModelSpec
from composer_automl.tokens import IGNORE_INDEX

TINY_WIDTH = SearchWidth(d_model=32, n_heads=4, n_kv_heads=2, ffn_hidden=64)


def test_best_evaluation_is_the_lowest_test_loss():
    """The reported evaluation is the one with the lowest test loss (earliest on ties), not the last or the most accurate."""
    evals = [Evaluation(10, 1.2, 0.40), Evaluation(20, 0.7, 0.55), Evaluation(30, 0.9, 0.61), Evaluation(40, 0.7, 0.58)]
    assert best_evaluation(evals) == Evaluation(20, 0.7, 0.55)
    with pytest.raises(ValueError):
        best_evaluation([])


def _module(accuracy: str, vocab: int = 4) -> MADModule:
    spec = ModelSpec(Pattern.parse("M"), 8, 2, 1, 16, vocab_size=vocab, max_seq_len=3)
    optim = OptimConfig(lr=1e-3, weight_decay=0.0, beta2=0.999, warmup_steps=0, max_steps=10, min_lr_ratio=1e-3,
                        schedule="cosine-epoch", steps_per_epoch=5, decay_all=True)
    return MADModule(spec, optim, "t", accuracy=accuracy)


def _one_hot_logits(predictions: list[list[int]], vocab: int = 4) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(predictions), vocab).float() * 10


def test_validation_step_accuracy_macro_and_micro(monkeypatch):
    """macro (torchmetrics' multiclass default): per batch, the mean per-class recall over the classes that occur in
    the scored targets or predictions, then the batch-size-weighted mean; micro: correct / scored over all batches.

    batch 1 (2 sequences): targets 0,0,1 | 2,-,1; predictions 0,1,1 | 2,3,0 (the ignored position drops out):
    class 0: 1/2, class 1: 1/2, class 2: 1/1 → 2/3. batch 2 (1 sequence): targets 3,3,-; predictions 3,0,0:
    class 3: 1/2, class 0 predicted but never a target: 0 → 1/4. Micro: 3 + 1 correct of 5 + 2 scored.
    """
    batches = [
        (torch.tensor([[0, 0, 1], [2, IGNORE_INDEX, 1]]), [[0, 1, 1], [2, 3, 0]]),
        (torch.tensor([[3, 3, IGNORE_INDEX]]), [[3, 0, 0]]),
    ]
    expected = {"macro": (2 * (2 / 3) + 1 * 0.25) / 3, "micro": 4 / 7}
    for accuracy, value in expected.items():
        module = _module(accuracy)
        for targets, predictions in batches:
            monkeypatch.setattr(module, "forward", lambda idx, p=predictions: _one_hot_logits(p))
            module.validation_step((torch.zeros_like(targets).clamp(min=0), targets), 0)
        assert module.test_acc.compute().item() == pytest.approx(value)


def test_weight_decay_groups_follow_decay_all_params():
    """The reference decays every parameter; decay_all_params=false spares norms (ndim < 2)."""
    for decay_all, expected_groups in ((True, 1), (False, 2)):
        module = _module("macro")
        module.optim = OptimConfig(lr=1e-3, weight_decay=0.1, beta2=0.999, warmup_steps=0, max_steps=10,
                                   min_lr_ratio=1e-3, schedule="cosine-epoch", steps_per_epoch=5, decay_all=decay_all)
        optimizer = module.configure_optimizers()["optimizer"]
        assert len(optimizer.param_groups) == expected_groups
        assert optimizer.param_groups[0]["betas"] == (0.9, 0.999) and optimizer.param_groups[0]["weight_decay"] == 0.1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_gpu_without_cuda_is_refused_before_training(tmp_path):
    """accelerator=gpu on a CUDA-less machine: one ConfigError naming the field, nothing trained or written."""
    config = MADConfig(tasks=["compression"], overrides={"compression": {"seq_len": 8}}, accelerator="gpu",
                       precision="bf16-mixed", max_steps=2, num_test_examples=8, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ConfigError, match="^accelerator=gpu"):
        evaluate_pattern("AM", config, TINY_WIDTH, tmp_path / "out", log=lambda _: None)
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_cpu_run_through_the_device_fields_is_deterministic(tmp_path):
    """The same config fields that pick a GPU pick the CPU here: accelerator=cpu, precision=auto → fp32, deterministic."""
    config = MADConfig(tasks=["compression"], overrides={"compression": {"seq_len": 8}}, accelerator="cpu",
                       precision="auto", batch_size=8, max_steps=3, evals_per_run=1, train_examples_scale=0.002,
                       num_test_examples=8, cache_dir=str(tmp_path / "cache"))
    a = evaluate_pattern("AM", config, TINY_WIDTH, tmp_path / "a", log=lambda _: None)
    b = evaluate_pattern("AM", config, TINY_WIDTH, tmp_path / "b", log=lambda _: None)
    assert a.device == "cpu, 32-true"
    assert [(r.accuracy, r.loss, r.steps) for r in a.runs] == [(r.accuracy, r.loss, r.steps) for r in b.runs]


@pytest.mark.gpu
def test_one_short_setting_trains_on_cuda(tmp_path):
    """On a CUDA machine a short mad-full-style setting trains in bf16 on the GPU and reports it."""
    config = MADConfig(tasks=["in-context-recall"], overrides={"in-context-recall": {"seq_len": 32}},
                       accelerator="gpu", precision="bf16-mixed", max_steps=20, train_examples_scale=0.05,
                       num_test_examples=128, cache_dir=str(tmp_path / "cache"))
    result = evaluate_pattern("AMAM", config, TINY_WIDTH, tmp_path / "out", log=lambda _: None)
    assert result.device.startswith("gpu (") and result.device.endswith("bf16-mixed")
    assert 0.0 <= result.score <= 1.0 and result.runs[0].steps == 20
