"""HybridLM behaviour: causality, RoPE, initialisation, GQA."""

import math

import pytest
import torch
import torch.nn.functional as F

from composer_automl.model import HybridLM, apply_rope, rope_tables
from composer_automl.presets import get_preset


def test_logits_shape_and_causality():
    """Logits are (B, T, V) and position t does not depend on tokens after t."""
    torch.manual_seed(0)
    model = HybridLM(get_preset("tiny")).eval()
    idx = torch.randint(0, 256, (2, 12))
    changed = idx.clone()
    changed[:, 8:] = (changed[:, 8:] + 1) % 256
    with torch.no_grad():
        a, b = model(idx), model(changed)
    assert a.shape == (2, 12, 256)
    torch.testing.assert_close(a[:, :8], b[:, :8])
    assert not torch.allclose(a[:, 8:], b[:, 8:])


def test_rope_scores_depend_only_on_relative_position():
    """q·k after RoPE is the same for (m, n) and (m+s, n+s)."""
    cos, sin = rope_tables(8, 64, 10_000.0)
    q, k = torch.randn(8), torch.randn(8)

    def score(m: int, n: int) -> float:
        qm = apply_rope(q.view(1, 1, 1, 8), cos[m : m + 1], sin[m : m + 1])
        kn = apply_rope(k.view(1, 1, 1, 8), cos[n : n + 1], sin[n : n + 1])
        return float((qm * kn).sum())

    assert score(5, 2) == pytest.approx(score(40, 37), abs=1e-5)
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-3)


def test_gqa_attention_matches_repeated_kv_reference():
    """The attention layer equals explicit K/V head repetition + causal softmax attention."""
    torch.manual_seed(0)
    spec = get_preset("tiny").replace(pattern="A", n_heads=4, n_kv_heads=2)
    model = HybridLM(spec)
    attn = model.layers[0].mixer
    x = torch.randn(2, 10, spec.d_model)
    cos, sin = model.rope_cos, model.rope_sin
    out = attn(x, cos, sin)

    hd = spec.head_dim
    q, k, v = attn.qkv_proj(x).split([4 * hd, 2 * hd, 2 * hd], dim=-1)
    q = apply_rope(q.view(2, 10, 4, hd).transpose(1, 2), cos[:10], sin[:10])
    k = apply_rope(k.view(2, 10, 2, hd).transpose(1, 2), cos[:10], sin[:10]).repeat_interleave(2, dim=1)
    v = v.view(2, 10, 2, hd).transpose(1, 2).repeat_interleave(2, dim=1)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
    scores = scores.masked_fill(torch.ones(10, 10, dtype=torch.bool).triu(1), float("-inf"))
    ref = attn.out_proj((F.softmax(scores, -1) @ v).transpose(1, 2).reshape(2, 10, spec.d_model))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


def test_initialisation_follows_documented_scheme():
    """Linears N(0, 0.02); residual outputs scaled by 1/sqrt(2·n_layers); norms are ones."""
    torch.manual_seed(0)
    spec = get_preset("tiny").replace(d_model=256, n_heads=8, n_kv_heads=4, ffn_hidden=512)
    model = HybridLM(spec)
    assert model.embed.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.layers[0].mixer.qkv_proj.weight.std().item() == pytest.approx(0.02, rel=0.05)
    scaled = 0.02 / math.sqrt(2 * spec.n_layers)
    assert model.layers[0].mixer.out_proj.weight.std().item() == pytest.approx(scaled, rel=0.05)
    assert model.layers[1].mixer.down_proj.weight.std().item() == pytest.approx(scaled, rel=0.05)
    assert torch.equal(model.final_norm.weight, torch.ones(spec.d_model))


def test_tied_and_untied_heads():
    """Tied models reuse the embedding as LM head; untied ones own a separate matrix."""
    tied = HybridLM(get_preset("tiny"))
    untied = HybridLM(get_preset("tiny").replace(tie_embeddings=False))
    assert tied.lm_head is None
    assert untied.lm_head.weight.shape == (256, 64)


def test_sequence_longer_than_max_seq_len_is_rejected():
    """Inputs beyond the RoPE table raise a clear error."""
    model = HybridLM(get_preset("tiny").replace(max_seq_len=8))
    with pytest.raises(ValueError, match="exceeds max_seq_len=8"):
        model(torch.zeros(1, 9, dtype=torch.long))
