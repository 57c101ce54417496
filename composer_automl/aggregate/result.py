"""The result of aggregating a search: the shared type of ``aggregate/command.py`` (which makes it)
and ``aggregate/report.py`` (which draws it), so the dependency runs one way: command → report → result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from composer_automl.aggregate.select import Candidate
from composer_automl.aggregate.vote import Vote


@dataclass(frozen=True)
class AggregateResult:
    """What aggregation found (written to ``aggregate.json``)."""

    run_dir: str
    budget: float
    """Budget whose results were aggregated."""
    n_candidates: int
    """Distinct patterns at that budget."""
    selection: str
    method: str
    c: int
    members: tuple[Candidate, ...]
    """Top set, best first."""
    vote: Vote
    best: Candidate
    """The single best pattern at that budget, for comparison."""

    def to_dict(self) -> dict[str, Any]:
        def cand(m: Candidate) -> dict[str, Any]:
            return {"pattern": str(m.pattern), "run_length": m.pattern.run_length(), "loss": m.loss,
                    "trial_ids": list(m.trial_ids)}

        return {
            "run_dir": self.run_dir, "budget": self.budget, "n_candidates": self.n_candidates,
            "selection": self.selection, "method": self.method, "c": self.c if self.method == "nc" else 0,
            "consensus": str(self.vote.pattern), "consensus_run_length": self.vote.pattern.run_length(),
            "best": cand(self.best),
            "layers": [
                {"layer": i + 1, "chosen": k, "shares": s, "voters": n, "context": ctx}
                for i, (k, s, n, ctx) in enumerate(
                    zip(self.vote.pattern, self.vote.shares, self.vote.voters, self.vote.context)
                )
            ],
            "members": [cand(m) for m in self.members],
        }
