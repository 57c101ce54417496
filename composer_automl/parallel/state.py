"""megatron-core ``parallel_state`` set-up on top of an existing ``torch.distributed`` world."""

from __future__ import annotations

import torch
import torch.distributed as dist
from megatron.core import parallel_state, tensor_parallel

from composer_automl.parallel import cpu_compat


def init_model_parallel(tp: int, seed: int = 0, on_cpu: bool | None = None) -> None:
    """Create megatron's tensor/data-parallel groups (pipeline size 1) in the current world.

    The default process group must already exist (Lightning, torchrun or a test
    set it up). For a CPU run this installs the small CUDA redirect of
    :mod:`cpu_compat`; for a GPU run it seeds megatron's model-parallel CUDA RNG
    tracker. ``on_cpu`` is the run's choice (``trainer.accelerator``); None = CPU
    exactly when no CUDA device is visible (tests, scripts).
    """
    on_cpu = not torch.cuda.is_available() if on_cpu is None else on_cpu
    if not dist.is_initialized():
        raise RuntimeError("init_model_parallel needs torch.distributed to be initialised first")
    if parallel_state.model_parallel_is_initialized():
        parallel_state.destroy_model_parallel()
    if not on_cpu:
        parallel_state.initialize_model_parallel(tensor_model_parallel_size=tp, pipeline_model_parallel_size=1)
        tensor_parallel.model_parallel_cuda_manual_seed(seed)
    else:
        cpu_compat.redirect_cuda_to_cpu()
        parallel_state.initialize_model_parallel(
            tensor_model_parallel_size=tp, pipeline_model_parallel_size=1, create_gloo_process_groups=False
        )


def destroy_model_parallel() -> None:
    """Tear down megatron's groups (and the CPU redirect, if installed)."""
    parallel_state.destroy_model_parallel()
    cpu_compat.restore_cuda()


def tp_rank() -> int:
    return parallel_state.get_tensor_model_parallel_rank()


def dp_rank() -> int:
    return parallel_state.get_data_parallel_rank()


def dp_size() -> int:
    return parallel_state.get_data_parallel_world_size()
