"""ModelSpec: the architecture of a hybrid LM, with exact size and cost accounting.

All functions here are pure Python (no torch): the search, the aggregator and the
extrapolator use them to reason about models without building them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from composer_automl.config import ConfigError, load_yaml
from composer_automl.patterns import ATTENTION, MLP, Pattern

DTYPE_BYTES = {"float32": 4, "fp32": 4, "bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2, "fp8": 1}


class SpecError(ValueError):
    """An invalid model specification."""


@dataclass
class SearchWidth:
    """Model width used while searching (the pattern sets the depth)."""

    d_model: int = 128
    """Residual width (MAD's reference models use 128)."""
    n_heads: int = 4
    n_kv_heads: int = 2
    ffn_hidden: int = 256
    """SwiGLU hidden size."""

    def __post_init__(self) -> None:
        for name in ("d_model", "n_heads", "n_kv_heads", "ffn_hidden"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be a positive integer, got {getattr(self, name)}", key=name)
        if self.d_model % self.n_heads:
            raise ConfigError(f"={self.n_heads} must divide d_model={self.d_model}", key="n_heads")
        if self.n_heads % self.n_kv_heads:
            raise ConfigError(f"={self.n_kv_heads} must divide n_heads={self.n_heads}", key="n_kv_heads")

    def narrowed(self, d_model: int | None, ffn_hidden: int | None) -> "SearchWidth":
        """This width with a rung's ``d_model`` / ``ffn_hidden`` overrides (None keeps the search's)."""
        return SearchWidth(d_model=d_model or self.d_model, n_heads=self.n_heads, n_kv_heads=self.n_kv_heads,
                           ffn_hidden=ffn_hidden or self.ffn_hidden)


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of a hybrid LM: a pattern of layers at one width."""

    pattern: Pattern
    """Layer kinds, one per residual layer (``A`` attention, ``M`` SwiGLU MLP)."""
    d_model: int
    """Residual stream width."""
    n_heads: int
    """Query heads per attention layer; head_dim = d_model / n_heads."""
    n_kv_heads: int
    """Key/value heads (grouped-query attention); must divide n_heads."""
    ffn_hidden: int
    """SwiGLU hidden size (gate and up projections each map d_model → ffn_hidden)."""
    vocab_size: int
    """Number of token ids."""
    max_seq_len: int
    """Longest sequence RoPE tables are built for."""
    tie_embeddings: bool = True
    """Share the input embedding with the LM head."""
    rope_theta: float = 500_000.0
    """RoPE base frequency (Llama 3: 500000)."""
    norm_eps: float = 1e-5
    """RMSNorm epsilon."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", _as_pattern(self.pattern))
        for name in ("d_model", "n_heads", "n_kv_heads", "ffn_hidden", "vocab_size", "max_seq_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(f"ModelSpec.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads:
            raise SpecError(
                f"ModelSpec.d_model={self.d_model} must be divisible by n_heads={self.n_heads}"
            )
        if self.n_heads % self.n_kv_heads:
            raise SpecError(
                f"ModelSpec.n_kv_heads={self.n_kv_heads} must divide n_heads={self.n_heads}"
            )
        if self.head_dim % 2:
            raise SpecError(f"ModelSpec head_dim={self.head_dim} must be even for RoPE")
        for name in ("rope_theta", "norm_eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise SpecError(f"ModelSpec.{name} must be a number > 0, got {value!r}")
        if not isinstance(self.tie_embeddings, bool):
            raise SpecError(f"ModelSpec.tie_embeddings must be true or false, got {self.tie_embeddings!r}")

    # -- derived -----------------------------------------------------------------
    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def n_layers(self) -> int:
        return len(self.pattern)

    @property
    def n_attention_layers(self) -> int:
        return self.pattern.count(ATTENTION.symbol)

    @property
    def n_mlp_layers(self) -> int:
        return self.pattern.count(MLP.symbol)

    def replace(self, **changes: Any) -> "ModelSpec":
        """A copy with some fields changed (re-validated)."""
        return dataclasses.replace(self, **changes)

    # -- size and cost -----------------------------------------------------------
    def attention_params(self) -> int:
        """Weights of one attention layer: Q, K, V, O projections (no biases)."""
        kv_dim = self.n_kv_heads * self.head_dim
        return self.d_model * (self.d_model + 2 * kv_dim) + self.d_model * self.d_model

    def mlp_params(self) -> int:
        """Weights of one SwiGLU layer: gate, up and down projections (no biases)."""
        return 3 * self.d_model * self.ffn_hidden

    def num_params(self) -> int:
        """Exact trainable parameter count of the built model.

        embedding V·d + per layer (RMSNorm d + mixer) + final RMSNorm d
        + LM head V·d when embeddings are not tied.
        """
        layers = self.n_attention_layers * self.attention_params() + self.n_mlp_layers * self.mlp_params()
        norms = (self.n_layers + 1) * self.d_model
        embed = self.vocab_size * self.d_model
        head = 0 if self.tie_embeddings else self.vocab_size * self.d_model
        return embed + layers + norms + head

    def flops_per_token(self, seq_len: int | None = None) -> float:
        """Training FLOPs per token (forward + backward), PaLM-style accounting.

        ``6·N_matmul + 12·n_attn·n_heads·head_dim·seq_len``: N_matmul counts every
        weight used in a matrix multiply (all projections and the LM head, tied or
        not; not the embedding lookup or norms); the second term is QKᵀ and
        attention·V over the full context (no causal discount, as in PaLM and
        Megatron MFU figures).
        """
        seq_len = self.max_seq_len if seq_len is None else seq_len
        matmul = (
            self.n_attention_layers * self.attention_params()
            + self.n_mlp_layers * self.mlp_params()
            + self.vocab_size * self.d_model
        )
        attention = 12 * self.n_attention_layers * self.n_heads * self.head_dim * seq_len
        return float(6 * matmul + attention)

    def kv_cache_bytes(self, seq_len: int, batch: int = 1, dtype: str = "bfloat16") -> int:
        """Bytes of the K and V cache for ``batch`` sequences of ``seq_len`` tokens."""
        if dtype not in DTYPE_BYTES:
            raise SpecError(f"unknown dtype {dtype!r}; allowed: {sorted(DTYPE_BYTES)}")
        per_token = 2 * self.n_attention_layers * self.n_kv_heads * self.head_dim
        return per_token * seq_len * batch * DTYPE_BYTES[dtype]

    # -- serialisation -----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain dict with the pattern as its run-length string (YAML/JSON friendly)."""
        out = dataclasses.asdict(self)
        out["pattern"] = self.pattern.run_length()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSpec":
        """Build from a dict; unknown keys are an error naming the allowed ones."""
        allowed = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(data, dict):
            raise SpecError(f"a model spec is a mapping of {allowed}, got {type(data).__name__} {data!r}")
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise SpecError(f"unknown ModelSpec field(s) {unknown}; allowed: {allowed}")
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in data and f.default is dataclasses.MISSING]
        if missing:
            raise SpecError(f"ModelSpec is missing field(s) {missing}")
        return cls(**data)

    def save_yaml(self, path: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Write the spec as YAML (``extra`` goes under a separate ``info`` key)."""
        import yaml

        doc: dict[str, Any] = {"model": self.to_dict()}
        if extra:
            doc["info"] = extra
        Path(path).write_text(yaml.safe_dump(doc, sort_keys=False))

    @classmethod
    def load_yaml(cls, path: str | Path) -> "ModelSpec":
        """Read a spec written by :meth:`save_yaml` (or a bare mapping of fields); a missing or malformed file is
        a :class:`ConfigError` naming it, a bad spec a :class:`SpecError`."""
        path = Path(path)
        if not path.is_file():
            raise SpecError(f"model spec file {path} does not exist")
        doc = load_yaml(path, "a model spec mapping")
        return cls.from_dict(doc.get("model", doc))


def _as_pattern(value: Any) -> Pattern:
    try:
        return Pattern.parse(value)
    except ValueError as err:
        raise SpecError(f"ModelSpec.pattern: {err}") from None


