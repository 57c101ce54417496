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


def _gpu_ladder(**overrides):
    """The shipped GPU ladder with its ``overrides`` section replaced (as ``fidelity.overrides.*`` would)."""
    from composer_automl.config import load_yaml
    from composer_automl.paths import find_option

    return ladder_from_mapping("gpu", {**load_yaml(find_option("fidelity", "gpu")), "overrides": overrides})


def test_ladder_overrides_reach_every_rung_and_merge_into_its_data(tmp_path):
    """``overrides`` replace a field in every rung whose kind has it, a ``data`` mapping merges key by key into each
    rung's own, a step's own overrides win, and what workers receive (the resolved mapping) carries the result."""
    corpus = tmp_path / "docs.jsonl"
    ladder = _gpu_ladder(data={"source": str(corpus), "jsonl_field": "body"}, accelerator="cpu", lr=0.01)
    for rung in ladder.rungs:
        assert (rung.config.data.source, rung.config.data.jsonl_field) == (str(corpus), "body")
        assert rung.config.data.valid_fraction == 0.1 and not rung.config.data.progress  # the rung file's own keys
        assert (rung.config.accelerator, rung.config.lr) == ("cpu", 0.01)
    assert [r.config.d_model for r in ladder.rungs] == [64, None]
    again = ladder_from_mapping("gpu", ladder.mapping)
    assert [r.config for r in again.rungs] == [r.config for r in ladder.rungs] and "overrides" not in ladder.mapping
    mixed = ladder_from_mapping("mixed", {"kind": "ladder", "eta": 3, "overrides": {"lr": 0.02}, "rungs": [
        {"budget": 1, "rung": "simulated"}, {"budget": 3, "rung": "pretrain-tiny", "overrides": {"lr": 0.03}}]})
    assert mixed.rungs[1].config.lr == 0.03  # the step's own override wins; the simulated rung has no lr


@pytest.mark.parametrize("overrides, key", [
    ({"bogus": 1}, "fidelity.overrides: no rung of this ladder (kinds ['pretrain']) has the field(s) ['bogus']"),
    ({"data": {"tokenizer": "hf"}}, "fidelity.overrides.data.tokenizer_path is required with tokenizer=hf"),
    ({"precision": "fp8"}, "fidelity.overrides.precision='fp8' is not allowed"),
])
def test_bad_ladder_overrides_name_the_key_as_typed(overrides, key):
    with pytest.raises(ConfigError) as err:
        _gpu_ladder(**overrides)
    assert str(err.value).startswith(key), str(err.value)


def test_a_missing_corpus_and_an_absent_gpu_name_where_they_were_set(tmp_path, monkeypatch):
    """Errors found after validation (preparing the corpus, checking the device for local workers) name the key
    where the user set it: the ladder's overrides, or the rung file."""
    missing = _gpu_ladder(data={"source": str(tmp_path / "none.jsonl")})
    with pytest.raises(ConfigError, match=r"^fidelity\.overrides\.data\.source="):
        missing.prepare_inputs()
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"^fidelity rung gpu-narrow: accelerator=gpu but no CUDA device"):
        load_ladder("gpu").check_devices()
    with pytest.raises(ConfigError, match=r"^fidelity\.overrides\.accelerator=gpu but no CUDA device"):
        _gpu_ladder(accelerator="gpu").check_devices()
    _gpu_ladder(accelerator="cpu").check_devices()  # runs here
