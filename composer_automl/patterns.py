"""Layer patterns: immutable sequences of primitive layer kinds (``AMMAMM``).

A pattern is a string over a registry of primitives. ``A`` is causal grouped-query
self-attention with RoPE, ``M`` is a SwiGLU MLP; more kinds can be registered.
Two spellings are accepted everywhere: the compact ``AMMAMM`` and the run-length
``1A+2M+1A+2M`` used by the Composer paper.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterator


class PatternError(ValueError):
    """A pattern string or layer kind that cannot be understood."""


@dataclass(frozen=True)
class Primitive:
    """One kind of layer a pattern can contain."""

    symbol: str
    """Single upper-case letter used in pattern strings."""
    name: str
    """Human-readable name (``attention``, ``mlp``)."""
    description: str


PRIMITIVES: dict[str, Primitive] = {}


def register_primitive(symbol: str, name: str, description: str) -> Primitive:
    """Add a layer kind to the registry; symbols are single upper-case letters."""
    if not re.fullmatch(r"[A-Z]", symbol):
        raise PatternError(f"primitive symbol must be one upper-case letter, got {symbol!r}")
    if symbol in PRIMITIVES:
        raise PatternError(f"primitive {symbol!r} is already registered")
    PRIMITIVES[symbol] = Primitive(symbol, name, description)
    return PRIMITIVES[symbol]


def primitive_symbols() -> tuple[str, ...]:
    """All registered layer kinds, in registration order."""
    return tuple(PRIMITIVES)


ATTENTION = register_primitive("A", "attention", "causal grouped-query self-attention with RoPE")
MLP = register_primitive("M", "mlp", "SwiGLU feed-forward network")

_RUN = re.compile(r"(\d+)([A-Za-z])")


@dataclass(frozen=True)
class Pattern:
    """An immutable sequence of layer kinds, one entry per residual layer."""

    layers: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.layers:
            raise PatternError("a pattern needs at least one layer")
        unknown = sorted({k for k in self.layers if k not in PRIMITIVES})
        if unknown:
            raise PatternError(
                f"unknown layer kind(s) {unknown} in pattern; allowed: {list(PRIMITIVES)}"
            )

    @classmethod
    def parse(cls, text: "str | Pattern") -> "Pattern":
        """Parse ``AMMAMM`` or run-length ``1A+2M+1A+2M`` (case-insensitive)."""
        if isinstance(text, Pattern):
            return text
        if not isinstance(text, str):
            raise PatternError(f"a pattern must be a string, got {type(text).__name__}")
        compact = text.strip().replace(" ", "")
        if not compact:
            raise PatternError("empty pattern; write e.g. 'AMMAMM' or '1A+2M+1A+2M'")
        if any(ch.isdigit() for ch in compact) or "+" in compact:
            return cls(_parse_run_length(compact))
        return cls(tuple(compact.upper()))

    def __str__(self) -> str:
        return "".join(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[str]:
        return iter(self.layers)

    def __getitem__(self, index: int | slice) -> "str | Pattern":
        if isinstance(index, slice):
            return Pattern(self.layers[index])
        return self.layers[index]

    def __add__(self, other: "Pattern") -> "Pattern":
        return Pattern(self.layers + Pattern.parse(other).layers)

    def __mul__(self, times: int) -> "Pattern":
        return Pattern(self.layers * times)

    def runs(self) -> list[tuple[str, int]]:
        """Maximal runs of one kind, e.g. ``AMMAMM`` → ``[(A,1),(M,2),(A,1),(M,2)]``."""
        out: list[tuple[str, int]] = []
        for kind in self.layers:
            if out and out[-1][0] == kind:
                out[-1] = (kind, out[-1][1] + 1)
            else:
                out.append((kind, 1))
        return out

    def run_length(self) -> str:
        """Run-length spelling, e.g. ``1A+2M+1A+2M``."""
        return "+".join(f"{n}{kind}" for kind, n in self.runs())

    def counts(self) -> dict[str, int]:
        """Number of layers of each registered kind (zeros included)."""
        c = Counter(self.layers)
        return {kind: c.get(kind, 0) for kind in PRIMITIVES}

    def count(self, kind: str) -> int:
        return self.layers.count(kind)

    @property
    def attention_fraction(self) -> float:
        """Fraction of layers that are attention."""
        return self.count(ATTENTION.symbol) / len(self)


def _parse_run_length(text: str) -> tuple[str, ...]:
    layers: list[str] = []
    for part in text.split("+"):
        match = _RUN.fullmatch(part)
        if match is None:
            raise PatternError(
                f"malformed run-length pattern {text!r} at {part!r}; "
                "expected runs like '2A+4M' (count then kind, joined by '+')"
            )
        count = int(match.group(1))
        if count < 1:
            raise PatternError(f"run {part!r} in {text!r} must repeat at least once")
        layers.extend(match.group(2).upper() * count)
    return tuple(layers)


def parse_pattern(text: str, key: str) -> Pattern:
    """A pattern the user typed under ``key``; empty or not understood is one ConfigError naming ``key``."""
    from composer_automl.config import ConfigError

    if not text:
        raise ConfigError(f"is required, e.g. {key}=2A+4M or {key}=AAMMMM", key=key)
    try:
        return Pattern.parse(text)
    except PatternError as err:
        raise ConfigError(f"={text!r}: {err}", key=key) from None
