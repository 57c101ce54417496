"""HybridLM behaviour: causality, RoPE, initialisation, GQA."""

import math

import pytest
import torch
import torch.nn.functional as F

from composer_automl.model import DECODE_BUCKET, HybridLM, KVCache, StaticDecoder, apply_rope, rope_tables
from composer_automl.patterns import Pattern
from composer_automl.presets import get_preset
from composer_automl.spec import ModelSpec


def test_logits_shape_and_causality():
    """Logits are (B, T, V) and position t does not depend on tokens after t."""
    torch.manual_seed(0)
    model = HybridLM(get_preset("tiny")).eval()
    idx = torch.randint(0, 256, (2, 12))
    changed = idx.clone()
    changed[:, 8:] = (changed[:, 8:] + 1) % 256
    with torch.no_grad():
        a, b = model(idx), model(changed)
    assert a.shape == (2, 12, get_preset("tiny").vocab_size)
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
    assert untied.lm_head.weight.shape == (get_preset("tiny").vocab_size, 64)


def test_sequence_longer_than_max_seq_len_is_rejected():
    """Inputs beyond the RoPE table raise a clear error."""
    model = HybridLM(get_preset("tiny").replace(max_seq_len=8))
    with pytest.raises(ValueError, match="exceeds max_seq_len=8"):
        model(torch.zeros(1, 9, dtype=torch.long))


def _generation_model(pattern: str = "AMMAMM") -> HybridLM:
    torch.manual_seed(0)
    spec = ModelSpec(Pattern.parse(pattern), d_model=32, n_heads=4, n_kv_heads=2, ffn_hidden=64, vocab_size=50,
                     max_seq_len=48)
    return HybridLM(spec).eval()


@pytest.mark.parametrize("pattern", ["AMMAMM", "MMMMMM", "AAAAAA"])
def test_cached_greedy_decoding_equals_uncached_recomputation(pattern):
    """Greedy decoding with the KV cache gives, token for token, what recomputing the whole sequence gives."""
    model = _generation_model(pattern)
    prompt = torch.randint(0, 50, (3, 7), generator=torch.Generator().manual_seed(1))
    cached = model.generate(prompt, 20, temperature=0.0)
    uncached = model.generate(prompt, 20, temperature=0.0, use_cache=False)
    assert cached.shape == (3, 27) and torch.equal(cached[:, :7], prompt)
    assert torch.equal(cached, uncached)


def test_cached_logits_match_a_full_forward_pass():
    """Prefill + one-token steps + a multi-token chunk through the cache reproduce the full forward's logits."""
    model = _generation_model()
    tokens = torch.randint(0, 50, (2, 16), generator=torch.Generator().manual_seed(2))
    full = model(tokens)
    cache = KVCache(model.spec, batch=2, max_len=16)
    pieces = [model(tokens[:, :5], cache), model(tokens[:, 5:6], cache), model(tokens[:, 6:16], cache)]
    assert cache.length == 16
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-5, atol=1e-5)


