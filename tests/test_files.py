"""Atomic output folders: complete under the final name, or absent."""

from __future__ import annotations

import pytest

from composer_automl.files import atomic_dir


def test_atomic_dir_appears_only_when_complete_and_leaves_nothing_when_the_block_raises(tmp_path):
    out = tmp_path / "report"
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as folder:
            (folder / "half.json").write_text("{")
            raise RuntimeError("killed mid-write")
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(out) as folder:
        (folder / "done.json").write_text("{}")
        assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["report"] and (out / "done.json").read_text() == "{}"
