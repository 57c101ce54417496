"""``composer-automl generate``: continue a prompt with a trained model, KV-cached.

The model is an exported folder (``composer-automl export`` → ``model.safetensors`` +
``model.yaml``) or, for a smoke test, a spec (preset name or spec YAML) with freshly
initialised weights. Text goes through the tokenizer the export records (byte for a spec), or the one
named (``byte``, or a local Hugging Face ``tokenizer.json``); the device comes from ``accelerator`` (cpu | gpu; bf16 on GPU).
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
from composer_automl.data.tokenizers import ByteTokenizer, Tokenizer, build_tokenizer, check_tokenizer
from composer_automl.export.files import load_hybrid, open_export
from composer_automl.model import DECODE_MODES, HybridLM
from composer_automl.presets import load_spec

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
    tokenizer: Optional[str] = None
    """``byte`` or ``hf`` (with ``tokenizer_path``); null: the one the export records, else ``byte``."""
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
        else:
            load_spec(self.spec, "spec")
        if self.tokenizer is not None:
            check_tokenizer(self.tokenizer, self.tokenizer_path)
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
    spec = load_spec(config.spec, "spec")
    torch.manual_seed(config.seed)
    return HybridLM(spec).to(device=device, dtype=dtype).eval()


def load_tokenizer(config: GenerateConfig) -> Tokenizer:
    """The tokenizer named by ``config``, else the one the export records, else ``byte``."""
    if config.tokenizer is not None:
        return build_tokenizer(config.tokenizer, config.tokenizer_path)
    if config.model is not None and open_export(config.model).tokenizer_info is not None:
        return open_export(config.model).tokenizer()
    return ByteTokenizer()


def generate(config: GenerateConfig) -> str:
    """The prompt's continuation (decoded text of the new tokens only). New ids the tokenizer has no text for
    (beyond its vocabulary: random weights, or a model trained with another tokenizer) are said on stderr."""
    tokenizer = load_tokenizer(config)
    model = load_model(config)
    ids = tokenizer.encode_batch([config.prompt.encode()])[0]
    if int(ids.max()) >= model.spec.vocab_size:
        raise ConfigError(f"the {tokenizer.name} tokenizer produced id {int(ids.max())}, beyond the model's "
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
    new = out[0, len(ids):].cpu().numpy()
    unshown = int((new >= tokenizer.vocab_size).sum())
    if unshown:
        print(f"note: {unshown} of the {len(new)} generated ids lie beyond the {tokenizer.name} tokenizer's "
              f"{tokenizer.vocab_size} ids (the model's vocab_size is {model.spec.vocab_size}) and have no text: "
              "random weights, or a model trained with another tokenizer", file=sys.stderr)
    return tokenizer.decode(new)


def task(cfg: DictConfig) -> None:
    config = to_dataclass(GenerateConfig, cfg)
    text = generate(config)
    sys.stdout.write(config.prompt + text + "\n")


def main(argv: list[str]) -> None:
    from composer_automl.cli import run_hydra_app

    run_hydra_app("generate", task, argv)
