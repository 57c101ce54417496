"""HybridLM: a decoder-only LM whose residual layers follow a pattern of A/M layers.

Single-device code; tensor parallelism is applied elsewhere
(:mod:`composer_automl.parallel`). Each pattern entry is one pre-norm residual
layer ``x + mixer(RMSNorm(x))`` where the mixer is attention (``A``) or SwiGLU (``M``).

Initialisation (GPT-2 / Megatron style): every linear and the embedding are
N(0, 0.02); the projections that write into the residual stream (attention output,
SwiGLU down) are N(0, 0.02/√(2·n_layers)); RMSNorm weights are ones.

Inference: :meth:`HybridLM.generate` decodes with a :class:`KVCache` that only the
attention layers hold (an ``M`` layer needs no past), so a pattern's cache is
``n_attention_layers / n_layers`` of a Llama-style model's at the same depth. At batch 1 a
decode step is a few hundred small kernels, so on a GPU launching them costs more than
reading the weights: :class:`StaticDecoder` decodes with shapes that never change and
replays each step as one CUDA graph (``generate(decode=...)``, :data:`DECODE_MODES`).

This module imports nothing of ours: a Hugging Face export carries a copy of it beside its
modeling file (:mod:`composer_automl.modeling_hybrid`), so ``trust_remote_code`` loads the
same layers without this package. The layers read their sizes from any object with the
fields of :class:`Architecture` (a :class:`~composer_automl.spec.ModelSpec`, or the export's config).
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterable, Protocol

import torch
import torch.nn.functional as F
from torch import nn

INIT_STD = 0.02


class Architecture(Protocol):
    """The fields the layers read: :class:`composer_automl.spec.ModelSpec`'s (an hf export's config has them too)."""

    pattern: Iterable[str]
    """Layer kinds, one per residual layer (``A``, ``M``)."""
    d_model: int
    n_heads: int
    n_kv_heads: int
    ffn_hidden: int
    vocab_size: int
    max_seq_len: int
    tie_embeddings: bool
    rope_theta: float
    norm_eps: float


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


class KVCache:
    """Keys and values of the past tokens, one (B, n_kv, max_len, hd) pair per attention layer.

    ``length`` tokens are filled; a forward pass over T new tokens appends them. MLP layers
    hold nothing, so the cache's bytes are those of the pattern's attention layers only.
    """

    def __init__(self, spec: Architecture, batch: int, max_len: int, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32):
        if max_len > spec.max_seq_len:
            raise ValueError(f"cache length {max_len} exceeds max_seq_len={spec.max_seq_len}")
        shape = (batch, spec.n_kv_heads, max_len, spec.d_model // spec.n_heads)
        n_attention = sum(MIXERS[kind] is Attention for kind in spec.pattern)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_attention)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_attention)]
        self.length = 0
        self.position = torch.zeros(1, dtype=torch.long, device=device)
        """Static decode steps (:meth:`HybridLM.decode_step`): where the next token goes, a tensor advanced in place."""
        self.slots = torch.arange(max_len, device=device)
        self.static_step = False
        """True inside a static decode step: attention writes at ``position`` and reads every slot up to it."""

    @property
    def nbytes(self) -> int:
        """Bytes allocated for keys and values."""
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))

    def append(self, slot: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store (B, n_kv, T, hd) keys/values of attention layer ``slot`` after the past; return all so far."""
        end = self.length + k.shape[2]
        if end > self.keys[slot].shape[2]:
            raise ValueError(f"the KV cache holds {self.keys[slot].shape[2]} tokens; {end} requested")
        self.keys[slot][:, :, self.length : end] = k
        self.values[slot][:, :, self.length : end] = v
        return self.keys[slot][:, :, :end], self.values[slot][:, :, :end]

    def write(self, slot: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store one token's (B, n_kv, 1, hd) key/value of attention layer ``slot`` at ``position``; return the
        whole buffers (B, n_kv, max_len, hd): the shapes do not depend on the position."""
        self.keys[slot].index_copy_(2, self.position, k)
        self.values[slot].index_copy_(2, self.position, v)
        return self.keys[slot], self.values[slot]

    def visible(self) -> torch.Tensor:
        """(1, max_len) bool: the slots a static step's query sees (those up to ``position``)."""
        return (self.slots <= self.position)[None]


class Attention(nn.Module):
    """Causal grouped-query self-attention with RoPE through SDPA."""

    def __init__(self, spec: Architecture):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = spec.n_heads, spec.n_kv_heads, spec.d_model // spec.n_heads
        kv_dim = spec.n_kv_heads * self.head_dim
        self.qkv_proj = nn.Linear(spec.d_model, spec.d_model + 2 * kv_dim, bias=False)
        self.out_proj = nn.Linear(spec.d_model, spec.d_model, bias=False)
        self.cache_slot = 0
        """Index of this layer among the model's attention layers (its place in a KVCache)."""

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: KVCache | None = None) -> torch.Tensor:
        B, T, _ = x.shape
        past = cache.length if cache is not None else 0
        q_dim, kv_dim = self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        q, k, v = self.qkv_proj(x).split([q_dim, kv_dim, kv_dim], dim=-1)
        q = q.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, nh, T, hd)
        k = k.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, nkv, T, hd)
        v = v.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        static = cache is not None and cache.static_step  # one token at cache.position (a tensor)
        cos, sin = (cos[cache.position], sin[cache.position]) if static else (cos[past : past + T], sin[past : past + T])
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        mask = None
        if static:
            k, v = cache.write(self.cache_slot, k, v)  # (B, nkv, max_len, hd)
            mask = cache.visible()
        elif cache is not None:
            k, v = cache.append(self.cache_slot, k, v)  # (B, nkv, past + T, hd)
            if past and T > 1:  # new query i (absolute past + i) sees keys 0 .. past + i
                mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=mask is None and past == 0,
            enable_gqa=self.n_kv_heads != self.n_heads,
        )  # (B, nh, T, hd)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, q_dim))


