"""Errors name the key as the user typed it: in a root config section, in a rung file, in a ladder's overrides."""

from __future__ import annotations

import pytest

from composer_automl.search.command import main as search_main


def one_error(capsys, argv: list[str]) -> str:
    """Run ``composer-automl search argv``: it must exit 2 with exactly one ``error:`` line; return it."""
    with pytest.raises(SystemExit) as exit_info:
        search_main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_a_root_config_key(capsys, tmp_path):
    assert one_error(capsys, ["search.n_workers=-1", f"search.run_dir={tmp_path / 'r'}"]) == \
        "error: search.n_workers must be >= 0, got -1"
    assert one_error(capsys, ["search.constraints.flops_ratio_max=-2", f"search.run_dir={tmp_path / 'r'}"]) == \
        "error: search.constraints.flops_ratio_max=-2.0 must be a positive number or null"
    assert one_error(capsys, ["search.workers_per_gpu=0", f"search.run_dir={tmp_path / 'r'}"]) == \
        "error: search.workers_per_gpu must be >= 1, got 0"
    assert one_error(capsys, ["search.n_workers=3", "search.gpus=[0]", "search.workers_per_gpu=2",
                              f"search.run_dir={tmp_path / 'r'}"]) == \
        "error: search.gpus: n_workers=3 x gpus_per_worker=1 at workers_per_gpu=2 needs 2 GPUs; gpus lists 1"
    assert not (tmp_path / "r").exists()


def test_a_key_in_a_rung_file_names_the_file(capsys, tmp_path):
    """A ladder of the user's names a rung file of theirs; the bad key is named in that file."""
    (tmp_path / "fidelity").mkdir()
    rung = tmp_path / "fidelity" / "my-rung.yaml"
    rung.write_text("kind: simulated\nfidelity: 2.0\n")
    (tmp_path / "fidelity" / "my-ladder.yaml").write_text(
        "kind: ladder\neta: 3\nrungs:\n  - {budget: 1, rung: simulated}\n  - {budget: 3, rung: my-rung}\n")
    line = one_error(capsys, ["--config-dir", str(tmp_path), "fidelity=my-ladder", f"search.run_dir={tmp_path / 'r'}"])
    assert line == f"error: {rung}: fidelity must be in (0, 1], got 2.0"


def test_a_key_in_a_ladder_override(capsys, tmp_path):
    line = one_error(capsys, ["fidelity=simulated-ladder", "fidelity.rungs.1.overrides.fidelity=2.0",
                              f"search.run_dir={tmp_path / 'r'}"])
    assert line == "error: fidelity.rungs.1.overrides.fidelity must be in (0, 1], got 2.0"


def test_a_single_rung_fidelity_and_a_search_space_key(capsys, tmp_path):
    """A rung used as the whole fidelity is the ``fidelity`` section itself; the space is ``search_space``."""
    assert one_error(capsys, ["fidelity=simulated", "fidelity.sleep_s=-1", f"search.run_dir={tmp_path / 'r'}"]) == \
        "error: fidelity.sleep_s must be >= 0, got -1.0"
    assert one_error(capsys, ["search_space.n_layers=0", f"search.run_dir={tmp_path / 'r'}"]) == \
        "error: search_space.n_layers must be >= 1, got 0"
