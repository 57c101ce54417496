"""``trainer.accelerator=cpu`` never touches CUDA, even on a machine where CUDA is available."""

from __future__ import annotations

import pytest

from tp_world import run_world


def _cpu_step_with_cuda_present(rank: int, world_size: int) -> dict:
    """Pretend CUDA is available, then set up and run one training step the way a CPU run does."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    cuda_calls: list[str] = []

    def refuse(name):
        def call(*args, **kwargs):
            cuda_calls.append(name)
            raise AssertionError(f"torch.cuda.{name} called in a CPU run")
        return call

    torch.cuda.is_available = lambda: True  # as on a GPU machine
    torch.cuda.device_count = lambda: 1
    for name in ("current_device", "set_device", "synchronize", "manual_seed", "get_rng_state"):
        setattr(torch.cuda, name, refuse(name))

    class Devices(TorchDispatchMode):
        """Every device an op's output lands on."""

        def __init__(self):
            super().__init__()
            self.seen: set[str] = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in (out if isinstance(out, (tuple, list)) else (out,)):
                if isinstance(t, torch.Tensor):
                    self.seen.add(t.device.type)
            return out

    from composer_automl.optim import OptimConfig
    from composer_automl.parallel.strategy import MegatronDDPStrategy
    from composer_automl.presets import get_preset
    from composer_automl.train.module import ParallelLMModule, masked_mean_loss

    strategy = MegatronDDPStrategy(tp=1, on_cpu=True)  # what build_trainer makes of accelerator=cpu
    with Devices() as mode:
        strategy.init_megatron()
        module = ParallelLMModule(get_preset("tiny"), 1, OptimConfig(), on_cpu=strategy.on_cpu)
        module.configure_model()
        idx = torch.randint(0, 256, (2, 16))
        loss = masked_mean_loss(module.model, idx, idx)
        loss.backward()
    tensors = [*module.model.parameters(), *module.model.buffers()]
    return {"seen": sorted(mode.seen), "cuda_calls": cuda_calls,
            "param_devices": sorted({t.device.type for t in tensors}), "loss": float(loss)}


@pytest.mark.timeout(180)
def test_accelerator_cpu_builds_weights_rope_and_rng_on_cpu_when_cuda_is_present():
    """With torch.cuda.is_available() faked True, a CPU run's megatron set-up (groups, RNG), model
    build (weights, RoPE) and a forward/backward create no CUDA tensor and call no CUDA function."""
    [result] = run_world(_cpu_step_with_cuda_present, 1)
    assert result["cuda_calls"] == []
    assert result["seen"] == ["cpu"] and result["param_devices"] == ["cpu"]
    assert result["loss"] > 0
