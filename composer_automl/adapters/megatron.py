"""megatron-core internals the tensor-parallel model needs (pinned by ``tests/adapters/test_megatron.py``).

megatron-core 0.16's ``RowParallelLinear.forward`` hands its matmul ``tp_group=None`` instead of its own
group, so every call looks the group up again and warns ("tp_group is None, using default tp group") on
rank 0. In eager mode that is a warning call per linear layer per step; under ``torch.compile`` the warning
is a graph break in the middle of every layer. :class:`RowParallelLinear` passes the layer's own group.
"""

from __future__ import annotations

from megatron.core.tensor_parallel import RowParallelLinear as _MegatronRowParallelLinear


class RowParallelLinear(_MegatronRowParallelLinear):
    """megatron's ``RowParallelLinear`` whose matmul gets the layer's own tensor-parallel group."""

    def _forward_impl(self, input, weight, *args, **kwargs):
        kwargs["tp_group"] = self.tp_group
        return super()._forward_impl(input, weight, *args, **kwargs)
