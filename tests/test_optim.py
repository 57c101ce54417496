"""The one optimizer and schedule of every training loop (pretraining, MAD runs, tensor-parallel training)."""

from __future__ import annotations

import pytest
import torch

from composer_automl.config import ConfigError, to_dataclass
from composer_automl.model import HybridLM
from composer_automl.optim import OptimConfig, build_optimizer, lr_factor, param_groups
from composer_automl.presets import get_preset


def test_cosine_step_warms_up_then_decays_to_the_floor():
    """Linear warm-up to the peak, cosine down to min_lr_ratio at max_steps, flat after."""
    o = OptimConfig(warmup_steps=4, max_steps=20, min_lr_ratio=0.1)
    factors = [lr_factor(s, o) for s in range(25)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[4:], factors[5:]))
    assert factors[20] == pytest.approx(0.1) and factors[24] == pytest.approx(0.1)
    assert factors[12] == pytest.approx(0.55)  # half-way down the cosine: (1 + 0.1) / 2


def test_cosine_epoch_matches_torch_cosine_annealing():
    """cosine-epoch (MAD's reference) holds the rate within an epoch and follows torch's
    CosineAnnealingLR(T_max=epochs, eta_min=min_lr) stepped once per epoch."""
    o = OptimConfig(lr=1e-3, warmup_steps=0, max_steps=50, min_lr_ratio=1e-3, schedule="cosine-epoch",
                    steps_per_epoch=10)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=o.lr)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=5, eta_min=o.lr * o.min_lr_ratio)
    for epoch in range(5):
        for step in range(epoch * 10, epoch * 10 + 10):
            assert o.lr * lr_factor(step, o) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9)
        opt.step()
        reference.step()


def test_the_scheduler_steps_the_factor_every_optimizer_step():
    """build_optimizer's LambdaLR gives lr × lr_factor(step) after each step."""
    model = torch.nn.Linear(4, 4)
    o = OptimConfig(lr=0.01, warmup_steps=3, max_steps=12, min_lr_ratio=0.2)
    optimizer, scheduler = build_optimizer(model, o)
    for step in range(14):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * lr_factor(step, o))
        optimizer.step()
        scheduler.step()


def test_no_weight_decay_on_norms_unless_decay_all():
    """Norm weights (1-D) sit in the zero-decay group and every matrix decays; decay_all puts all in one group."""
    model = HybridLM(get_preset("tiny"))
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 1 for p in no_decay["params"])
    assert len(no_decay["params"]) == get_preset("tiny").n_layers + 1
    assert sum(p.numel() for g in (decay, no_decay) for p in g["params"]) == get_preset("tiny").num_params()
    (everything,) = param_groups(model, 0.1, decay_all=True)
    assert everything["weight_decay"] == 0.1 and len(everything["params"]) == len(list(model.parameters()))


@pytest.mark.parametrize("field, value", [("lr", 0.0), ("beta2", 1.0), ("max_steps", 0), ("min_lr_ratio", 1.5),
                                          ("steps_per_epoch", 0)])
def test_bad_values_name_the_key_under_the_section_typed(field, value):
    """A bad value names the field under the section the user typed (``optim.<field>`` for ``train``)."""
    with pytest.raises(ConfigError, match=f"^optim.{field}={value!r} is out of range"):
        to_dataclass(OptimConfig, {field: value}, "optim")
    with pytest.raises(ConfigError, match="^optim.schedule='linear' is not allowed"):
        to_dataclass(OptimConfig, {"schedule": "linear"}, "optim")


def _adamw_steps(fused: bool | None, steps: int = 5) -> tuple[dict, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = HybridLM(get_preset("tiny"))
    optimizer, _ = build_optimizer(model, OptimConfig(lr=3e-3, warmup_steps=0, fused=fused))
    idx = torch.randint(0, model.spec.vocab_size, (2, 17), generator=torch.Generator().manual_seed(1))
    for _ in range(steps):
        logits = model(idx[:, :-1])
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), idx[:, 1:].flatten()).backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.state_dict(), optimizer


def test_fused_adamw_takes_the_steps_of_todays_adamw():
    """optim.fused=true (one fused kernel; the GPU default) gives today's AdamW weights after 5 steps within fp32
    tolerance; the default on CPU parameters (fused=null) is torch's own default, i.e. today's numbers exactly."""
    today, default = _adamw_steps(None)
    fused, optimizer = _adamw_steps(True)
    assert optimizer.defaults["fused"] is True and default.defaults["fused"] is None
    for name, weight in today.items():
        torch.testing.assert_close(fused[name], weight, rtol=1e-5, atol=1e-6, msg=name)
    assert all(torch.equal(a, b) for a, b in zip(_adamw_steps(False)[0].values(), today.values()))
