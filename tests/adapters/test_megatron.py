"""The megatron adapter: our RowParallelLinear hands its matmul its own TP group, so it computes megatron's
output without megatron's per-call 'tp_group is None' warning (which breaks a compiled graph)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "parallel"))
from tp_world import run_world  # noqa: E402


def _row_linear_outputs(rank: int, world_size: int) -> dict:
    import warnings

    from megatron.core.tensor_parallel import RowParallelLinear as MegatronRowParallelLinear

    from composer_automl.adapters.megatron import RowParallelLinear
    from composer_automl.parallel import state
    from composer_automl.parallel.model import transformer_config
    from composer_automl.presets import get_preset

    state.init_model_parallel(1, on_cpu=True)
    try:
        config = transformer_config(get_preset("tiny"), 1, on_cpu=True)
        x = torch.randn(5, 2, 16)
        out = {}
        for name, cls in (("ours", RowParallelLinear), ("megatron", MegatronRowParallelLinear)):
            torch.manual_seed(0)
            layer = cls(16, 8, config=config, init_method=torch.nn.init.normal_, bias=False, input_is_parallel=True,
                        skip_bias_add=False)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                y, _ = layer(x)
                y.sum().backward()
            out[name] = (y.detach(), layer.weight.grad.clone(), [str(w.message) for w in caught])
        return out
    finally:
        state.destroy_model_parallel()


def test_row_parallel_linear_passes_its_group_and_stays_silent():
    [out] = run_world(_row_linear_outputs, 1, timeout=100)
    (y, grad, warned), (y_ref, grad_ref, warned_ref) = out["ours"], out["megatron"]
    assert torch.equal(y, y_ref) and torch.equal(grad, grad_ref)
    assert not any("tp_group is None" in w for w in warned)
    # the reason the adapter exists; when megatron passes its group itself, the subclass can go
    assert any("tp_group is None" in w for w in warned_ref)

