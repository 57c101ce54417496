"""ParallelLMModule: a LightningModule training the megatron tensor-parallel twin of a HybridLM."""

from __future__ import annotations

import math

import lightning as L
import torch
import torch.distributed as dist

from composer_automl.lightning_module import IGNORE_INDEX, OptimConfig, build_optimizer
from composer_automl.spec import ModelSpec


def masked_mean_loss(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over scored positions (target ≠ −100) of a megatron GPTModel.

    The model computes per-token losses with megatron's vocab-parallel
    cross-entropy (logits stay sharded over TP ranks); unscored positions get a
    dummy label 0 and weight 0. Equals ``next_token_loss`` on the gathered logits.
    """
    scored = targets != IGNORE_INDEX
    per_token = model(inputs, None, None, labels=targets.masked_fill(~scored, 0))  # (B, T) fp32
    return (per_token.float() * scored).sum() / scored.sum().clamp(min=1)


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
    squares = torch.stack([g.float().pow(2).sum() for g in grads]).sum() if grads else torch.zeros((), device=device)
    group = parallel_state.get_tensor_model_parallel_group()
    if dist.get_world_size(group) > 1:
        dist.all_reduce(squares, group=group)
    return squares.sqrt()


class ParallelLMModule(L.LightningModule):
    """Trains ``build_parallel_model(spec, tp)`` on ``(inputs, targets)`` token batches.

    The model is built in :meth:`configure_model`, i.e. after the strategy has set
    up megatron's process groups. Logs ``train/loss``, ``train/lr``,
    ``train/grad_norm`` per step and ``val/loss``, ``val/ppl`` per validation.
    """

    def __init__(self, spec: ModelSpec, tp: int, optim: OptimConfig):
        super().__init__()
        self.spec, self.tp, self.optim = spec, tp, optim
        self.save_hyperparameters({"model": spec.to_dict(), "tp": tp, "optim": vars(optim)})
        self.model: torch.nn.Module | None = None

    def configure_model(self) -> None:
        from composer_automl.parallel import build_parallel_model

        if self.model is None:
            self.model = build_parallel_model(self.spec, self.tp)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        loss = masked_mean_loss(self.model, inputs, targets)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/lr", self.lr_schedulers().get_last_lr()[0])
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        inputs, targets = batch
        loss = masked_mean_loss(self.model, inputs, targets)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True)
        self.log("val/ppl", math.exp(min(loss.item(), 50.0)), sync_dist=True)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Clip by the TP-global gradient norm (Lightning's own clipping sees one shard only)."""
        params = [p for group in optimizer.param_groups for p in group["params"]]
        norm = tp_grad_norm(params)
        self.log("train/grad_norm", norm)
        if gradient_clip_val:
            torch.nn.utils.clip_grads_with_norm_(params, gradient_clip_val, norm)

    def configure_optimizers(self):
        optimizer, scheduler = build_optimizer(self.model, self.optim)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
