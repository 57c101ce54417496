"""Lightning strategy for megatron-core tensor parallelism: DDP over the data-parallel group only.

Order (as in NeMo's MegatronStrategy): Lightning brings up the default process
group from its cluster environment (torchrun, SLURM or its own launcher) →
megatron's tensor/data-parallel groups are created → the LightningModule builds
its TP shard in ``configure_model`` → DDP wraps it over the *data-parallel*
group (DDP over the whole world would average different TP shards of equal
shape) → data is sharded by data-parallel rank and size. Checkpoints are
megatron ``dist_checkpointing`` folders, reshardable to another TP/DP size
(:mod:`composer_automl.parallel.checkpoint`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy
from megatron.core import parallel_state

from composer_automl.config import ConfigError
from composer_automl.parallel import checkpoint, state


class MegatronDDPStrategy(DDPStrategy):
    """``DDPStrategy`` + megatron ``parallel_state`` (tensor size ``tp``, pipeline size 1)."""

    strategy_name = "megatron_ddp"

    def __init__(self, tp: int = 1, seed: int = 0, layout: checkpoint.Layout | None = None,
                 on_cpu: bool | None = None, impl: str = "local", **ddp_kwargs: Any):
        # gradients as views of DDP's communication buckets: no second copy of every gradient, no copy per step
        super().__init__(**{"gradient_as_bucket_view": True, **ddp_kwargs})
        self.tp, self.seed, self.impl = tp, seed, impl
        self.on_cpu = on_cpu
        """The run is on CPU (``trainer.accelerator=cpu``) even if CUDA exists; None = the root device decides."""
        self.layout = layout
        """The run's data layout, stored in every checkpoint's meta.json."""

    def setup_distributed(self) -> None:
        super().setup_distributed()
        if dist.get_world_size() % self.tp:
            raise ConfigError(
                f"parallel.tp={self.tp} does not divide the world size {dist.get_world_size()} "
                "(trainer.num_nodes × trainer.devices)"
            )
        if self.on_cpu is None:
            self.on_cpu = self.root_device.type == "cpu"
        self.init_megatron()

    def init_megatron(self) -> None:
        """megatron's TP/DP groups in the existing world, set up for this run's device (CPU or CUDA)."""
        state.init_model_parallel(self.tp, self.seed, on_cpu=self.on_cpu)

    def configure_ddp(self) -> None:
        self._ddp_kwargs["process_group"] = parallel_state.get_data_parallel_group()
        super().configure_ddp()

    @property
    def distributed_sampler_kwargs(self) -> dict[str, Any]:
        return {"num_replicas": state.dp_size(), "rank": state.dp_rank()}

    def save_checkpoint(self, checkpoint_dict: dict[str, Any], filepath, storage_options=None) -> None:
        """Every rank writes its shards (collective); global rank 0 then writes meta.json."""
        folder = Path(filepath)
        module = self.lightning_module
        checkpoint.save(folder, checkpoint_dict, module.model, self.optimizers[0], on_cpu=bool(self.on_cpu))
        self.barrier("megatron_ddp.save_checkpoint")
        if self.is_global_zero:
            if self.layout is None:
                raise RuntimeError("MegatronDDPStrategy(layout=...) is needed to write checkpoints")
            checkpoint.write_meta(folder, module.spec, self.layout, checkpoint_dict["global_step"], self.impl)
        self.barrier("megatron_ddp.save_checkpoint.meta")

    def load_checkpoint(self, checkpoint_path, weights_only: bool | None = None) -> dict[str, Any]:
        """Read the checkpoint resharded to this run's TP/DP layout (every rank; collective)."""
        if self.layout is not None:
            checkpoint.check_checkpoint(checkpoint_path, self.lightning_module.spec, self.layout, self.impl)
        return checkpoint.load(checkpoint_path, self.lightning_module.model)

    def load_model_state_dict(self, checkpoint_dict, strict: bool = True) -> None:
        missing, unexpected = self.lightning_module.load_state_dict(checkpoint_dict["state_dict"], strict=False)
        missing = [k for k in missing if not k.endswith("_extra_state")]  # megatron's (empty) per-layer extras
        if strict and (missing or unexpected):
            raise RuntimeError(f"checkpoint does not match the model: missing {missing}, unexpected {unexpected}")

    def load_optimizer_state_dict(self, checkpoint_dict) -> None:
        checkpoint.restore_optimizer(self.optimizers[0], self.lightning_module.model, checkpoint_dict["optimizer_states"][0])

    def remove_checkpoint(self, filepath) -> None:
        if self.is_global_zero:
            shutil.rmtree(filepath, ignore_errors=True)

    def teardown(self) -> None:
        super().teardown()
        if parallel_state.model_parallel_is_initialized():
            state.destroy_model_parallel()
