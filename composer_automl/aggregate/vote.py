"""Merging a ranked top set into one pattern, layer by layer (N_0 and N_c).

*N_0*: at every layer, the most common kind among all members.
*N_c*: at layer i, only members whose layers i−c … i−1 equal the consensus chosen
so far vote (fewer at the first c layers). Some member always matches: the
previous layer's winner was held by a voter that matched the context before it.

Ties (equal counts) go to the kind held by the best-ranked voter among the tied
kinds, so the single best pattern wins every undecided layer.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

from composer_automl.patterns import Pattern


@dataclass(frozen=True)
class Vote:
    """The consensus pattern and how each layer was decided."""

    pattern: Pattern
    """Consensus: one kind per layer."""
    shares: tuple[dict[str, float], ...]
    """Per layer: kind → fraction of that layer's voters choosing it."""
    voters: tuple[int, ...]
    """Per layer: how many members voted."""
    context: tuple[int, ...]
    """Per layer: how many previous layers voters had to match (min(c, layer); 0 for N_0)."""


def _majority(voters: Sequence[Pattern], layer: int) -> tuple[str, dict[str, float]]:
    """Winning kind at ``layer`` among ``voters`` (ranked best first) and each kind's share."""
    counts = Counter(p[layer] for p in voters)
    most = max(counts.values())
    winner = next(p[layer] for p in voters if counts[p[layer]] == most)  # best-ranked among tied kinds
    return winner, {kind: counts[kind] / len(voters) for kind in sorted(counts)}


def vote_n0(ranked: Sequence[Pattern], c: int = 0) -> Vote:
    """Independent majority vote per layer over all members (``c`` is ignored)."""
    return vote_nc(ranked, 0)


def vote_nc(ranked: Sequence[Pattern], c: int) -> Vote:
    """Majority vote per layer among members whose previous ``c`` layers match the consensus so far."""
    if not ranked:
        raise ValueError("cannot vote over an empty top set")
    if len({len(p) for p in ranked}) != 1:
        raise ValueError("all members must have the same number of layers")
    chosen: list[str] = []
    shares, voters, context = [], [], []
    for layer in range(len(ranked[0])):
        width = min(c, layer)
        prefix = tuple(chosen[layer - width:layer])
        matching = [p for p in ranked if p.layers[layer - width:layer] == prefix]
        kind, share = _majority(matching, layer)
        chosen.append(kind)
        shares.append(share)
        voters.append(len(matching))
        context.append(width)
    return Vote(Pattern(tuple(chosen)), tuple(shares), tuple(voters), tuple(context))


VOTERS: dict[str, Callable[[Sequence[Pattern], int], Vote]] = {"n0": vote_n0, "nc": vote_nc}
"""Merge method name → function (members ranked best first, c) → Vote."""
