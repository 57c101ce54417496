"""Build the tensor-parallel twin of :class:`composer_automl.model.HybridLM` with megatron-core.

The same :class:`ModelSpec` becomes a megatron ``GPTModel`` whose decoder has one
layer spec per pattern entry (see :mod:`composer_automl.parallel.layers`):
RMSNorm, SwiGLU, GQA, RoPE (rotate-half, same θ) and tied embeddings, no biases,
no dropout. :func:`composer_automl.parallel.weights.hybrid_to_parallel` maps
HybridLM weights onto it so both compute the same loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from megatron.core import parallel_state
from megatron.core.models.gpt import GPTModel
from megatron.core.transformer.transformer_config import TransformerConfig

from composer_automl.config import ConfigError
from composer_automl.model import INIT_STD
from composer_automl.parallel.kernels import Kernels
from composer_automl.parallel.layers import block_spec
from composer_automl.spec import ModelSpec


def check_layout(spec: ModelSpec, tp: int, world_size: int | None = None) -> None:
    """Raise a :class:`ConfigError` unless ``tp`` splits this model (and the world) evenly.

    Tensor parallelism shards query heads, KV heads (each rank keeps whole
    groups), the SwiGLU hidden size and the vocabulary (no padding, so the
    parallel model is exactly the single-device one).
    """
    if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1:
        raise ConfigError(f"parallel.tp must be a positive integer, got {tp!r}")
    sizes = {"n_heads": spec.n_heads, "n_kv_heads": spec.n_kv_heads,
             "ffn_hidden": spec.ffn_hidden, "vocab_size": spec.vocab_size}
    for name, size in sizes.items():
        if size % tp:
            allowed = [d for d in range(1, size + 1) if all(s % d == 0 for s in sizes.values())]
            raise ConfigError(
                f"parallel.tp={tp} does not divide model.{name}={size}; "
                f"allowed tp for this model: {allowed[:12]}"
            )
    if world_size is not None and world_size % tp:
        raise ConfigError(
            f"parallel.tp={tp} does not divide the number of processes "
            f"(trainer.num_nodes × trainer.devices = {world_size})"
        )


def transformer_config(spec: ModelSpec, tp: int, on_cpu: bool, kernels: Kernels = Kernels()) -> TransformerConfig:
    """megatron ``TransformerConfig`` matching ``spec`` (fp32 params; bf16 comes from autocast), with the fused
    kernels ``kernels`` selects (none by default)."""
    return TransformerConfig(
        num_layers=spec.n_layers,
        hidden_size=spec.d_model,
        num_attention_heads=spec.n_heads,
        num_query_groups=spec.n_kv_heads,
        kv_channels=spec.head_dim,
        ffn_hidden_size=spec.ffn_hidden,
        normalization="RMSNorm",
        layernorm_epsilon=spec.norm_eps,
        gated_linear_unit=True,
        activation_func=F.silu,
        add_bias_linear=False,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        **kernels.config_flags(),
        tensor_model_parallel_size=tp,
        pipeline_model_parallel_size=1,
        use_cpu_initialization=on_cpu,
        init_method_std=INIT_STD,
        init_method=_normal_init(INIT_STD),
        output_layer_init_method=_normal_init(INIT_STD / math.sqrt(2 * spec.n_layers)),
    )


def build_parallel_model(spec: ModelSpec, tp: int, on_cpu: bool | None = None,
                         kernels: Kernels = Kernels()) -> GPTModel:
    """This rank's shard of the tensor-parallel model for ``spec``, built from ``kernels``' layer
    implementation with its fused kernels (default: local layers, no fusions).

    Needs ``parallel_state.initialize_model_parallel(tp, 1)`` to have run (see
    :mod:`composer_automl.parallel.state`). ``forward(input_ids, None, None,
    labels=...)`` returns the per-token loss (b, s) from megatron's
    vocab-parallel cross-entropy, so full-vocabulary logits never exist on one rank.
    """
    check_layout(spec, tp)
    if parallel_state.get_tensor_model_parallel_world_size() != tp:
        raise RuntimeError(
            f"megatron parallel_state has tensor-parallel size "
            f"{parallel_state.get_tensor_model_parallel_world_size()}, expected {tp}"
        )
    on_cpu = not torch.cuda.is_available() if on_cpu is None else on_cpu
    return GPTModel(
        config=transformer_config(spec, tp, on_cpu, kernels),
        transformer_layer_spec=block_spec(spec.pattern, kernels.impl),
        vocab_size=spec.vocab_size,
        max_sequence_length=spec.max_seq_len,
        share_embeddings_and_output_weights=spec.tie_embeddings,
        position_embedding_type="rope",
        rotary_base=spec.rope_theta,
        parallel_output=True,
    )


def _normal_init(std: float):
    def init(tensor: torch.Tensor) -> torch.Tensor:
        return torch.nn.init.normal_(tensor, mean=0.0, std=std)

    return init
