"""Fidelity ladders and the shipped YAML: validation, budgets, one clear error."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from composer_automl.conf import register_schemas
from composer_automl.config import ConfigError, to_dataclass
from composer_automl.engine.ladder import hpbandster_budgets, ladder_from_mapping, load_ladder
from composer_automl.paths import CONFIG_DIR, group_options
from composer_automl.search.command import main as search_main
from composer_automl.search.run import SearchSettings
from composer_automl.spaces import load_space, space_from_mapping


def test_simulated_ladder_budgets_and_rungs():
    """The test ladder maps budgets 1, 3, 9 onto increasing fidelities; float budgets resolve."""
    ladder = load_ladder("simulated-ladder")
    assert ladder.budgets == (1.0, 3.0, 9.0) and ladder.eta == 3.0
    assert [r.config.fidelity for r in ladder.rungs] == [0.1, 0.4, 1.0]
    assert ladder.rung_for(9 * 3.0**-2).config.fidelity == 0.1
    assert ladder.metric(3.0) == "simulated_loss"
    with pytest.raises(KeyError):
        ladder.index(2.0)


def test_resolved_mapping_round_trips():
    """What workers receive (the resolved mapping) rebuilds the same ladder."""
    ladder = load_ladder("simulated-ladder")
    again = ladder_from_mapping(ladder.name, ladder.mapping)
    assert again.budgets == ladder.budgets
    assert [r.config for r in again.rungs] == [r.config for r in ladder.rungs]


def test_single_rung_is_a_one_budget_ladder():
    """A plain rung file works as a single-fidelity ladder."""
    ladder = load_ladder("simulated")
    assert ladder.budgets == (1.0,) and ladder.rungs[0].kind == "simulated"


def test_budgets_follow_hpbandster_geometry():
    """Budgets are max_budget * eta^-k, as BOHB derives them from (min, max, eta)."""
    assert hpbandster_budgets(1, 9, 3) == [1.0, 3.0, 9.0]
    assert hpbandster_budgets(1, 9, 2) == [1.125, 2.25, 4.5, 9.0]
    assert hpbandster_budgets(1, 27, 3) == [1.0, 3.0, 9.0, 27.0]


def _ladder(rungs, eta=3):
    return {"kind": "ladder", "eta": eta, "rungs": rungs}


@pytest.mark.parametrize(
    "mapping, message",
    [
        (_ladder([{"budget": 3, "rung": "simulated"}, {"budget": 1, "rung": "simulated"}]),
         r"^fidelity.rungs: budgets must be strictly increasing, got \[3.0, 1.0\]$"),
        (_ladder([{"budget": 1, "rung": "simulated"}, {"budget": 2, "rung": "simulated"}]), "^fidelity.rungs: budgets .* not consistent with eta"),
        (_ladder([{"budget": 1, "rung": "simulated"}, {"budget": 9, "rung": "simulated"}]), "^fidelity.rungs: budgets .* not consistent with eta"),
        (_ladder([{"budget": 1, "rung": "simulated"}], eta=1.5), "^fidelity.eta must be >= 2, got 1.5$"),
        (_ladder([]), "^fidelity.rungs must list at least one rung$"),
        (_ladder([{"budget": 1, "rung": "no-such-rung"}]), "^fidelity.rungs.0.rung: unknown rung 'no-such-rung'"),
        (_ladder([{"budget": 1, "rung": "simulated-ladder"}]), "^fidelity.rungs.0.rung: fidelity 'simulated-ladder' .* is not a rung file"),
        (_ladder([{"budget": 1, "rung": "simulated", "metric": "val_loss"}]),
         "^fidelity.rungs.0.metric='val_loss', but rung 'simulated' \\(kind simulated\\) returns 'simulated_loss'$"),
        (_ladder([{"budget": 1, "rung": "simulated", "overrides": {"fidelity": 2.0}}]),
         r"^fidelity.rungs.0.overrides.fidelity must be in \(0, 1\], got 2.0$"),
        (_ladder([{"budget": 1, "rung": "simulated", "overrides": {"colour": 1}}]),
         r"^fidelity.rungs.0.overrides.colour is an unknown key; allowed: \['error_scale', 'fail_when'"),
        (_ladder([{"budget": 0, "rung": "simulated"}]), "^fidelity.rungs.0.budget must be positive, got 0.0$"),
        (_ladder([{"budget": 1, "rung": "simulated", "extra": 1}]), r"^fidelity.rungs.0.extra is an unknown key; allowed: \['budget', 'metric', 'overrides', 'rung'\]$"),
        ({"kind": "lader"}, "^fidelity.kind='lader' is not allowed; choose one of"),
    ],
)
def test_bad_ladder_is_one_clear_error(mapping, message):
    """Invalid ladders raise one ConfigError naming the key as typed under ``fidelity``."""
    with pytest.raises(ConfigError, match=message):
        ladder_from_mapping("test", mapping)


@pytest.mark.parametrize("name", group_options("fidelity"))
def test_every_shipped_fidelity_validates(name):
    """Every fidelity/*.yaml — rung or ladder — loads and validates as a ladder."""
    ladder = load_ladder(name)
    assert ladder.budgets and all(b > 0 for b in ladder.budgets)


@pytest.mark.parametrize("space", group_options("search_space"))
def test_every_search_space_composes_with_search_yaml_as_its_file_says(space):
    """conf/search.yaml composes with every shipped search space into the space its file describes (schema
    defaults + the file), and the settings validate."""
    register_schemas("search")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("search", overrides=[f"search_space={space}", "fidelity=simulated-ladder"])
    to_dataclass(SearchSettings, cfg.search, "search")
    assert space_from_mapping(cfg.search_space).resolved_mapping() == load_space(space).resolved_mapping()
    ladder_from_mapping("simulated-ladder", cfg.fidelity)


@pytest.mark.parametrize(
    "override, message",
    [
        ("search.optimizer=tpe", "search.optimizer='tpe' is not allowed"),
        ("search.n_workers=-1", "n_workers"),
        ("search_space.strategy=random", "search_space.strategy"),
        ("fidelity.eta=2", "not consistent with eta"),
        ("search.host=0.0.0.0", "shared secret"),
        ("resume=/nonexistent/run", "not a search run directory"),
    ],
)
def test_cli_bad_values_exit_2_with_one_line(override, message, capsys, tmp_path, monkeypatch):
    """Bad values on the command line exit 2 with one `error:` line, before anything is written."""
    monkeypatch.delenv("COMPOSER_AUTOML_SECRET", raising=False)
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        search_main([override, f"search.run_dir={run_dir}", "fidelity=simulated-ladder"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]
    assert not run_dir.exists()


def _costed(costs, eta=3.0):
    base = {"kind": "simulated"}
    rungs = [{"budget": eta ** i, "rung": f"r{i}", "rung_config": {**base, **({"cost_s": c} if c else {})}}
             for i, c in enumerate(costs)]
    return ladder_from_mapping("costed", {"kind": "ladder", "eta": eta, "rungs": rungs})


def test_cost_warnings_flag_rungs_whose_stated_costs_are_not_eta_apart():
    """Adjacent stated costs within [eta/2, 2·eta] pass; 10× apart at eta 3 warns; a missing cost is named."""
    assert _costed([10, 30, 90]).cost_warnings() == []
    assert _costed([10, 18, 100]).cost_warnings() == []
    (warning,) = _costed([10, 100]).cost_warnings()
    assert "r0 (10 s) → r1 (100 s) cost 10× apart, not about eta=3×" in warning
    (warning,) = _costed([10, None]).cost_warnings()
    assert "['r1'] state no measured cost" in warning
    with pytest.raises(ConfigError, match="cost_s must be a positive number"):
        _costed([10, -1])
