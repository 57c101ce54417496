"""Size and inference cost of each model: exact counts from its spec, latency measured on the device.

``params``, ``flops_per_token`` (training FLOPs, :meth:`ModelSpec.flops_per_token`) and the KV cache
(:meth:`ModelSpec.kv_cache_bytes`, batch 1, in the activations' dtype) at ``efficiency.seq_len``;
prefill seconds of a ``prompt_tokens`` prompt and mean decode milliseconds per token over
``decode_tokens`` greedy tokens, through the model's KV-cached decoder (batch 1). Models
alternate repetitions, so drift on a shared machine hits each alike, and keep their fastest prefill
and their fastest decode (each on its own: a stall in one phase does not cost the other).
"""

from __future__ import annotations

import time

import torch

from composer_automl.evaluate.config import EfficiencyConfig
from composer_automl.evaluate.models import LoadedModel, Runtime
from composer_automl.model import HybridLM


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def time_generation(model: HybridLM, prompt: torch.Tensor, n_decode: int,
                    decode: str = "eager") -> tuple[float, float, int]:
    """(prefill seconds, mean decode seconds per token, allocated KV-cache bytes) of one greedy generation, its
    steps run as ``decode`` says (:data:`composer_automl.model.DECODE_MODES`; a static decoder is built — its CUDA
    graph captured, its step compiled — before the clock starts)."""
    device = model.embed.weight.device
    decoder = model.decoder(prompt.shape[0], prompt.shape[1] + n_decode, decode)
    _sync(device)
    start = time.perf_counter()
    token = decoder.prefill(prompt).argmax(-1, keepdim=True)  # (B, 1)
    _sync(device)
    prefill = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(n_decode):
        token = decoder.step(token).argmax(-1, keepdim=True)
    _sync(device)
    return prefill, (time.perf_counter() - start) / max(n_decode, 1), decoder.cache.nbytes


def static_costs(model: LoadedModel, config: EfficiencyConfig) -> dict[str, float]:
    """Parameters, FLOPs per token and KV-cache bytes at ``config.seq_len`` (exact, from the spec)."""
    spec = model.spec
    return {"params": spec.num_params(), "flops_per_token": spec.flops_per_token(config.seq_len),
            "kv_cache_bytes": spec.kv_cache_bytes(config.seq_len, 1, model.runtime.dtype_name),
            "attention_layers": spec.n_attention_layers, "layers": spec.n_layers}


def measure_latency(models: list[LoadedModel], config: EfficiencyConfig, seed: int) -> dict[str, dict[str, float]]:
    """``name → {prefill_s, decode_ms_per_token}``; the same random prompt for every model of a vocabulary."""
    def prompt_for(model: LoadedModel) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, model.spec.vocab_size, (1, config.prompt_tokens), generator=generator)
        return ids.to(model.runtime.device)

    prompts = {m.name: prompt_for(m) for m in models}
    for m in models:  # warm-up at the measured shapes: kernels chosen, memory allocated
        with m.runtime.context():
            time_generation(m.model, prompts[m.name], 1)
    times: dict[str, list[tuple[float, float]]] = {m.name: [] for m in models}
    for _ in range(config.reps):
        for m in models:
            with m.runtime.context():
                times[m.name].append(time_generation(m.model, prompts[m.name], config.decode_tokens)[:2])
    return {name: {"prefill_s": min(p for p, _ in runs), "decode_ms_per_token": min(d for _, d in runs) * 1e3}
            for name, runs in times.items()}


def describe_runtime(runtime: Runtime) -> str:
    """``cpu float32`` / ``cuda bfloat16 (autocast)``."""
    return f"{runtime.device.type} {runtime.dtype_name}" + (" (autocast)" if runtime.autocast else "")
