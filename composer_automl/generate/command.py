"""``composer-automl generate``: continue a prompt with a trained model, KV-cached.

The model is an exported folder (``composer-automl export`` → ``model.safetensors`` +
``model.yaml``) or, for a smoke test, a spec (preset name or spec YAML) with freshly
initialised weights. Text goes through the byte tokenizer (default) or a local
Hugging Face ``tokenizer.json``; the device comes from ``accelerator`` (cpu | gpu; bf16 on GPU).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from omegaconf import DictConfig

from composer_automl import devices
from composer_automl.config import ConfigError, choice, to_dataclass
from composer_automl.data.tokenizers import TOKENIZERS, build_tokenizer
from composer_automl.export.files import load_hybrid, open_export
from composer_automl.model import DECODE_MODES, HybridLM
from composer_automl.presets import get_preset
from composer_automl.spec import ModelSpec, SpecError

ACCELERATORS = {"cpu": ("cpu", torch.float32), "gpu": ("cuda", torch.bfloat16)}
"""``accelerator`` → (torch device, dtype the model runs in)."""


@dataclass
class GenerateConfig:
    """``conf/generate.yaml``."""

    model: Optional[str] = None
    """An exported model folder (``composer-automl export``, native or hf)."""
    spec: Optional[str] = None
    """Or a preset name / spec YAML: random weights, for a smoke test of the decoding path."""
    prompt: str = ""
    max_new_tokens: int = 64
    temperature: float = 0.0
    """0: greedy; otherwise sample from softmax(logits / temperature)."""
    top_k: Optional[int] = None
    seed: int = 0
    tokenizer: str = "byte"
    tokenizer_path: Optional[str] = None
    accelerator: str = "cpu"
    decode: str = "auto"
    """How decode steps run (``HybridLM.generate``): ``eager``, ``static``, ``cuda-graph`` (one CUDA-graph replay per
    token, GPU), ``compile`` (Inductor + CUDA graph; compiles first); ``auto`` = cuda-graph on GPU, eager on CPU."""

    def __post_init__(self) -> None:
        if (self.model is None) == (self.spec is None):
            raise ConfigError("give model=EXPORTED_FOLDER or spec=PRESET|SPEC.yaml (exactly one)")
        if self.model is not None:
            open_export(self.model, "model")  # native or hf; ConfigError naming model= otherwise
        choice(self.tokenizer, TOKENIZERS, "tokenizer")
        choice(self.accelerator, ACCELERATORS, "accelerator")
        choice(self.decode, ("auto", *DECODE_MODES), "decode")
        if self.decode == "cuda-graph" and self.accelerator != "gpu":
            raise ConfigError("=cuda-graph needs accelerator=gpu (CUDA graphs); on CPU use eager, static or compile",
                              key="decode")
        if self.max_new_tokens < 0 or self.temperature < 0 or (self.top_k is not None and self.top_k < 1):
            raise ConfigError("need max_new_tokens >= 0, temperature >= 0 and top_k >= 1 (or null)")
        if not self.prompt:
            raise ConfigError("prompt is empty; give prompt='some text'")


def load_model(config: GenerateConfig) -> HybridLM:
    """The exported model, or a freshly initialised one of the given spec (seeded)."""
    device, dtype = ACCELERATORS[config.accelerator]
    # the shared device check (CUDA visible, bf16 supported) before any weight is read
    devices.resolve(config.accelerator, "bf16-true" if dtype == torch.bfloat16 else "32-true")
    if config.model is not None:
        return load_hybrid(config.model, device).to(dtype)
    try:
        spec = ModelSpec.load_yaml(config.spec) if config.spec.endswith((".yaml", ".yml")) else get_preset(config.spec)
    except (SpecError, FileNotFoundError) as err:
        raise ConfigError(f"spec={config.spec!r}: {err}") from None
    torch.manual_seed(config.seed)
    return HybridLM(spec).to(device=device, dtype=dtype).eval()


def generate(config: GenerateConfig) -> str:
    """The prompt's continuation (decoded text of the new tokens only)."""
    model = load_model(config)
    tokenizer = build_tokenizer(config.tokenizer, config.tokenizer_path)
    ids = tokenizer.encode_batch([config.prompt.encode()])[0]
    if int(ids.max()) >= model.spec.vocab_size:
        raise ConfigError(f"the {config.tokenizer} tokenizer produced id {int(ids.max())}, beyond the model's "
                          f"vocab_size={model.spec.vocab_size}; use the tokenizer the model was trained with")
    need = len(ids) + config.max_new_tokens
    if need > model.spec.max_seq_len:
        raise ConfigError(f"prompt ({len(ids)} tokens) + max_new_tokens={config.max_new_tokens} exceeds the "
                          f"model's max_seq_len={model.spec.max_seq_len}")
    device = model.embed.weight.device
    prompt = torch.as_tensor(ids.astype(np.int64), device=device)[None]
    generator = torch.Generator(device=device).manual_seed(config.seed)
    with torch.inference_mode():
        decode = config.decode if config.decode != "auto" else "cuda-graph" if config.accelerator == "gpu" else "eager"
        out = model.generate(prompt, config.max_new_tokens, config.temperature, config.top_k, generator=generator,
                             decode=decode)
    return tokenizer.decode(out[0, len(ids):].cpu().numpy())


def task(cfg: DictConfig) -> None:
    config = to_dataclass(GenerateConfig, cfg)
    text = generate(config)
    sys.stdout.write(config.prompt + text + "\n")


def main(argv: list[str]) -> None:
    from composer_automl.cli import run_hydra_app

    run_hydra_app("generate", task, argv)
