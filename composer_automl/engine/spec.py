"""The run spec: what a worker needs to evaluate jobs, published by the master in the nameserver."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class RunSpec:
    """Everything a worker needs besides the jobs themselves (plain data, sent as JSON)."""

    run_id: str
    fidelity_name: str
    ladder: dict[str, Any]
    """The resolved ladder (every rung inlined): ``Ladder.mapping``."""
    out_dir: str
    """Where evaluation logs go (``<out_dir>/tb/<pattern>_b<budget>_<job id>/``); a remote worker may override it."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "RunSpec":
        return cls(**json.loads(text))
