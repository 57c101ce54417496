"""Kernel choice of the tensor-parallel model: layer implementation and fused kernels, from the config.

Two implementations (``parallel.impl``):

- ``local``: megatron-core's own linear layers, ``torch.nn`` RMSNorm and our SDPA attention
  core (:class:`composer_automl.parallel.layers.SDPACoreAttention`), which runs PyTorch's
  FlashAttention / memory-efficient kernels on CUDA (masked softmax happens inside them).
- ``te``: Transformer Engine layers (RMSNorm fused into the following linear layer, TE's
  fused attention) through megatron's TE wrappers; CUDA only, and Transformer Engine must be
  importable, else one clear error before any work.

``parallel.fusions`` turns on megatron's fused bias-SwiGLU and bias-dropout-add kernels (and
fused RoPE where Transformer Engine provides it) for GPU runs. A CPU run never fuses: its
model is the same as before these options existed.
"""

from __future__ import annotations

from dataclasses import dataclass

from composer_automl.config import ConfigError, choice

IMPLS = ("local", "te")
"""Layer implementations of the tensor-parallel model."""


def transformer_engine_error() -> str | None:
    """Why Transformer Engine cannot be used here (None when ``transformer_engine.pytorch`` imports)."""
    try:
        import transformer_engine.pytorch  # noqa: F401
    except Exception as err:  # ImportError, or a broken CUDA install raising at import
        return f"{type(err).__name__}: {err}"
    return None


def rope_fusion_available() -> bool:
    """Whether megatron-core found a fused RoPE kernel (it comes from Transformer Engine)."""
    from megatron.core.models.common.embeddings import rope_utils

    return rope_utils.fused_apply_rotary_pos_emb is not None


@dataclass(frozen=True)
class Kernels:
    """What the model is built from: layer implementation and whether fused kernels are on."""

    impl: str = "local"
    fusions: bool = False

    def config_flags(self) -> dict[str, bool]:
        """megatron ``TransformerConfig`` fields selecting the fused kernels."""
        return {
            "bias_activation_fusion": self.fusions,      # fused SwiGLU (no bias in our layers)
            "bias_dropout_fusion": self.fusions,         # fused residual add
            "apply_rope_fusion": self.fusions and rope_fusion_available(),
            "masked_softmax_fusion": False,              # attention runs in SDPA / TE fused attention
            "persist_layer_norm": False,                 # apex-only kernel; norms are torch or TE
        }


def select_kernels(impl: str, fusions: bool, on_cpu: bool) -> Kernels:
    """The run's kernels: ``impl`` checked (``te`` needs CUDA and Transformer Engine); fusions on GPU only."""
    choice(impl, IMPLS, "parallel.impl")
    if impl == "te":
        if on_cpu:
            raise ConfigError("parallel.impl=te runs on CUDA only; this run is on CPU (trainer.accelerator=cpu): "
                              "use parallel.impl=local")
        missing = transformer_engine_error()
        if missing:
            raise ConfigError(f"parallel.impl=te needs Transformer Engine, which is not importable here ({missing}); "
                              "install transformer-engine[pytorch] or use parallel.impl=local")
    return Kernels(impl, fusions and not on_cpu)
