"""CPU redirection of megatron-core's hard-coded CUDA calls (used only on CPU).

megatron-core's local (non-Transformer-Engine) layers allocate some tensors on
``torch.cuda.current_device()`` (vocab-parallel embedding without CPU init, RoPE
frequencies on first use), and megatron's checkpoint writer calls
``torch.cuda.synchronize()`` after staging tensors to host memory. On a machine
without CUDA those calls raise (and on one with CUDA they would put a CPU run's
buffers on the GPU), so for CPU runs (tests over gloo, ``accelerator=cpu``)
:func:`redirect_cuda_to_cpu` makes the first answer ``cpu`` and the second a no-op
(CPU copies are synchronous).
Nothing else is patched: the attention core is our own SDPA module
(:mod:`composer_automl.parallel.layers`), so the CUDA RNG tracker and megatron's
global memory buffer are never reached (a CPU run neither creates nor seeds the
model-parallel CUDA RNG tracker; weights are initialised with the CPU generator
through ``use_cpu_initialization``), and dropout is off.
"""

from __future__ import annotations

import torch

_original_current_device = torch.cuda.current_device
_original_synchronize = torch.cuda.synchronize


def _cpu_current_device() -> torch.device:
    return torch.device("cpu")


def _cpu_synchronize(device=None) -> None:
    return None


def redirect_cuda_to_cpu() -> None:
    """Make ``torch.cuda.current_device()`` return the CPU device and ``synchronize`` a no-op.

    Called for CPU runs only (``trainer.accelerator=cpu``), also on a machine that has
    CUDA: the run's choice, not CUDA's presence, decides where megatron puts tensors.
    """
    torch.cuda.current_device = _cpu_current_device
    torch.cuda.synchronize = _cpu_synchronize


def restore_cuda() -> None:
    """Undo :func:`redirect_cuda_to_cpu`."""
    torch.cuda.current_device = _original_current_device
    torch.cuda.synchronize = _original_synchronize
