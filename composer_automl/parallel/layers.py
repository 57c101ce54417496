"""megatron-core layer specs for hybrid patterns: one ``TransformerLayer`` spec per entry.

An ``A`` entry is megatron's local GPT layer with its MLP half replaced by
identities; an ``M`` entry is the same layer with its attention half replaced.
(This is how megatron's own hybrid stacks skip halves.) The attention core is
:class:`SDPACoreAttention`: PyTorch's fused scaled-dot-product attention (flash
kernels on GPU, no CUDA-only buffers on CPU) in megatron's core-attention slot.

With ``impl="te"`` (see :mod:`composer_automl.parallel.kernels`) the same layers are
built from Transformer Engine modules, as megatron's own TE GPT spec does: the
RMSNorm moves into the following linear layer (``TELayerNormColumnParallelLinear``)
and attention is TE's fused ``TEDotProductAttention``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from megatron.core.fusions.fused_bias_dropout import get_bias_dropout_add
from megatron.core.transformer.attention import SelfAttention, SelfAttentionSubmodules
from megatron.core.transformer.enums import AttnMaskType
from megatron.core.transformer.identity_op import IdentityFuncOp, IdentityOp
from megatron.core.transformer.mlp import MLP, MLPSubmodules
from megatron.core.tensor_parallel import ColumnParallelLinear
from megatron.core.transformer.module import MegatronModule
from megatron.core.transformer.spec_utils import ModuleSpec
from megatron.core.transformer.torch_norm import WrappedTorchNorm
from megatron.core.transformer.transformer_block import TransformerBlockSubmodules
from megatron.core.transformer.transformer_config import TransformerConfig
from megatron.core.transformer.transformer_layer import TransformerLayer, TransformerLayerSubmodules

from composer_automl.adapters.megatron import RowParallelLinear
from composer_automl.patterns import Pattern


class SDPACoreAttention(MegatronModule):
    """Causal GQA attention over this rank's heads with ``F.scaled_dot_product_attention``.

    Takes megatron's layout — query (s, b, heads/tp, hd), key/value
    (s, b, kv_heads/tp, hd) — and returns (s, b, heads/tp · hd).
    """

    def __init__(self, config: TransformerConfig, layer_number: int, attn_mask_type: AttnMaskType,
                 attention_type: str, softmax_scale: float | None = None, **_unused):
        super().__init__(config=config)
        if attn_mask_type != AttnMaskType.causal:
            raise ValueError(f"SDPACoreAttention supports causal masks only, got {attn_mask_type}")
        self.softmax_scale = softmax_scale

    def forward(self, query, key, value, attention_mask=None, attn_mask_type=None,
                attention_bias=None, packed_seq_params=None):
        if packed_seq_params is not None or attention_bias is not None:
            raise ValueError("SDPACoreAttention does not support packed sequences or attention bias")
        q, k, v = (t.permute(1, 2, 0, 3) for t in (query, key, value))  # (b, heads, s, hd)
        out = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, scale=self.softmax_scale, enable_gqa=k.shape[1] != q.shape[1]
        )  # (b, heads, s, hd)
        s, b = query.shape[0], query.shape[1]
        return out.permute(2, 0, 1, 3).reshape(s, b, -1)


def transformer_engine_modules():
    """megatron's Transformer Engine wrappers module (import deferred: TE is optional and CUDA-only)."""
    from megatron.core.extensions import transformer_engine

    return transformer_engine


def attention_layer_spec(impl: str = "local") -> ModuleSpec:
    """Pre-norm self-attention residual layer; the MLP half is an identity."""
    te = transformer_engine_modules() if impl == "te" else None
    return ModuleSpec(
        module=TransformerLayer,
        submodules=TransformerLayerSubmodules(
            input_layernorm=IdentityOp if te else WrappedTorchNorm,  # TE: the norm is inside linear_qkv
            self_attention=ModuleSpec(
                module=SelfAttention,
                params={"attn_mask_type": AttnMaskType.causal},
                submodules=SelfAttentionSubmodules(
                    linear_qkv=te.TELayerNormColumnParallelLinear if te else ColumnParallelLinear,
                    core_attention=te.TEDotProductAttention if te else SDPACoreAttention,
                    linear_proj=te.TERowParallelLinear if te else RowParallelLinear,
                    q_layernorm=IdentityOp,
                    k_layernorm=IdentityOp,
                ),
            ),
            self_attn_bda=get_bias_dropout_add,
            pre_mlp_layernorm=IdentityOp,
            mlp=IdentityOp,
            mlp_bda=IdentityFuncOp,
        ),
    )


def mlp_layer_spec(impl: str = "local") -> ModuleSpec:
    """Pre-norm SwiGLU residual layer; the attention half is an identity."""
    te = transformer_engine_modules() if impl == "te" else None
    return ModuleSpec(
        module=TransformerLayer,
        submodules=TransformerLayerSubmodules(
            input_layernorm=IdentityOp,
            self_attention=IdentityOp,
            self_attn_bda=IdentityFuncOp,
            pre_mlp_layernorm=IdentityOp if te else WrappedTorchNorm,  # TE: the norm is inside linear_fc1
            mlp=ModuleSpec(
                module=MLP,
                submodules=MLPSubmodules(
                    linear_fc1=te.TELayerNormColumnParallelLinear if te else ColumnParallelLinear,
                    linear_fc2=te.TERowParallelLinear if te else RowParallelLinear,
                ),
            ),
            mlp_bda=get_bias_dropout_add,
        ),
    )


LAYER_SPECS = {"A": attention_layer_spec, "M": mlp_layer_spec}
"""Layer-kind symbol → megatron layer spec factory (keys follow ``composer_automl.model.MIXERS``)."""


def block_spec(pattern: Pattern, impl: str = "local") -> TransformerBlockSubmodules:
    """A ``TransformerBlock`` spec with one layer spec per pattern entry (``impl``: ``local`` or ``te``)."""
    missing = sorted(set(pattern) - set(LAYER_SPECS))
    if missing:
        raise ValueError(f"no megatron layer spec for layer kind(s) {missing}; have {sorted(LAYER_SPECS)}")
    final_norm = transformer_engine_modules().TENorm if impl == "te" else WrappedTorchNorm
    return TransformerBlockSubmodules(layer_specs=[LAYER_SPECS[kind](impl) for kind in pattern],
                                      layer_norm=final_norm)
