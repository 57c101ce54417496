"""The rung-kind registry: one place, an explicit protocol, the same kinds the manual lists."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from composer_automl.config import ConfigError
from composer_automl.rungs.base import RungKind
from composer_automl.rungs.registry import RUNG_KINDS, rung_from_mapping, rung_kind

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize("kind", sorted(RUNG_KINDS))
def test_every_registered_kind_implements_the_protocol(kind):
    impl = rung_kind(kind)
    assert isinstance(impl, RungKind) and dataclasses.is_dataclass(impl.config)
    assert type(impl).evaluate is not RungKind.evaluate and type(impl).metric is not RungKind.metric


def test_the_manual_lists_the_registered_kinds():
    """README's layout row for ``rungs/`` names exactly the registered kinds."""
    row = next(line for line in README.read_text().splitlines() if line.startswith("| `composer_automl/rungs/`"))
    listed = re.search(r"the kinds ((?:`[a-z]+`,? ?)+)", row).group(1)
    assert set(re.findall(r"`([a-z]+)`", listed)) == set(RUNG_KINDS)


def test_an_unknown_kind_names_the_registered_ones():
    with pytest.raises(ConfigError, match=r"^my.yaml: kind='nope' is not allowed; choose one of \['blend', "):
        rung_from_mapping("x", {"kind": "nope"}, "my.yaml:")
