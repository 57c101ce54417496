"""Typed config of ``composer-automl train`` (validated before any work starts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from composer_automl import devices
from composer_automl.config import ConfigError, choice
from composer_automl.optim import OptimConfig


@dataclass
class TrainerConfig:
    """Hardware layout, run length and intervals."""

    num_nodes: int = 1
    """Machines in the job (Lightning reads the rank of this one from torchrun / SLURM)."""
    devices: int = 1
    """Processes (GPUs) per node."""
    accelerator: str = "auto"
    """``gpu``, ``cpu`` (gloo; tests) or ``auto`` (gpu when CUDA is available)."""
    precision: str = "auto"
    """``auto`` = bf16-mixed on GPU, 32-true on CPU; or a Lightning precision string."""
    max_steps: int = 1000
    """Optimizer steps in the whole run (also the length of the lr schedule)."""
    micro_batch_size: int = 8
    """Sequences per data-parallel rank per forward/backward pass."""
    grad_accum: int = 1
    """Micro-batches accumulated per optimizer step: global batch = micro_batch_size × grad_accum × DP size."""
    seq_len: int = 2048
    """Tokens per training sequence (≤ the model's max_seq_len)."""
    grad_clip: float = 1.0
    """Clip the global (all TP shards) gradient L2 norm to this; 0 = off."""
    log_every: int = 10
    """Log scalars every N steps."""
    val_every: int = 500
    """Validate every N steps (0 = never)."""
    val_batches: int = 10
    """Micro-batches per validation, per data-parallel rank."""
    ckpt_every: int = 1000
    """Save a checkpoint every N optimizer steps (0 = never)."""
    keep_last_k: int = 3
    """Keep only the newest k checkpoints of this run (each holds weights and optimizer state)."""
    activation_checkpointing: str = "none"
    """Recompute activations in backward to fit larger micro-batches: ``none``, ``selective`` (keep matmul and
    attention outputs, recompute norms, RoPE, SwiGLU's gate and casts: little extra time) or ``full`` (keep each
    layer's input only: one more forward pass)."""
    peak_tflops: Optional[float] = None
    """Per-device dense peak TFLOP/s that MFU is measured against; null = look the device up (Lightning's
    table, then ``composer_automl.throughput.PEAKS``: every H100/H200/A100 name CUDA reports)."""

    def __post_init__(self) -> None:
        from composer_automl.parallel.execution import CHECKPOINTING

        devices.check_fields(self.accelerator, self.precision, self.devices)
        choice(self.activation_checkpointing, CHECKPOINTING, "activation_checkpointing")
        for name in ("num_nodes", "max_steps", "micro_batch_size", "grad_accum", "seq_len", "log_every",
                     "val_batches", "keep_last_k"):
            if getattr(self, name) < 1:
                raise ConfigError(f"={getattr(self, name)} must be a positive integer", key=name)
        for name in ("val_every", "ckpt_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"={getattr(self, name)} must be ≥ 0 (0 = never)", key=name)
        if self.grad_clip < 0:
            raise ConfigError(f"={self.grad_clip} must be ≥ 0 (0 = off)", key="grad_clip")
        if self.peak_tflops is not None and self.peak_tflops <= 0:
            raise ConfigError(f"={self.peak_tflops} must be > 0 or null", key="peak_tflops")

    @property
    def world_size(self) -> int:
        return self.num_nodes * self.devices


@dataclass
class ParallelConfig:
    """Model parallelism (pipeline size is always 1)."""

    tp: int = 1
    """Tensor-parallel size: must divide heads, KV heads, ffn_hidden, vocab and the world size."""
    impl: str = "local"
    """Layer implementation: ``local`` (megatron-core layers, PyTorch SDPA/FlashAttention) or ``te``
    (Transformer Engine layers and fused attention; CUDA, needs ``transformer_engine``)."""
    fusions: bool = False
    """GPU runs: megatron's fused SwiGLU and bias-dropout-add kernels (and fused RoPE with Transformer
    Engine). CPU runs never fuse. Off by default: megatron 0.16 compiles each fused function on its own, and
    on an H200 the 1B models trained 3 % slower with them (``compile`` fuses more, across whole layers)."""
    compile: bool = False
    """``torch.compile`` each layer and the loss (Inductor fuses norms, RoPE, SwiGLU, residual adds, casts and the
    cross-entropy; one A and one M graph, compiled in the first steps). Same loss and gradients as eager."""

    def __post_init__(self) -> None:
        from composer_automl.parallel.kernels import IMPLS

        choice(self.impl, IMPLS, "impl")


@dataclass
class DataSource:
    """Where the training tokens come from."""

    path: str = ""
    """Dataset folder prepared by ``composer-automl data`` (``train``/``valid`` .bin/.idx, ``meta.json``), or
    the prefix of an existing megatron indexed dataset (``PREFIX.bin``/``PREFIX.idx``), read in place."""
    valid_path: Optional[str] = None
    """Validation prefix when ``path`` is a megatron prefix (needed unless ``trainer.val_every=0``)."""


@dataclass
class TrainConfig:
    """``composer-automl train``: a model spec trained on a prepared dataset."""

    model: str = "tiny"
    """A preset name (tiny, 350M, 1B, 3B, llama3.2-1B, …) or a ModelSpec YAML path."""
    out_dir: str = "train_out"
    """Run folder: ``tensorboard/`` and ``checkpoints/``."""
    resume: Optional[str] = None
    """Checkpoint to continue from: a ``step_NNNNNN.ckpt`` folder, ``latest`` (newest in out_dir) or null."""
    seed: int = 0
    """Seed of initial weights and data order."""
    data: DataSource = field(default_factory=DataSource)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        if not self.data.path:
            raise ConfigError("is required: the folder of a dataset prepared by `composer-automl data`", key="data.path")
        if self.optim.max_steps != self.trainer.max_steps:
            raise ConfigError(f"={self.optim.max_steps} must equal trainer.max_steps={self.trainer.max_steps} "
                              "(leave optim.max_steps unset: it follows trainer.max_steps)", key="optim.max_steps")
