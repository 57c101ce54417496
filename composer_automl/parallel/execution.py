"""How the built tensor-parallel model runs: activation checkpointing and ``torch.compile`` of its layers.

Both are applied in place to the model :func:`composer_automl.parallel.build_parallel_model` returns, in
torchtitan's order (checkpointing, then compile), so parameter names — and checkpoints — stay those of
the plain model and the loss and gradients are the plain model's (fp32 tolerance on CPU).

- **Activation checkpointing** (``trainer.activation_checkpointing``) wraps each layer's forward in
  PyTorch's non-reentrant checkpoint. ``full`` keeps only each layer's input and recomputes the whole
  layer in backward (one more forward); ``selective`` keeps the outputs of matmuls and attention and
  recomputes only the elementwise rest (RMSNorm, RoPE, SwiGLU's gate, dtype casts), whose activations
  are most of a layer's memory and little of its time. No dropout runs, so recomputation is exact.
- **Compile** (``parallel.compile``) compiles each layer with Inductor — every ``A`` layer shares one
  compiled graph, every ``M`` layer another — and the loss over the output logits, so norms, RoPE,
  SwiGLU, residual adds, casts and the cross-entropy's passes over the logits become a few fused kernels.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts

CHECKPOINTING = ("none", "selective", "full")
"""Values of ``trainer.activation_checkpointing``."""

SAVED_OPS = ("mm", "addmm", "bmm", "_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
             "_scaled_dot_product_cudnn_attention", "_scaled_dot_product_flash_attention_for_cpu")
"""aten ops whose outputs ``selective`` keeps (the expensive ones); everything else is recomputed."""


@functools.cache
def _saved_ops() -> frozenset:
    return frozenset(getattr(torch.ops.aten, name).default for name in SAVED_OPS if hasattr(torch.ops.aten, name))


def _keep_matmuls(ctx, op, *args, **kwargs) -> CheckpointPolicy:
    return CheckpointPolicy.MUST_SAVE if op in _saved_ops() else CheckpointPolicy.PREFER_RECOMPUTE


def _selective_context():
    """The context pair of a ``selective`` checkpoint (a module-level function: ``torch.compile`` traces it)."""
    return create_selective_checkpoint_contexts(_keep_matmuls)


def checkpoint_layers(model: nn.Module, mode: str) -> None:
    """Checkpoint every layer of ``model.decoder`` per ``mode`` (one of :data:`CHECKPOINTING`; ``none``: unchanged)."""
    if mode not in CHECKPOINTING:
        raise ValueError(f"activation checkpointing {mode!r}; choose one of {list(CHECKPOINTING)}")
    if mode == "none":
        return
    for layer in model.decoder.layers:  # an instance attribute: module and parameter names stay
        layer.forward = functools.partial(_checkpointed, layer.forward, mode == "selective")


def _checkpointed(forward, selective: bool, *args, **kwargs):
    """``forward`` under a non-reentrant checkpoint. A function of ours, not a ``partial`` of torch's
    ``checkpoint``: ``torch.compile`` skips torch's own frames and would run the layer eagerly."""
    if selective:
        return checkpoint(forward, *args, use_reentrant=False, context_fn=_selective_context, **kwargs)
    return checkpoint(forward, *args, use_reentrant=False, **kwargs)


def compile_layers(model: nn.Module, backend: str = "inductor") -> None:
    """``torch.compile`` each layer of ``model.decoder`` and the model's loss over the logits, in place."""
    for layer in model.decoder.layers:
        layer.compile(backend=backend)
    model.compute_language_model_loss = torch.compile(model.compute_language_model_loss, backend=backend)
