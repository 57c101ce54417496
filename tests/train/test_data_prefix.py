"""``train data.path=PREFIX``: an existing megatron .bin/.idx dataset is read in place."""

from __future__ import annotations

import pytest

from composer_automl.config import to_dataclass
from composer_automl.train.command import main, plan
from composer_automl.train.config import TrainConfig
from indexed_data import make_dataset

SMALL = ["model=tiny", "trainer.accelerator=cpu", "trainer.seq_len=32", "trainer.micro_batch_size=2"]


def test_a_megatron_prefix_is_used_in_place(tmp_path):
    """data.path=DIR/train (DIR/train.bin + .idx) with data.valid_path=DIR/valid plans a run that
    reads those very files (no copy is made anywhere)."""
    from composer_automl.train.data import check_dataset

    folder = make_dataset(tmp_path / "corpus")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    config = to_dataclass(TrainConfig, {"model": "tiny", "out_dir": str(tmp_path / "out"),
                                        "data": {"path": str(folder / "train"), "valid_path": str(folder / "valid")},
                                        "trainer": {"accelerator": "cpu", "seq_len": 32, "max_steps": 100}}, "train")
    plan(config)
    assert check_dataset(str(folder / "train"), 256, str(folder / "valid")) == (str(folder / "train"), str(folder / "valid"))
    assert check_dataset(str(folder / "train"), 256, None, validate=False) == (str(folder / "train"), None)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("extra, message", [
    ([], "is a megatron prefix without a validation split"),
    (["data.valid_path=/nonexistent/valid"], "data.valid_path='/nonexistent/valid' is not a megatron"),
])
def test_a_prefix_without_a_usable_validation_split_is_one_error(tmp_path, capsys, extra, message):
    """A prefix with validation on needs data.valid_path (a prefix too): else one `error:` line."""
    folder = make_dataset(tmp_path / "corpus", n_docs=4)
    with pytest.raises(SystemExit) as exit_info:
        main([f"data.path={folder / 'train'}", f"out_dir={tmp_path / 'out'}", *SMALL, *extra])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("error:") == 1 and message in err, err
