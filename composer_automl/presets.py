"""Registry of named model specs.

``tiny`` is for tests. ``llama3.2-1B`` / ``llama3.2-3B`` are the published Llama 3.2
models in pattern form (a Llama block is ``AM``). ``350M`` / ``1B`` / ``3B`` are the
target widths that searched patterns are extrapolated into; each carries the
Llama-style baseline pattern of that size, whose parameter count is the target.
"""

from __future__ import annotations

from composer_automl.config import ConfigError
from composer_automl.patterns import Pattern
from composer_automl.spec import ModelSpec, SpecError

_LLAMA3 = dict(vocab_size=128_256, tie_embeddings=True, rope_theta=500_000.0, norm_eps=1e-5)

PRESETS: dict[str, ModelSpec] = {
    "tiny": ModelSpec(
        pattern=Pattern.parse("AMMAMM"), d_model=64, n_heads=4, n_kv_heads=2, ffn_hidden=128,
        vocab_size=264, max_seq_len=256, rope_theta=10_000.0,
    ),  # vocab: the default byte tokenizer's 257 ids, padded to a multiple of 8 (as megatron pads; TP-divisible)
    "llama3.2-1B": ModelSpec(
        pattern=Pattern.parse("AM") * 16, d_model=2048, n_heads=32, n_kv_heads=8,
        ffn_hidden=8192, max_seq_len=131_072, **_LLAMA3,
    ),
    "llama3.2-3B": ModelSpec(
        pattern=Pattern.parse("AM") * 28, d_model=3072, n_heads=24, n_kv_heads=8,
        ffn_hidden=8192, max_seq_len=131_072, **_LLAMA3,
    ),
    # Llama-style 350M (14 AM blocks at d=1024): there is no Llama 3.2 model this small.
    "350M": ModelSpec(
        pattern=Pattern.parse("AM") * 14, d_model=1024, n_heads=16, n_kv_heads=8,
        ffn_hidden=4096, max_seq_len=8192, **_LLAMA3,
    ),
}
PRESETS["1B"] = PRESETS["llama3.2-1B"].replace(max_seq_len=8192)
PRESETS["3B"] = PRESETS["llama3.2-3B"].replace(max_seq_len=8192)

TARGET_SIZES = ("350M", "1B", "3B")
"""Width presets that searched patterns are extrapolated into."""

PUBLISHED_PARAMS = {"llama3.2-1B": 1_235_814_400, "llama3.2-3B": 3_212_749_824}
"""Parameter counts of the released Llama 3.2 checkpoints (tied embeddings)."""


def load_spec(value: str, key: str = "model") -> ModelSpec:
    """A preset name or a ModelSpec YAML path, as the user gave it under ``key``: anything else (an unknown name, a
    missing, malformed or invalid file) is one ConfigError naming ``key``."""
    if value in PRESETS:
        return PRESETS[value]
    if not value.endswith((".yaml", ".yml")):
        raise ConfigError(f"={value!r} is neither a preset {sorted(PRESETS)} nor a .yaml spec file", key=key)
    try:
        return ModelSpec.load_yaml(value)
    except (SpecError, ConfigError) as err:
        raise ConfigError(f"={value!r}: {err}", key=key) from None


def get_preset(name: str) -> ModelSpec:
    """Look up a preset by name; an unknown name lists the allowed ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise SpecError(f"unknown model preset {name!r}; allowed: {sorted(PRESETS)}") from None
