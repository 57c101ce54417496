"""Models for MAD tasks: the plain HybridLM, or an encoder bottleneck + decoder for compression."""

from __future__ import annotations

import math

import torch
from torch import nn

from composer_automl.lightning_module import HybridLMModule, OptimConfig
from composer_automl.model import INIT_STD, HybridLM
from composer_automl.spec import ModelSpec


def sincos_positions(seq_len: int, dim: int) -> torch.Tensor:
    """Fixed sinusoidal position table (seq_len, dim) that tells the decoder which token to restore."""
    pos = torch.arange(seq_len, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10_000.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    table = torch.zeros(seq_len, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table


class CompressionAutoEncoder(nn.Module):
    """Pattern layers encode the sequence into its last position; an MLP decodes every token.

    encode: HybridLM embedding + residual layers + final norm, keep position T−1
    (causal, so it has seen the whole sequence) → (B, d). decode: add a position
    code per output slot → 2-layer GELU MLP → RMSNorm → vocabulary logits (B, T, V).
    """

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.encoder = HybridLM(spec)  # its (tied) LM head is unused; only the bottleneck is read
        d = spec.d_model
        self.register_buffer("positions", sincos_positions(spec.max_seq_len, d), persistent=False)
        self.decoder = nn.Sequential(
            nn.RMSNorm(d), nn.Linear(d, d), nn.GELU(), nn.RMSNorm(d), nn.Linear(d, d), nn.GELU(), nn.RMSNorm(d)
        )
        self.unembed = nn.Linear(d, spec.vocab_size)
        for module in (*self.decoder, self.unembed):
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=INIT_STD)
                nn.init.zeros_(module.bias)

    def encode(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) → bottleneck (B, d)."""
        lm = self.encoder
        x = lm.embed(idx)  # (B, T, d)
        for layer in lm.layers:
            x = layer(x, lm.rope_cos, lm.rope_sin)
        return lm.final_norm(x)[:, -1]

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) → reconstruction logits (B, T, V)."""
        code = self.encode(idx)
        x = code[:, None, :] + self.positions[: idx.shape[1]]  # (B, T, d)
        return self.unembed(self.decoder(x))


class MADModule(HybridLMModule):
    """HybridLMModule whose model is the compression autoencoder when ``autoencoder`` is set."""

    def __init__(self, spec: ModelSpec, optim: OptimConfig, autoencoder: bool = False):
        super().__init__(spec, optim)
        if autoencoder:
            self.model = CompressionAutoEncoder(spec)
