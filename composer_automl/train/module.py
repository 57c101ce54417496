"""ParallelLMModule: a LightningModule training the megatron tensor-parallel twin of a HybridLM."""

from __future__ import annotations

from typing import TYPE_CHECKING

import lightning as L
import torch
import torch.distributed as dist

from composer_automl.adapters.lightning import is_last_micro_batch, set_batch_progress
from composer_automl.optim import OptimConfig, lightning_optimizers
from composer_automl.spec import ModelSpec
from composer_automl.tokens import IGNORE_INDEX
from composer_automl.trainer import log_step_scalars

if TYPE_CHECKING:
    from composer_automl.parallel.kernels import Kernels


def masked_loss_sum(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of next-token cross-entropy over scored positions (target ≠ −100) and their count.

    The model computes per-token losses with megatron's vocab-parallel
    cross-entropy (logits stay sharded over TP ranks; no full fp32 logits exist);
    unscored positions get a dummy label 0 and weight 0.
    """
    scored = targets != IGNORE_INDEX
    per_token = model(inputs, None, None, labels=targets.masked_fill(~scored, 0))  # (B, T) fp32
    return (per_token.float() * scored).sum(), scored.sum()


def masked_mean_loss(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over scored positions; equals ``next_token_loss`` on the gathered logits."""
    total, count = masked_loss_sum(model, inputs, targets)
    return total / count.clamp(min=1)


def tp_grad_norm(parameters: list[torch.nn.Parameter]) -> torch.Tensor:
    """Global L2 norm of the gradients of a tensor-parallel model.

    Sharded weights contribute their shard on every TP rank; replicated weights
    (norms) count once (TP rank 0); the squares are summed over the TP group, so
    every rank clips by the same factor and replicated weights stay identical.
    """
    from megatron.core import parallel_state
    from megatron.core.tensor_parallel import param_is_not_tensor_parallel_duplicate

    grads = [p.grad for p in parameters if p.grad is not None and param_is_not_tensor_parallel_duplicate(p)]
    device = parameters[0].device
    # one multi-tensor kernel per dtype (torch's foreach norm) rather than two kernels per parameter
    squares = torch.nn.utils.get_total_norm(grads).float().pow(2) if grads else torch.zeros((), device=device)
    group = parallel_state.get_tensor_model_parallel_group()
    if dist.get_world_size(group) > 1:
        dist.all_reduce(squares, group=group)
    return squares.sqrt()


class ParallelLMModule(L.LightningModule):
    """Trains ``build_parallel_model(spec, tp)`` on ``(inputs, targets)`` token batches.

    The model is built in :meth:`configure_model`, i.e. after the strategy has set
    up megatron's process groups. Logs ``train/loss`` (mean over the optimizer
    step's global batch: micro-batches and data-parallel replicas), ``train/lr``, ``train/grad_norm`` per optimizer step and
    ``val/loss``, ``val/ppl`` per validation.

    Gradient accumulation is Lightning's (``accumulate_grad_batches``: DDP skips
    its all-reduce on the micro-batches before the last; each micro-batch loss is
    divided by the accumulation count), so with equally many scored tokens per
    micro-batch — always true for full training windows — ``accum × micro``
    computes the gradient of one ``accum·micro`` batch. Validation sums losses and
    token counts on the device and reduces them once at the end: ``val/loss`` is
    the mean over every scored token of the validation set and
    ``val/ppl = exp(val/loss)``, with no host sync per batch.
    """

    def __init__(self, spec: ModelSpec, tp: int, optim: OptimConfig, on_cpu: bool | None = None,
                 kernels: Kernels | None = None, activation_checkpointing: str = "none", compile: bool = False):
        super().__init__()
        self.spec, self.tp, self.optim = spec, tp, optim
        self.on_cpu = on_cpu
        """Build weights and RoPE buffers on CPU (``trainer.accelerator=cpu``); None = when no CUDA is visible."""
        self.kernels = kernels
        """Layer implementation and fused kernels (:func:`composer_automl.parallel.kernels.select_kernels`);
        None = local layers, no fusions."""
        self.activation_checkpointing, self.compiled = activation_checkpointing, compile
        """How the layers run (:mod:`composer_automl.parallel.execution`)."""
        self.save_hyperparameters({"model": spec.to_dict(), "tp": tp, "optim": vars(optim)})
        self.model: torch.nn.Module | None = None
        self._step_loss: list[torch.Tensor] = []  # this optimizer step's micro-batch losses (on device)
        self._val_totals: torch.Tensor | None = None  # (loss sum, scored tokens), float64 on device

    def configure_model(self) -> None:
        from composer_automl.parallel import build_parallel_model
        from composer_automl.parallel.execution import checkpoint_layers, compile_layers
        from composer_automl.parallel.kernels import Kernels

        if self.model is None:
            self.model = build_parallel_model(self.spec, self.tp, on_cpu=self.on_cpu, kernels=self.kernels or Kernels())
            checkpoint_layers(self.model, self.activation_checkpointing)
            if self.compiled:
                compile_layers(self.model)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        loss = masked_mean_loss(self.model, inputs, targets)
        self._step_loss.append(loss.detach())
        if is_last_micro_batch(self.trainer):  # the optimizer steps after this micro-batch
            log_step_scalars(self, self._global_batch_loss(), lr=self.lr_schedulers().get_last_lr()[0])
        return loss

    def _global_batch_loss(self) -> torch.Tensor:
        """Mean loss of this optimizer step over the whole global batch (all data-parallel replicas).

        One scalar all-reduce over the DP group, on the device (no host sync); TP ranks
        already hold equal values."""
        from megatron.core import parallel_state

        loss = torch.stack(self._step_loss).mean()
        self._step_loss = []
        group = parallel_state.get_data_parallel_group()
        if dist.get_world_size(group) > 1:
            dist.all_reduce(loss, group=group)
            loss = loss / dist.get_world_size(group)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_totals = torch.zeros(2, dtype=torch.float64, device=self.device)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        inputs, targets = batch
        total, count = masked_loss_sum(self.model, inputs, targets)
        self._val_totals += torch.stack([total.double(), count.double()])

    def on_validation_epoch_end(self) -> None:
        """Reduce (loss sum, tokens) over the data-parallel group (TP ranks hold equal values)."""
        from megatron.core import parallel_state

        totals = self._val_totals
        group = parallel_state.get_data_parallel_group()
        if dist.get_world_size(group) > 1:
            dist.all_reduce(totals, group=group)
        loss = totals[0] / totals[1].clamp(min=1)
        self.log("val/loss", loss.float(), prog_bar=True)
        self.log("val/ppl", torch.exp(loss.clamp(max=50.0)).float())

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Count the restored micro-batches in this run's accumulation (the checkpoint's may differ).

        Lightning decides where an optimizer step ends from the number of batches
        seen (``ready % accumulate_grad_batches``); a checkpoint is written between
        optimizer steps, so ``global_step × grad_accum`` batches is where this run stands.
        """
        set_batch_progress(checkpoint, checkpoint["global_step"] * self.trainer.accumulate_grad_batches)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Clip by the TP-global gradient norm (Lightning's own clipping sees one shard only)."""
        params = [p for group in optimizer.param_groups for p in group["params"]]
        norm = tp_grad_norm(params)
        self.log("train/grad_norm", norm)
        if gradient_clip_val:
            torch.nn.utils.clip_grads_with_norm_(params, gradient_clip_val, norm)

    def configure_optimizers(self):
        return lightning_optimizers(self.model, self.optim)