def test_kv_cache_holds_only_attention_layers_and_matches_the_spec():
    """The allocated cache's bytes equal ModelSpec.kv_cache_bytes; an attention-free pattern holds nothing."""
    model = _generation_model("AMMAMM")
    cache = KVCache(model.spec, batch=3, max_len=40)
    assert len(cache.keys) == 2 and cache.nbytes == model.spec.kv_cache_bytes(40, batch=3, dtype="float32")
    assert KVCache(_generation_model("MMMMMM").spec, batch=3, max_len=40).nbytes == 0
    model(torch.zeros(3, 40, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="holds 40 tokens; 41 requested"):
        model(torch.zeros(3, 1, dtype=torch.long), cache)


@pytest.mark.parametrize("pattern", ["AMMAMM", "MMMMMM", "AAAAAA"])
def test_static_cache_decoding_gives_todays_greedy_tokens(pattern):
    """decode='static' (fixed shapes: position a tensor, attention over the whole cache under a mask — what a CUDA
    graph replays) gives today's greedy tokens, also when the kept decoder serves a second call."""
    model = _generation_model(pattern)
    prompt = torch.randint(0, 50, (3, 7), generator=torch.Generator().manual_seed(1))
    today = model.generate(prompt, 20, temperature=0.0)
    assert torch.equal(model.generate(prompt, 20, temperature=0.0, decode="static"), today)
    kept = model.static_decoder(3, 27, "static")
    assert torch.equal(model.generate(prompt[:, :5], 20, temperature=0.0, decode="static"),
                       model.generate(prompt[:, :5], 20, temperature=0.0))
    assert model.static_decoder(3, 25, "static") is kept  # same batch and length bucket: reused


def test_static_decode_steps_give_the_full_forwards_logits():
    """Prefill then static one-token steps: each step's logits are the full forward's at that position, and the
    position advances in the cache (a tensor: the step's shapes never change)."""
    model = _generation_model()
    tokens = torch.randint(0, 50, (2, 16), generator=torch.Generator().manual_seed(2))
    full = model(tokens)  # (2, 16, V)
    decoder = StaticDecoder(model, batch=2, max_len=model.spec.max_seq_len, mode="static")
    with torch.no_grad():
        steps = [decoder.prefill(tokens[:, :5])] + [decoder.step(tokens[:, t:t + 1]) for t in range(5, 16)]
    torch.testing.assert_close(torch.stack(steps, dim=1), full[:, 4:], rtol=1e-5, atol=1e-5)
    assert int(decoder.cache.position) == 16 and decoder.cache.length == 16
    assert model.static_decoder(2, 20, "static").max_len == min(DECODE_BUCKET, model.spec.max_seq_len)
    with pytest.raises(ValueError, match="needs the model on a CUDA device"):
        model.generate(tokens, 2, temperature=0.0, decode="cuda-graph")
    with pytest.raises(ValueError, match="decode='bogus'"):
        model.generate(tokens, 2, temperature=0.0, decode="bogus")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_compiled_static_decoding_gives_todays_greedy_tokens_on_cpu():
    """decode='compile' (Inductor's fused kernels; on CUDA also a CUDA graph): today's greedy tokens on CPU."""
    model = _generation_model()
    prompt = torch.randint(0, 50, (2, 6), generator=torch.Generator().manual_seed(4))
    assert torch.equal(model.generate(prompt, 12, temperature=0.0, decode="compile"),
                       model.generate(prompt, 12, temperature=0.0))


@pytest.mark.gpu
@pytest.mark.timeout(300)
def test_cuda_graph_and_compiled_decoding_give_todays_greedy_tokens_on_cuda():
    """On a GPU: decode='cuda-graph' (one graph replay per token) and 'compile' (Inductor + graph) give the eager
    path's greedy tokens in fp32, also on a second call through the kept decoder; in bf16 the replayed step's
    logits are the eager step's within bf16 rounding."""
    model = _generation_model().cuda()
    prompt = torch.randint(0, 50, (2, 6), generator=torch.Generator().manual_seed(4)).cuda()
    eager = model.generate(prompt, 20, temperature=0.0)
    for mode in ("cuda-graph", "compile"):
        assert torch.equal(model.generate(prompt, 20, temperature=0.0, decode=mode), eager), mode
        assert torch.equal(model.generate(prompt, 20, temperature=0.0, decode=mode), eager), mode
    model = model.to(torch.bfloat16)
    with torch.no_grad():
        graph, plain = model.decoder(2, 12, "cuda-graph"), model.decoder(2, 12, "eager")
        for decoder in (graph, plain):
            decoder.prefill(prompt)
        for t in range(5):
            token = prompt[:, t:t + 1]
            torch.testing.assert_close(graph.step(token).float(), plain.step(token).float(), rtol=0.05, atol=0.05)


def test_sampling_respects_top_k_and_is_seeded():
    """top_k=1 sampling is greedy; the same generator seed gives the same sample; bad arguments raise."""
    model = _generation_model()
    prompt = torch.randint(0, 50, (2, 4), generator=torch.Generator().manual_seed(3))
    greedy = model.generate(prompt, 8, temperature=0.0)
    assert torch.equal(model.generate(prompt, 8, temperature=1.0, top_k=1), greedy)
    a = model.generate(prompt, 8, temperature=1.0, top_k=10, generator=torch.Generator().manual_seed(5))
    b = model.generate(prompt, 8, temperature=1.0, top_k=10, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    with pytest.raises(ValueError):
        model.generate(prompt, 2, temperature=-1.0)


def test_tiny_preset_fits_the_default_byte_tokenizer():
    """``train model=tiny data.path=<a default data prepare>`` must fit: tiny's vocab holds the byte
    tokenizer's 257 ids (it once had 256 and the obvious CPU smoke test stopped with an error)."""
    from composer_automl.data.tokenizers import ByteTokenizer

    assert get_preset("tiny").vocab_size >= ByteTokenizer.vocab_size == 257


def test_compiled_layers_share_one_graph_per_kind_across_models_of_one_width():
    """compile_layers: every A layer runs one compiled graph and every M layer another, and a second model of
    another pattern (a search worker's next trial) compiles nothing new; outputs and gradients are the eager
    model's (aot_eager: dynamo's graphs without Inductor's codegen, which the slow pretrain test covers)."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    graphs = []
    for pattern in ("AMAM", "MMAAM"):
        spec = ModelSpec(pattern=Pattern.parse(pattern), d_model=32, n_heads=2, n_kv_heads=1, ffn_hidden=64,
                         vocab_size=64, max_seq_len=16)
        torch.manual_seed(0)
        eager, compiled = HybridLM(spec), HybridLM(spec)
        compiled.load_state_dict(eager.state_dict())
        compiled.compile_layers(backend="aot_eager")
        idx = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(1))
        out_eager, out_compiled = eager(idx), compiled(idx)
        torch.testing.assert_close(out_compiled, out_eager)
        out_eager.square().mean().backward()
        out_compiled.square().mean().backward()
        for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
            torch.testing.assert_close(q.grad, p.grad, msg=name)
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs == [2, 2]
    assert [name for name, _ in HybridLM(spec).named_parameters()] == [name for name, _ in compiled.named_parameters()]
