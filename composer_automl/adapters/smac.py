"""SMAC3's multi-fidelity facade (random forest + Hyperband) as an ask/tell optimizer (pinned by
``tests/adapters/test_smac.py``; needs the ``smac`` extra).

SMAC chooses configurations and budgets itself; the search only runs what it asks. A proposal
whose pattern breaks the search space's constraints is told to SMAC as failed (never run) and
SMAC is asked again. A failed run is told as crashed at infinite cost; SMAC's model sees it at the
worst cost of the runs it is trained on (:func:`crash_as_worst_encoder`). SMAC keeps its own state in
``output_dir``; a resumed search rebuilds it by replaying the logged asks and results in their order (SMAC is
a function of its seed, also in another process: :func:`ordered_start_points`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from composer_automl.config import ConfigError

JobId = tuple[int, ...]

INITIAL_DESIGN = ("Initial Design", "Random Search", "Initial design")
"""Prefixes of SMAC's ``Configuration.origin`` for configurations not proposed by its model."""
MAX_REJECTED = 1000
"""Consecutive constraint-violating proposals tolerated before the search gives up."""


def require_smac() -> None:
    """One error line when the optional extra is missing."""
    try:
        import smac  # noqa: F401
    except ImportError:
        raise ConfigError("=smac needs SMAC3: pip install 'composer-automl[smac]'", key="search.optimizer") from None


class SmacMultiFidelity:
    """SMAC3's ``MultiFidelityFacade`` over ``budgets`` (``max·eta^-k``) for ``n_trials`` runs."""

    def __init__(self, configspace: Any, budgets: list[float], eta: float, n_trials: int, seed: int,
                 output_dir: Path, accepts: Callable[[dict[str, Any]], bool],
                 sampler: Callable[..., tuple[dict[str, Any], dict[str, Any]]]):
        from smac import MultiFidelityFacade, Scenario

        logging.getLogger("smac").setLevel(logging.WARNING)
        self.budgets, self.n_trials, self.accepts, self.sampler = [float(b) for b in budgets], n_trials, accepts, sampler
        scenario = Scenario(configspace, name="smac", output_directory=Path(output_dir), deterministic=True,
                            n_trials=n_trials, min_budget=self.budgets[0], max_budget=self.budgets[-1],
                            seed=seed)
        intensifier = MultiFidelityFacade.get_intensifier(scenario, eta=int(round(eta)))
        maximizer = ordered_start_points(MultiFidelityFacade.get_acquisition_maximizer(scenario))
        self.smac = MultiFidelityFacade(scenario, _never_called, intensifier=intensifier,
                                        acquisition_maximizer=maximizer,
                                        runhistory_encoder=crash_as_worst_encoder(scenario), overwrite=True,
                                        logging_level=logging.WARNING)
        self.asked: dict[tuple[JobId, float], Any] = {}
        """(config id, budget) → SMAC's TrialInfo of every run asked and not yet told."""
        self.n_asked = 0
        self.seen: set[int] = set()
        self.exhausted = False
        """SMAC found no configuration left to propose (a small space): the search ends early."""

    def _budget(self, budget: float) -> float:
        """SMAC's budget as the ladder's (its arithmetic may differ in the last bits)."""
        return min(self.budgets, key=lambda b: abs(b - float(budget)))

    def ask(self) -> tuple[JobId, dict[str, Any], float] | None:
        from smac.main.exceptions import ConfigurationSpaceExhaustedException

        if self.n_asked >= self.n_trials or self.exhausted:
            return None
        for _ in range(MAX_REJECTED):
            try:
                info = self.smac.ask()
            except ConfigurationSpaceExhaustedException:
                self.exhausted = True
                print(f"SMAC has no configuration left to propose; the search ends after {self.n_asked} of "
                      f"{self.n_trials} planned trials", flush=True)
                return None
            config = dict(info.config)
            if self.accepts(config):
                break
            self._fail(info, "breaks the search space's constraints; never run")
        else:
            raise RuntimeError(f"SMAC proposed {MAX_REJECTED} configurations in a row that break the constraints")
        cid = self.smac.runhistory.get_config_id(info.config)
        budget = self._budget(info.budget)
        if cid not in self.seen:  # a new configuration: the search's sampler hook sees it
            self.seen.add(cid)
            origin = getattr(info.config, "origin", "") or ""
            info_dict = {"model_based_pick": not origin.startswith(INITIAL_DESIGN)}
            config, _ = self.sampler((cid,), budget, lambda _budget: (config, info_dict))
        self.asked[((cid,), budget)] = info
        self.n_asked += 1
        return (cid,), config, budget

    def _fail(self, info: Any, why: str) -> None:
        from smac.runhistory.dataclasses import TrialValue
        from smac.runhistory.enumerations import StatusType

        self.smac.tell(info, TrialValue(cost=float("inf"), status=StatusType.CRASHED, additional_info={"why": why}))

    def tell(self, config_id: JobId, config: dict[str, Any], budget: float, loss: float | None,
             exception: str | None = None) -> None:
        from smac.runhistory.dataclasses import TrialValue

        info = self.asked.pop((tuple(config_id), float(budget)))
        if loss is None:
            self._fail(info, (exception or "failed").strip().splitlines()[-1][:200])
        else:
            self.smac.tell(info, TrialValue(cost=float(loss)))

    @property
    def finished(self) -> bool:
        return (self.n_asked >= self.n_trials or self.exhausted) and not self.asked


def crash_as_worst_encoder(scenario: Any) -> Any:
    """The multi-fidelity facade's log-scaled runhistory encoder, with each crashed run's infinite cost replaced
    by the worst finite cost among the runs it encodes (1 if none has one).

    SMAC 2.4 passes the infinite cost through its scaling as NaN and its random forest then refuses to train, so
    one failed trial at a budget ended the search (SMAC3 pull request 1312 imputes the same way upstream). This
    overrides the encoder's private ``_build_matrix``; ``tests/adapters/test_smac.py`` pins it.
    """
    import dataclasses
    import math

    from smac.runhistory.encoder import RunHistoryLogScaledEncoder

    class CrashAsWorstEncoder(RunHistoryLogScaledEncoder):
        def _build_matrix(self, trials, store_statistics=False):
            worst = max((v.cost for v in trials.values() if math.isfinite(v.cost)), default=1.0)
            trials = {k: v if math.isfinite(v.cost) else dataclasses.replace(v, cost=worst) for k, v in trials.items()}
            return super()._build_matrix(trials, store_statistics)

    return CrashAsWorstEncoder(scenario)


def ordered_start_points(maximizer: Any) -> Any:
    """The facade's acquisition maximizer with its local search's start points in a fixed order.

    SMAC 2.4's ``LocalSearch._get_initial_points`` returns ``list(set(configurations))``, whose order follows
    Python's per-process string hashing, so the same seed proposed other configurations in another process (and
    a resumed search could not replay its SMAC). Sorting them by their vector makes SMAC a function of its seed.
    Overrides the private method on this instance; ``tests/adapters/test_smac.py`` pins it.
    """
    import numpy as np

    local = maximizer._local_search
    unordered = local._get_initial_points
    local._get_initial_points = lambda *args, **kwargs: sorted(
        unordered(*args, **kwargs), key=lambda config: tuple(np.nan_to_num(config.get_array(), nan=-1.0)))
    return maximizer


def _never_called(config: Any, seed: int = 0, budget: float = 0.0) -> float:
    """SMAC's facade wants a target function; the search runs trials itself (ask/tell)."""
    raise RuntimeError("SMAC's target function is not used: trials run on the search's workers")
