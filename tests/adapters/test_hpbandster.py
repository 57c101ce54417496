"""The hpbandster adapter: its ask/tell optimizers schedule exactly as hpbandster's own masters, and the
internals it relies on exist. Fails when hpbandster changes underneath."""

from __future__ import annotations

import ConfigSpace as CS
import numpy as np
import pytest
from hpbandster.core.dispatcher import Dispatcher, Job
from hpbandster.optimizers import BOHB, HyperBand, RandomSearch

from composer_automl.adapters.hpbandster import BOHB_DEFAULTS, SuccessiveHalving, bracket, planned_runs


def space(seed: int = 0) -> CS.ConfigurationSpace:
    cs = CS.ConfigurationSpace(seed=seed)
    cs.add([CS.CategoricalHyperparameter(f"layer_{i}", ["A", "M"]) for i in range(4)])
    return cs


@pytest.mark.parametrize("kind, master", [("bohb", BOHB), ("hyperband", HyperBand), ("random", RandomSearch)])
def test_brackets_are_the_masters_own(kind, master, monkeypatch):
    """Each bracket's (configurations per stage, budgets) equals what hpbandster's master builds."""
    monkeypatch.setattr(Dispatcher, "__init__", lambda self, *a, **k: None)  # no nameserver needed
    monkeypatch.setattr("threading.Thread.start", lambda self: None)
    budgets = [1.0, 3.0, 9.0]
    opt = master(configspace=space(), eta=3, min_budget=1, max_budget=9, run_id="x")
    for it in range(7):
        theirs = opt.get_next_iteration(it)
        ours = bracket(kind, it, budgets, 3)
        assert ours == (list(theirs.num_configs), [float(b) for b in theirs.budgets])


def test_ask_tell_runs_every_planned_run_and_bohb_fits_its_model():
    """Driving BOHB by ask/tell runs exactly the planned runs, promotes the best, and its model proposes once
    enough results exist at a budget."""
    picks = []

    def sampler(config_id, budget, draw):
        config, info = draw(budget)
        picks.append(bool(info.get("model_based_pick")))
        return dict(config), info

    np.random.seed(0)
    opt = SuccessiveHalving("bohb", space(), [1.0, 3.0, 9.0], 3, 8, sampler, {"min_points_in_model": 5})
    runs = 0
    while (run := opt.ask()) is not None:  # one worker: each run is told before the next is asked
        config_id, config, budget = run
        assert opt.running(config_id)
        opt.tell(config_id, config, budget, sum(v == "A" for v in config.values()) + 0.01 * budget)
        runs += 1
    assert opt.finished
    assert runs == planned_runs("bohb", [1.0, 3.0, 9.0], 3, 8)
    assert any(picks), "BOHB's density model never proposed"


def test_the_generator_knobs_reach_hpbandsters_bohb():
    """search.bohb.* knobs are the config generator's own attributes after construction."""
    opt = SuccessiveHalving("bohb", space(), [1.0, 3.0], 3, 1, lambda i, b, d: d(b),
                            {"min_points_in_model": 7, "top_n_percent": 30, "num_samples": 16,
                             "random_fraction": 0.1, "bandwidth_factor": 2.0, "min_bandwidth": 0.01})
    g = opt.generator
    assert (g.min_points_in_model, g.top_n_percent, g.num_samples, g.random_fraction, g.bw_factor,
            g.min_bandwidth) == (7, 30, 16, 0.1, 2.0, 0.01)
    assert set(BOHB_DEFAULTS) == {"min_points_in_model", "top_n_percent", "num_samples", "random_fraction",
                                  "bandwidth_factor", "min_bandwidth"}


def test_the_dispatcher_and_job_internals_the_adapter_reads_exist():
    """Dispatch reads these members of hpbandster's Dispatcher and Job (no public accessor exists)."""
    job = Job((0, 0, 0), config={}, budget=1.0)
    for name in ("id", "kwargs", "result", "exception", "worker_name", "timestamps", "time_it"):
        assert hasattr(job, name)
    for name in ("submit_job", "number_of_workers", "trigger_discover_worker", "shutdown", "run"):
        assert callable(getattr(Dispatcher, name))
    source = Dispatcher.__init__.__code__.co_names + Dispatcher.job_runner.__code__.co_names
    assert "running_jobs" in source and "runner_cond" in source
