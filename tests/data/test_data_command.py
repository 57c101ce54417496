"""`composer-automl data prepare` through the real Hydra CLI; shipped data configs."""

from __future__ import annotations

import dataclasses

import pytest
from hydra import compose, initialize_config_dir

from composer_automl.config import to_dataclass
from composer_automl.data import command as data_command
from composer_automl.data.config import DataConfig
from composer_automl.paths import CONFIG_DIR


def test_data_prepare_command_reports_prefixes(tmp_path, capsys):
    """`data prepare` prints the dataset folder and train/valid prefixes; a second run reuses the cache."""
    args = ["prepare", f"data.cache_dir={tmp_path}", "data.max_bytes=100000", "data.progress=false"]
    data_command.main(args)
    first = capsys.readouterr().out
    data_command.main(args)
    second = capsys.readouterr().out
    assert "MB/s" in first and "reused from cache" in second
    assert f"train: prefix={tmp_path}" in first and "valid: prefix=" in first


@pytest.mark.parametrize("argv, given", [([], "no action given"), (["tokenize"], "unknown action 'tokenize'")])
def test_a_missing_or_unknown_action_is_one_error_line(capsys, argv, given):
    """`data` without `prepare`: the usage, then one `error:` line naming the actions, exit 2."""
    with pytest.raises(SystemExit) as exit_info:
        data_command.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("error:") == 1
    assert f"error: {given} for composer-automl data; choose one of ['prepare']" in err


@pytest.mark.parametrize("option", ["stdlib", "fineweb-edu", "dclm"])
def test_shipped_data_configs_compose_and_validate(option):
    """Every conf/data/*.yaml composes with Hydra, lists every DataConfig key (so any can be overridden) and validates."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="data", overrides=[f"data={option}", "data.cache_dir=/somewhere"])
    assert list(cfg.data) == [f.name for f in dataclasses.fields(DataConfig)]
    data = to_dataclass(DataConfig, cfg.data, "data")
    assert data.name == option


def test_data_group_lists_every_shipped_option():
    """The parametrised list above covers every YAML shipped in conf/data."""
    assert sorted(p.stem for p in (CONFIG_DIR / "data").glob("*.yaml")) == ["dclm", "fineweb-edu", "stdlib"]


def test_a_dataset_is_named_after_its_source(tmp_path, capsys):
    """`data.source=docs.jsonl` on the default data option is cached as `docs-<key>` (it was `stdlib-<key>`);
    the embedded corpus keeps the name `stdlib`; `data.name` still sets it."""
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("".join(f'{{"text": "document {i}"}}\n' for i in range(6)))
    for extra, name in (([f"data.source={jsonl}"], "docs"), (["data.max_bytes=100000"], "stdlib"),
                        ([f"data.source={jsonl}", "data.name=mine"], "mine")):
        data_command.main(["prepare", f"data.cache_dir={tmp_path / 'cache'}", "data.progress=false", *extra])
        first = capsys.readouterr().out.splitlines()[0]
        assert first.startswith(f"dataset: {tmp_path / 'cache' / name}-"), first
