"""CPU redirection of megatron-core's hard-coded CUDA calls (used only on CPU).

megatron-core's local (non-Transformer-Engine) layers allocate some tensors on
``torch.cuda.current_device()`` (vocab-parallel embedding without CPU init, RoPE
frequencies on first use). On a machine without CUDA that call raises, so for
CPU runs (tests over gloo) :func:`redirect_cuda_to_cpu` makes it answer ``cpu``.
Nothing else is patched: the attention core is our own SDPA module
(:mod:`composer_automl.parallel.layers`), so the CUDA RNG tracker and megatron's
global memory buffer are never reached, and dropout is off.
"""

from __future__ import annotations

import torch

_original_current_device = torch.cuda.current_device


def _cpu_current_device() -> torch.device:
    return torch.device("cpu")


def redirect_cuda_to_cpu() -> None:
    """Make ``torch.cuda.current_device()`` return the CPU device; a no-op when CUDA exists."""
    if torch.cuda.is_available():
        return
    torch.cuda.current_device = _cpu_current_device


def restore_cuda() -> None:
    """Undo :func:`redirect_cuda_to_cpu`."""
    torch.cuda.current_device = _original_current_device
