"""The Hydra adapter: the three internals the CLI needs before a run exist and behave as the run will."""

from __future__ import annotations

from composer_automl.adapters.hydra import composing, override_key, parse_args, sweep_jobs, typed_keys
from composer_automl.paths import CONFIG_DIR


def test_hydras_own_parser_sees_config_dir_and_multirun():
    args = parse_args(["--config-dir", "conf", "-m", "a=1,2"])
    assert args.config_dir == "conf" and args.multirun and args.overrides == ["a=1,2"]


def test_sweeps_expand_like_the_basic_sweeper():
    assert sweep_jobs(["a=1,2", "b=x,y", "c=3"]) == [
        ["a=1", "b=x", "c=3"], ["a=1", "b=y", "c=3"], ["a=2", "b=x", "c=3"], ["a=2", "b=y", "c=3"]]


def test_typed_keys_by_hydras_parser():
    assert typed_keys(["calibrate.seeds=3", "fidelity=x", "+a.b=1", "~c", "'d.e=[1,2]'".strip("'")]) == {
        "calibrate.seeds", "fidelity", "a.b", "c", "d.e"}
    assert override_key("++x.y=2") == "x.y"


def test_composing_on_the_runs_search_path(tmp_path):
    from hydra import compose

    from composer_automl.conf import register_schemas

    (tmp_path / "fidelity").mkdir()
    (tmp_path / "fidelity" / "mine.yaml").write_text("kind: simulated\nfidelity: 0.5\n")
    register_schemas("search")
    with composing(CONFIG_DIR, str(tmp_path)):
        cfg = compose("search", overrides=["fidelity=mine"])
    assert cfg.fidelity.fidelity == 0.5 and cfg.search.n_iterations == 12
