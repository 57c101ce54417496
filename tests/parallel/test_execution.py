"""Activation checkpointing and compiled layers keep the plain model's loss and gradients (CPU, gloo)."""

from __future__ import annotations

import pytest

from composer_automl.parallel.execution import CHECKPOINTING
from composer_automl.presets import get_preset
from tp_world import run_world

SPEC = get_preset("tiny").replace(pattern="AMMAMMAMMAMM")  # 12 layers: 4 A, 8 M


def _losses(rank: int, world_size: int, cases: list[tuple[str, bool]]) -> dict:
    """Loss, gradients and the ops backward ran, for the same weights and batch per (checkpointing, compiled)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class OpCounts(TorchDispatchMode):
        """How many matmuls (``mm``) and other ops run."""

        def __init__(self):
            super().__init__()
            self.counts = {"mm": 0, "other": 0}

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.counts["mm" if func is torch.ops.aten.mm.default else "other"] += 1
            return func(*args, **(kwargs or {}))

    import torch
    from torch._dynamo.utils import counters

    from composer_automl.model import HybridLM
    from composer_automl.parallel import build_parallel_model, gather_to_hybrid, load_hybrid_weights, state
    from composer_automl.parallel.execution import checkpoint_layers, compile_layers
    from composer_automl.train.module import masked_mean_loss

    state.init_model_parallel(world_size, on_cpu=True)
    try:
        torch.manual_seed(0)
        weights = HybridLM(SPEC).state_dict()
        idx = torch.arange(4 * 33).reshape(4, 33) * 7 % SPEC.vocab_size
        out = {}
        for checkpointing, compiled in cases:
            model = build_parallel_model(SPEC, world_size, on_cpu=True)
            load_hybrid_weights(model, weights, SPEC)
            names = sorted(model.state_dict())
            checkpoint_layers(model, checkpointing)
            if compiled:
                counters.clear()
                compile_layers(model, backend="aot_eager")  # Inductor's codegen is the slow test's (config path)
            loss = masked_mean_loss(model, idx[:, :-1], idx[:, 1:])
            with OpCounts() as backward_ops:
                loss.backward()
            grads = gather_to_hybrid({n: p.grad for n, p in model.named_parameters()}, SPEC)
            out[checkpointing, compiled] = {
                "loss": float(loss), "grads": grads, "backward_ops": backward_ops.counts,
                "names": sorted(model.state_dict()) == names,
                "graphs": dict(counters["stats"]) if compiled else {}, "breaks": sum(counters["graph_break"].values()),
            }
        return out
    finally:
        state.destroy_model_parallel()


CASES = [(mode, False) for mode in CHECKPOINTING] + [("none", True), ("selective", True)]


def _check_equal(out: dict) -> None:
    reference = out["none", False]
    for case, got in out.items():
        assert got["loss"] == pytest.approx(reference["loss"], rel=1e-6), case
        for name, grad in reference["grads"].items():
            assert got["grads"][name].allclose(grad, rtol=1e-5, atol=1e-7), (case, name)
        assert got["names"], case  # parameter (checkpoint) names unchanged


@pytest.mark.slow  # default-run time (CI < 10 min); selective checkpointing in the default run: tests/train/test_speed_options.py
@pytest.mark.timeout(200)
def test_checkpointing_and_compile_keep_loss_and_gradients_and_recompute_what_they_drop():
    """One process: every trainer.activation_checkpointing value and compiled layers (alone and with selective
    checkpointing) give the plain model's loss and gradients. Backward shows what each mode kept: full
    recomputes every layer's matmuls (it kept only layer inputs); selective recomputes no matmul (it kept their
    outputs) but the elementwise ops (it dropped theirs). Compiled, the 12 layers run as two graphs (A, M) plus
    the loss's, without graph breaks, and selective checkpointing still recomputes inside them."""
    [out] = run_world(_losses, 1, CASES, timeout=190)
    _check_equal(out)
    ops = {mode: out[mode, False]["backward_ops"] for mode in CHECKPOINTING}
    layer_matmuls = 2 * 4 + 2 * 8  # forward matmuls: qkv and proj per A layer, fc1 and fc2 per M layer
    assert ops["full"]["mm"] == ops["none"]["mm"] + layer_matmuls
    assert ops["selective"]["mm"] == ops["none"]["mm"] and ops["selective"]["other"] > ops["none"]["other"] + 12
    for case in (("none", True), ("selective", True)):
        # compiled, not run eagerly; one graph per layer kind (+ the loss, unless cached from the case before)
        assert out[case]["breaks"] == 0 and 2 <= out[case]["graphs"]["unique_graphs"] <= 3, out[case]
    assert out["selective", True]["backward_ops"]["other"] > ops["none"]["other"] + 12


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_tp2_checkpointing_and_compile_keep_loss_and_gradients():
    """The same at TP=2 (all-reduces inside recomputed and compiled regions), gradients gathered over ranks."""
    for out in run_world(_losses, 2, CASES, timeout=290):
        _check_equal(out)
