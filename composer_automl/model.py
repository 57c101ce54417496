"""HybridLM: a decoder-only LM whose residual layers follow a pattern of A/M layers.

Single-device code; tensor parallelism is applied elsewhere
(:mod:`composer_automl.parallel`). Each pattern entry is one pre-norm residual
layer ``x + mixer(RMSNorm(x))`` where the mixer is attention (``A``) or SwiGLU (``M``).

Initialisation (GPT-2 / Megatron style): every linear and the embedding are
N(0, 0.02); the projections that write into the residual stream (attention output,
SwiGLU down) are N(0, 0.02/√(2·n_layers)); RMSNorm weights are ones.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from composer_automl.spec import ModelSpec

INIT_STD = 0.02


def rope_tables(head_dim: int, max_seq_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables of shape (max_seq_len, head_dim) for rotate-half RoPE."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float64), inv_freq)  # (T, hd/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, hd)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, nh, T, hd) by position; cos/sin are (T, hd)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


class Attention(nn.Module):
    """Causal grouped-query self-attention with RoPE through SDPA."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = spec.n_heads, spec.n_kv_heads, spec.head_dim
        kv_dim = spec.n_kv_heads * spec.head_dim
        self.qkv_proj = nn.Linear(spec.d_model, spec.d_model + 2 * kv_dim, bias=False)
        self.out_proj = nn.Linear(spec.d_model, spec.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q_dim, kv_dim = self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        q, k, v = self.qkv_proj(x).split([q_dim, kv_dim, kv_dim], dim=-1)
        q = q.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, nh, T, hd)
        k = k.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, nkv, T, hd)
        v = v.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos[:T], sin[:T]), apply_rope(k, cos[:T], sin[:T])
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, enable_gqa=self.n_kv_heads != self.n_heads
        )  # (B, nh, T, hd)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, q_dim))


class SwiGLU(nn.Module):
    """SwiGLU MLP: down(silu(gate(x)) * up(x)), gate and up fused in one matmul."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.gate_up_proj = nn.Linear(spec.d_model, 2 * spec.ffn_hidden, bias=False)
        self.down_proj = nn.Linear(spec.ffn_hidden, spec.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)


MIXERS: dict[str, Callable[[ModelSpec], nn.Module]] = {"A": Attention, "M": SwiGLU}
"""Layer-kind symbol → module constructor (keys follow the primitive registry)."""

RESIDUAL_OUTPUTS = ("out_proj", "down_proj")
"""Linear layers that write into the residual stream (scaled init)."""


class ResidualLayer(nn.Module):
    """x + mixer(RMSNorm(x))."""

    def __init__(self, kind: str, spec: ModelSpec):
        super().__init__()
        self.kind = kind
        self.norm = nn.RMSNorm(spec.d_model, eps=spec.norm_eps)
        self.mixer = MIXERS[kind](spec)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        return x + self.mixer(self.norm(x), cos, sin)


class HybridLM(nn.Module):
    """Embedding → residual layers per pattern entry → RMSNorm → LM head."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        missing = sorted(set(spec.pattern) - set(MIXERS))
        if missing:
            raise ValueError(f"no module registered for layer kind(s) {missing}; have {sorted(MIXERS)}")
        self.spec = spec
        self.embed = nn.Embedding(spec.vocab_size, spec.d_model)
        self.layers = nn.ModuleList(ResidualLayer(kind, spec) for kind in spec.pattern)
        self.final_norm = nn.RMSNorm(spec.d_model, eps=spec.norm_eps)
        self.lm_head = None if spec.tie_embeddings else nn.Linear(spec.d_model, spec.vocab_size, bias=False)
        cos, sin = rope_tables(spec.head_dim, spec.max_seq_len, spec.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Apply the documented initialisation (see module docstring)."""
        residual_std = INIT_STD / math.sqrt(2 * self.spec.n_layers)
        for name, module in self.named_modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                std = residual_std if name.endswith(RESIDUAL_OUTPUTS) else INIT_STD
                nn.init.normal_(module.weight, mean=0.0, std=std)
            elif isinstance(module, nn.RMSNorm):
                nn.init.ones_(module.weight)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) → logits (B, T, vocab)."""
        T = idx.shape[1]
        if T > self.spec.max_seq_len:
            raise ValueError(f"sequence length {T} exceeds max_seq_len={self.spec.max_seq_len}")
        x = self.embed(idx)  # (B, T, d)
        for layer in self.layers:
            x = layer(x, self.rope_cos, self.rope_sin)
        x = self.final_norm(x)
        weight = self.embed.weight if self.lm_head is None else self.lm_head.weight
        return F.linear(x, weight)  # (B, T, V)