class SwiGLU(nn.Module):
    """SwiGLU MLP: down(silu(gate(x)) * up(x)), gate and up fused in one matmul."""

    def __init__(self, spec: Architecture):
        super().__init__()
        self.gate_up_proj = nn.Linear(spec.d_model, 2 * spec.ffn_hidden, bias=False)
        self.down_proj = nn.Linear(spec.ffn_hidden, spec.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: KVCache | None = None) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)


MIXERS: dict[str, Callable[[Architecture], nn.Module]] = {"A": Attention, "M": SwiGLU}
"""Layer-kind symbol → module constructor (keys follow the primitive registry)."""

RESIDUAL_OUTPUTS = ("out_proj", "down_proj")
"""Linear layers that write into the residual stream (scaled init)."""


class ResidualLayer(nn.Module):
    """x + mixer(RMSNorm(x))."""

    def __init__(self, kind: str, spec: Architecture):
        super().__init__()
        self.kind = kind
        self.norm = nn.RMSNorm(spec.d_model, eps=spec.norm_eps)
        self.mixer = MIXERS[kind](spec)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                cache: KVCache | None = None) -> torch.Tensor:
        return x + self.mixer(self.norm(x), cos, sin, cache)


class HybridLM(nn.Module):
    """Embedding → residual layers per pattern entry → RMSNorm → LM head."""

    def __init__(self, spec: Architecture):
        super().__init__()
        missing = sorted(set(spec.pattern) - set(MIXERS))
        if missing:
            raise ValueError(f"no module registered for layer kind(s) {missing}; have {sorted(MIXERS)}")
        self.spec = spec
        self.embed = nn.Embedding(spec.vocab_size, spec.d_model)
        self.layers = nn.ModuleList(ResidualLayer(kind, spec) for kind in spec.pattern)
        attention = [layer.mixer for layer in self.layers if isinstance(layer.mixer, Attention)]
        for slot, mixer in enumerate(attention):
            mixer.cache_slot = slot
        self.final_norm = nn.RMSNorm(spec.d_model, eps=spec.norm_eps)
        self.lm_head = None if spec.tie_embeddings else nn.Linear(spec.d_model, spec.vocab_size, bias=False)
        self.reset_rope()
        self.reset_parameters()
        self._static_decoder: tuple[tuple, StaticDecoder] | None = None  # (key, decoder) of the last static decode

    def compile_layers(self, backend: str = "inductor") -> None:
        """``torch.compile`` each residual layer in place. Layers of one kind and width share one compiled graph, in
        this model and in every later model of the same width the process builds: a search worker compiles once,
        not once per trial (a whole-model compile would recompile for every pattern)."""
        for layer in self.layers:
            layer.compile(backend=backend)

    def reset_rope(self) -> None:
        """(Re)compute the RoPE tables: buffers outside the state dict, on the embedding's device."""
        cos, sin = rope_tables(self.spec.d_model // self.spec.n_heads, self.spec.max_seq_len, self.spec.rope_theta)
        self.register_buffer("rope_cos", cos.to(self.embed.weight.device), persistent=False)
        self.register_buffer("rope_sin", sin.to(self.embed.weight.device), persistent=False)

    def reset_parameters(self) -> None:
        """Apply the documented initialisation (see module docstring)."""
        residual_std = INIT_STD / math.sqrt(2 * len(self.layers))
        for name, module in self.named_modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                std = residual_std if name.endswith(RESIDUAL_OUTPUTS) else INIT_STD
                nn.init.normal_(module.weight, mean=0.0, std=std)
            elif isinstance(module, nn.RMSNorm):
                nn.init.ones_(module.weight)

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Token ids (B, T) → logits (B, T, vocab); with ``cache``, ``idx`` continues the cached tokens."""
        past = cache.length if cache is not None else 0
        T = idx.shape[1]
        if past + T > self.spec.max_seq_len:
            raise ValueError(f"sequence length {past + T} exceeds max_seq_len={self.spec.max_seq_len}")
        x = self.embed(idx)  # (B, T, d)
        for layer in self.layers:
            x = layer(x, self.rope_cos, self.rope_sin, cache)
        if cache is not None:
            cache.length += T
        return self._logits(x)  # (B, T, V)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.embed.weight if self.lm_head is None else self.lm_head.weight
        return F.linear(self.final_norm(x), weight)

    def decode_step(self, token: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Logits (B, V) of ``token`` (B, 1) at ``cache.position``, which then advances (in place). No shape and no
        Python value depends on the position, so a CUDA graph captured once replays every step."""
        cache.static_step = True
        try:
            x = self.embed(token)  # (B, 1, d)
            for layer in self.layers:
                x = layer(x, self.rope_cos, self.rope_sin, cache)
        finally:
            cache.static_step = False
        cache.position += 1
        return self._logits(x)[:, -1]

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, use_cache: bool = True,
                 generator: torch.Generator | None = None,
                 stop: Callable[[torch.Tensor], bool] | None = None, decode: str = "eager") -> torch.Tensor:
        """Continue ``prompt`` (B, T0) by ``max_new_tokens`` tokens → (B, T0 + max_new_tokens).

        ``temperature=0`` decodes greedily; otherwise it samples from the softmax of
        logits / temperature, restricted to the ``top_k`` most likely tokens when given.
        With ``use_cache`` the prompt is run once (prefill) and each new token reuses the
        keys/values of the attention layers; without, every step recomputes the whole
        sequence (the reference the cached path must equal). ``decode`` (one of
        :data:`DECODE_MODES`) picks how cached steps run: ``eager`` grows the cache's views
        token by token; the others are a :class:`StaticDecoder`'s (kept on the model for the next
        call of the same batch, length bucket and mode). ``stop(tokens)`` is asked after each new
        token (tokens so far, (B, T)); True ends generation early.
        """
        if max_new_tokens < 0 or temperature < 0 or (top_k is not None and top_k < 1):
            raise ValueError("generate needs max_new_tokens >= 0, temperature >= 0 and top_k >= 1")
        decoder = self.decoder(prompt.shape[0], prompt.shape[1] + max_new_tokens, decode) if use_cache else None
        tokens = prompt
        for i in range(max_new_tokens):
            if decoder is None:
                logits = self(tokens)[:, -1]
            else:
                logits = decoder.prefill(prompt) if i == 0 else decoder.step(tokens[:, -1:])  # (B, V)
            next_token = sample_next(logits.float(), temperature, top_k, generator)  # (B, 1)
            tokens = torch.cat([tokens, next_token], dim=1)
            if stop is not None and stop(tokens):
                break
        return tokens

    def decoder(self, batch: int, max_len: int, decode: str = "eager") -> EagerDecoder | StaticDecoder:
        """A KV-cached decoder of ``batch`` rows of up to ``max_len`` tokens that runs its steps as ``decode`` says
        (:data:`DECODE_MODES`): a new :class:`EagerDecoder`, or the model's :class:`StaticDecoder`."""
        if decode not in DECODE_MODES:
            raise ValueError(f"decode={decode!r}; choose one of {list(DECODE_MODES)}")
        if decode == "eager":
            return EagerDecoder(self, batch, max_len)
        return self.static_decoder(batch, max_len, decode)

    def static_decoder(self, batch: int, max_len: int, mode: str) -> StaticDecoder:
        """The model's :class:`StaticDecoder` for ``batch`` rows of up to ``max_len`` tokens (rounded up to a multiple
        of :data:`DECODE_BUCKET`): the one kept from the last call when it fits, else a new one."""
        max_len = min(-(-max_len // DECODE_BUCKET) * DECODE_BUCKET, self.spec.max_seq_len)
        param = self.embed.weight
        key = (batch, max_len, mode, param.device, param.dtype, torch.is_inference_mode_enabled())
        if self._static_decoder is None or self._static_decoder[0] != key:
            self._static_decoder = None  # free the old cache (and graph) before allocating the new one
            self._static_decoder = (key, StaticDecoder(self, batch, max_len, mode))
        return self._static_decoder[1]


DECODE_MODES = ("eager", "static", "cuda-graph", "compile")
"""How :meth:`HybridLM.generate` runs cached decode steps: ``eager`` (the cache's filled views, shapes growing by a
token a step), ``static`` (:class:`StaticDecoder`, kernels launched one by one), ``cuda-graph`` (a static step
captured once as a CUDA graph, then replayed: one launch per token; CUDA only), ``compile`` (a static step compiled
by Inductor into fused kernels, and on CUDA captured as a CUDA graph too; the first call compiles)."""

DECODE_BUCKET = 128
"""A static decoder's cache length is rounded up to a multiple of this, so nearby lengths reuse it (and its graph)."""


class EagerDecoder:
    """Cached decoding as it always was: a :class:`KVCache` whose filled views grow by a token a step."""

    def __init__(self, model: HybridLM, batch: int, max_len: int):
        param = model.embed.weight
        self.model, self.cache = model, KVCache(model.spec, batch, max_len, param.device, param.dtype)

    def prefill(self, prompt: torch.Tensor) -> torch.Tensor:
        """Logits (B, V) of the last token of ``prompt`` (B, T0), whose keys and values the cache then holds."""
        return self.model(prompt, self.cache)[:, -1]

    def step(self, token: torch.Tensor) -> torch.Tensor:
        """Logits (B, V) after the next token ``token`` (B, 1)."""
        return self.model(token, self.cache)[:, -1]


class StaticDecoder:
    """Decodes ``batch`` rows one token per step with shapes that never change, so that one CUDA graph can replay
    every step (``mode``: ``static``, ``cuda-graph`` or ``compile``, see :data:`DECODE_MODES`).

    It owns a :class:`KVCache` of ``max_len`` tokens. :meth:`prefill` runs the prompt through the ordinary forward
    (filling the cache's first slots); each :meth:`step` is :meth:`HybridLM.decode_step`: it writes the new
    token's keys and values at ``cache.position`` and attends over the whole cache under a mask of the slots
    up to it (masked slots weigh exactly zero, so greedy tokens are the eager path's). A graph is captured
    (and ``compile`` compiled) when the decoder is built, not while decoding.
    """

    def __init__(self, model: HybridLM, batch: int, max_len: int, mode: str):
        if mode not in DECODE_MODES[1:]:
            raise ValueError(f"static decoding mode {mode!r}; choose one of {list(DECODE_MODES[1:])}")
        param = model.embed.weight
        on_cuda = param.device.type == "cuda"
        if mode == "cuda-graph" and not on_cuda:
            raise ValueError("decode='cuda-graph' needs the model on a CUDA device; use 'static' or 'compile'")
        self.model, self.max_len = model, max_len
        self.cache = KVCache(model.spec, batch, max_len, param.device, param.dtype)
        self.token = torch.zeros(batch, 1, dtype=torch.long, device=param.device)
        self._step = torch.compile(model.decode_step, fullgraph=True, dynamic=False) if mode == "compile" \
            else model.decode_step
        self._graph: torch.cuda.CUDAGraph | None = None
        self._logits: torch.Tensor | None = None
        if mode == "compile" or on_cuda and mode == "cuda-graph":
            self._warm_up(capture=on_cuda)

    def _warm_up(self, capture: bool) -> None:
        """Run the step twice (kernels chosen, Inductor compiled), then capture it as a CUDA graph when ``capture``.
        The warm-up writes into slots that prefill and the real steps overwrite before any query sees them."""
        device = self.token.device
        stream = torch.cuda.Stream(device) if capture else None
        if capture:  # capture needs its warm-up on a side stream
            stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream) if capture else contextlib.nullcontext():
            for _ in range(2):
                self._step(self.token, self.cache)
        if capture:
            torch.cuda.current_stream(device).wait_stream(stream)
            self.cache.position.zero_()
            self._graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self._graph):
                self._logits = self._step(self.token, self.cache)
        self.cache.position.zero_()

    def prefill(self, prompt: torch.Tensor) -> torch.Tensor:
        """Logits (B, V) of the last token of ``prompt`` (B, T0); the cache then holds the prompt and nothing after."""
        if prompt.shape[1] >= self.max_len:
            raise ValueError(f"a prompt of {prompt.shape[1]} tokens leaves no slot in a {self.max_len}-token decoder")
        self.cache.length = 0
        logits = self.model(prompt, self.cache)[:, -1]
        self.cache.position.fill_(prompt.shape[1])
        return logits

    def step(self, token: torch.Tensor) -> torch.Tensor:
        """Logits (B, V) after the next token ``token`` (B, 1): the graph replayed, or the (compiled) step run."""
        if self.cache.length >= self.max_len:
            raise ValueError(f"the static decoder holds {self.max_len} tokens; no slot is left")
        self.token.copy_(token)
        self.cache.length += 1
        if self._graph is not None:
            self._graph.replay()
            return self._logits
        return self._step(self.token, self.cache)


def sample_next(logits: torch.Tensor, temperature: float, top_k: int | None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row of ``logits`` (B, V): greedy at temperature 0, else top-k sampling → (B, 1)."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)
