"""Search spaces: Composer's strategies as ConfigSpace spaces, and Configuration ⇄ Pattern.

A search space searches ``n_layers`` layers, each a categorical over the primitive
registry, placed between a fixed ``head`` and ``tail``:

- ``one-shot``: no head, no tail — every layer is searched;
- ``end-incremental``: head = a fixed prefix (given, or the best pattern of a
  previous run), the searched layers are appended;
- ``middle-incremental``: a given pattern is split at its middle; head = its
  first half, tail = its second half, the searched layers go in between.

Constraints are checked on the *full* pattern (head + searched + tail). A required
first-layer kind is a ConfigSpace forbidden clause when the first layer is searched.
Attention-fraction bounds cannot be written compactly as forbidden clauses (they
couple all layers), so they are enforced by rejection: :meth:`SearchSpace.sample`
and the search's config sampler draw again until a pattern satisfies them.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import ConfigSpace as CS

from composer_automl.config import ConfigError, choice, located, to_dataclass
from composer_automl.patterns import ATTENTION, Pattern, PatternError, primitive_symbols
from composer_automl.spec import SearchWidth

WIDTH_FIELDS = ("d_model", "n_heads", "n_kv_heads", "ffn_hidden")
MAX_REJECTIONS = 10_000
"""Draws before sampling gives up on the attention-fraction constraints."""


@dataclass
class SearchSpaceConfig:
    """One ``search_spaces/*.yaml`` file."""

    strategy: str = "one-shot"
    """``one-shot``, ``end-incremental`` or ``middle-incremental``."""
    n_layers: int = 6
    """Number of searched layers."""
    primitives: list[str] = field(default_factory=lambda: list(primitive_symbols()))
    """Layer kinds each searched layer may take."""
    prefix: str | None = None
    """end-incremental: the fixed prefix pattern (``AMMAMM``)."""
    prefix_from: str | None = None
    """end-incremental: a finished search's run directory; its best pattern is the prefix."""
    base: str | None = None
    """middle-incremental: the pattern split at its middle."""
    base_from: str | None = None
    """middle-incremental: a finished search's run directory; its best pattern is the base."""
    min_attention_fraction: float = 0.0
    """Lowest allowed fraction of attention layers in the full pattern."""
    max_attention_fraction: float = 1.0
    """Highest allowed fraction of attention layers in the full pattern."""
    first_layer: str | None = None
    """Required kind of the full pattern's first layer (``A``), or null."""
    width: dict[str, list[int]] = field(default_factory=dict)
    """Optional width hyperparameters: field → choices (d_model, n_heads, n_kv_heads, ffn_hidden)."""
    fixed_width: dict[str, int] = field(default_factory=dict)
    """Width fields held fixed during the search (defaults: :class:`SearchWidth`)."""

    def __post_init__(self) -> None:
        choice(self.strategy, STRATEGIES, "strategy")
        if self.n_layers < 1:
            raise ConfigError(f"must be >= 1, got {self.n_layers}", key="n_layers")
        if not self.primitives:
            raise ConfigError("must list at least one layer kind", key="primitives")
        for kind in self.primitives:
            choice(kind, primitive_symbols(), "primitives")
        if len(set(self.primitives)) != len(self.primitives):
            raise ConfigError(f"has duplicates: {self.primitives}", key="primitives")
        if not 0.0 <= self.min_attention_fraction <= self.max_attention_fraction <= 1.0:
            raise ConfigError(f"={self.min_attention_fraction}: need 0 <= min_attention_fraction <= "
                              f"max_attention_fraction={self.max_attention_fraction} <= 1", key="min_attention_fraction")
        if self.first_layer is not None:
            choice(self.first_layer, primitive_symbols(), "first_layer")
        for name, values in {**self.width, **{k: [v] for k, v in self.fixed_width.items()}}.items():
            choice(name, WIDTH_FIELDS, "width")
            if not values or any(int(v) < 1 for v in values):
                raise ConfigError("must be a non-empty list of positive ints", key=f"width.{name}")
        both = sorted(set(self.width) & set(self.fixed_width))
        if both:
            raise ConfigError(f": {both} are both searched (width) and fixed (fixed_width)", key="width")
        for key in ("prefix", "base"):
            if getattr(self, key) is not None and getattr(self, f"{key}_from") is not None:
                raise ConfigError(f": give {key} or {key}_from, not both", key=key)


@dataclass(frozen=True)
class SearchSpace:
    """A resolved search space: fixed head/tail, searched layers, constraints, ConfigSpace."""

    config: SearchSpaceConfig
    head: tuple[str, ...]
    tail: tuple[str, ...]
    configspace: CS.ConfigurationSpace = field(compare=False)
    cost_filter: Callable[[Pattern], str | None] | None = field(default=None, compare=False)
    """Extra constraint on the full pattern (the search's target-scale cost bounds); not saved with the space."""

    @property
    def layer_names(self) -> list[str]:
        """Hyperparameter names of the searched layers, in layer order."""
        return [layer_name(i) for i in range(self.config.n_layers)]

    @property
    def n_total(self) -> int:
        """Layers of a full pattern (head + searched + tail)."""
        return len(self.head) + self.config.n_layers + len(self.tail)

    @property
    def n_searched_patterns(self) -> int:
        """Layer-kind combinations of the searched layers, before any constraint."""
        return len(self.config.primitives) ** self.config.n_layers

    def to_pattern(self, config: Mapping[str, Any]) -> Pattern:
        """The full pattern a configuration (dict or ConfigSpace Configuration) stands for."""
        searched = tuple(str(config[name]) for name in self.layer_names)
        return Pattern(self.head + searched + self.tail)

    def to_config(self, pattern: Pattern | str, width: SearchWidth | None = None) -> CS.Configuration:
        """The configuration of a full pattern (inverse of :meth:`to_pattern`).

        ``width`` supplies the searched width values (default: each one's first choice).
        """
        pattern = Pattern.parse(pattern)
        if len(pattern) != self.n_total:
            raise PatternError(f"pattern {pattern} has {len(pattern)} layers; this space has {self.n_total}")
        n_head, n = len(self.head), self.config.n_layers
        if pattern.layers[:n_head] != self.head or pattern.layers[n_head + n :] != self.tail:
            raise PatternError(
                f"pattern {pattern} does not keep the fixed layers {''.join(self.head)}…{''.join(self.tail)}"
            )
        values: dict[str, Any] = dict(zip(self.layer_names, pattern.layers[n_head : n_head + n]))
        for name, choices in self.config.width.items():
            values[name] = int(getattr(width, name)) if width is not None else int(choices[0])
        return CS.Configuration(self.configspace, values=values)

    def width(self, config: Mapping[str, Any]) -> SearchWidth:
        """Model width for a configuration: searched values, then fixed ones, then defaults."""
        values = {k: int(v) for k, v in self.config.fixed_width.items()}
        values.update({name: int(config[name]) for name in self.config.width})
        try:
            return SearchWidth(**values)
        except ConfigError as err:
            raise ConfigError(f"={values} gives no valid model width: {err}", key="width") from None

    def resolved_mapping(self) -> dict[str, Any]:
        """The config as plain data with ``*_from`` sources replaced by the patterns they gave."""
        data = dataclasses.asdict(self.config)
        if self.config.strategy == "end-incremental":
            data.update(prefix="".join(self.head), prefix_from=None)
        elif self.config.strategy == "middle-incremental":
            data.update(base="".join(self.head + self.tail), base_from=None)
        return data

    def violation(self, pattern: Pattern) -> str | None:
        """Why a full pattern breaks the constraints, or None if it satisfies them."""
        c = self.config
        if c.first_layer is not None and pattern.layers[0] != c.first_layer:
            return f"first layer must be {c.first_layer}"
        frac = pattern.attention_fraction
        if not c.min_attention_fraction - 1e-9 <= frac <= c.max_attention_fraction + 1e-9:
            return (
                f"attention fraction {frac:.3f} outside "
                f"[{c.min_attention_fraction}, {c.max_attention_fraction}]"
            )
        return self.cost_filter(pattern) if self.cost_filter is not None else None

    def accepts(self, config: Mapping[str, Any]) -> bool:
        """Whether a configuration's pattern satisfies every constraint."""
        return self.violation(self.to_pattern(config)) is None

    def patterns(self) -> list[Pattern]:
        """Every full pattern of the space that satisfies the constraints, in lexicographic order."""
        out = []
        for searched in itertools.product(self.config.primitives, repeat=self.config.n_layers):
            pattern = Pattern(self.head + searched + self.tail)
            if self.violation(pattern) is None:
                out.append(pattern)
        return sorted(out, key=str)

    def sample(self, n: int = 1) -> list[CS.Configuration]:
        """``n`` configurations drawn from the ConfigSpace, rejecting constraint violations."""
        out: list[CS.Configuration] = []
        for _ in range(n):
            out.append(self.sample_valid(self.configspace.sample_configuration))
        return out

    def sample_valid(self, draw: Callable[[], Any]) -> Any:
        """Call ``draw()`` until its configuration satisfies the constraints (rejection)."""
        for _ in range(MAX_REJECTIONS):
            config = draw()
            if self.accepts(config):
                return config
        raise ConfigError(f"search_space: no pattern satisfying the constraints in {MAX_REJECTIONS} draws")


def layer_name(i: int) -> str:
    """Hyperparameter name of searched layer ``i`` (zero-padded so names sort in layer order)."""
    return f"layer_{i:02d}"


def _pattern_from_run(run_dir: str, field_name: str) -> str:
    """Best pattern (at the highest budget) of a finished search run directory."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise ConfigError(f"={run_dir!r}: no finished search there (no summary.json)", key=field_name)
    best = json.loads(path.read_text()).get("best_pattern")
    if not best:
        raise ConfigError(f"={run_dir!r}: the run found no successful pattern", key=field_name)
    return best


def _fixed(text: str | None, source: str | None, field_name: str) -> Pattern:
    if source is not None:
        text = _pattern_from_run(source, f"{field_name}_from")
    if text is None:
        raise ConfigError(f"(or {field_name}_from) is required for this strategy", key=field_name)
    try:
        return Pattern.parse(text)
    except PatternError as err:
        raise ConfigError(f": {err}", key=field_name) from None


def _one_shot(c: SearchSpaceConfig) -> tuple[Pattern | None, Pattern | None]:
    return None, None


def _end_incremental(c: SearchSpaceConfig) -> tuple[Pattern | None, Pattern | None]:
    return _fixed(c.prefix, c.prefix_from, "prefix"), None


def _middle_incremental(c: SearchSpaceConfig) -> tuple[Pattern | None, Pattern | None]:
    base = _fixed(c.base, c.base_from, "base")
    if len(base) < 2:
        raise ConfigError(f"must have at least 2 layers to split, got {base}", key="base")
    mid = len(base) // 2
    return base[:mid], base[mid:]


STRATEGIES: dict[str, Callable[[SearchSpaceConfig], tuple[Pattern | None, Pattern | None]]] = {
    "one-shot": _one_shot,
    "end-incremental": _end_incremental,
    "middle-incremental": _middle_incremental,
}
"""Strategy name → function giving the fixed (head, tail) around the searched layers."""


def build_space(config: SearchSpaceConfig, seed: int = 0) -> SearchSpace:
    """Resolve a strategy into a :class:`SearchSpace` with its ConfigSpace; checks feasibility."""
    head, tail = STRATEGIES[config.strategy](config)
    head_t = head.layers if head is not None else ()
    tail_t = tail.layers if tail is not None else ()
    cs = CS.ConfigurationSpace(seed=seed)
    first_default = config.first_layer if config.first_layer in config.primitives and not head_t else None
    cs.add([
        # the default configuration must not be forbidden: layer 0 defaults to the required kind
        CS.CategoricalHyperparameter(layer_name(i), list(config.primitives),
                                     default_value=first_default if i == 0 and first_default else config.primitives[0])
        for i in range(config.n_layers)
    ])
    for name, choices in config.width.items():
        cs.add(CS.CategoricalHyperparameter(name, sorted({int(v) for v in choices})))
    if config.first_layer is not None:
        if head_t:
            if head_t[0] != config.first_layer:
                raise ConfigError(f"={config.first_layer!r} contradicts the fixed prefix "
                    f"{''.join(head_t)}", key="first_layer")
        else:
            if config.first_layer not in config.primitives:
                raise ConfigError(f"={config.first_layer!r} is not in primitives {config.primitives}", key="first_layer")
            for kind in config.primitives:
                if kind != config.first_layer:
                    cs.add(CS.ForbiddenEqualsClause(cs[layer_name(0)], kind))
    space = SearchSpace(config, head_t, tail_t, cs)
    _check_feasible(space)
    _check_widths(space)
    return space


def _check_feasible(space: SearchSpace) -> None:
    """Raise unless some number of searched attention layers meets the fraction bounds."""
    c = space.config
    fixed_attn = (space.head + space.tail).count(ATTENTION.symbol)
    can_attend = ATTENTION.symbol in c.primitives
    can_other = any(k != ATTENTION.symbol for k in c.primitives)
    first_searched_fixed = c.first_layer is not None and not space.head
    lo = 1 if first_searched_fixed and c.first_layer == ATTENTION.symbol else 0
    hi = c.n_layers - (1 if first_searched_fixed and c.first_layer != ATTENTION.symbol else 0)
    counts = range(lo if can_other else c.n_layers, (hi if can_attend else 0) + 1)
    for k in counts:
        frac = (fixed_attn + k) / space.n_total
        if c.min_attention_fraction - 1e-9 <= frac <= c.max_attention_fraction + 1e-9:
            return
    raise ConfigError(f": no {space.n_total}-layer pattern meets attention fraction [{c.min_attention_fraction}, "
                      f"{c.max_attention_fraction}] with the fixed layers and first_layer", key="min_attention_fraction")


def _check_widths(space: SearchSpace) -> None:
    """Every combination of width choices must make a valid SearchWidth (fail before the search)."""
    names = list(space.config.width)
    for values in itertools.product(*(space.config.width[n] for n in names)):
        space.width(dict(zip(names, values)))


def space_from_mapping(node: Mapping[str, Any], seed: int = 0) -> SearchSpace:
    """Validate a ``search_space`` mapping (YAML / Hydra node) and build the space; errors name
    ``search_space.<key>``."""
    config = to_dataclass(SearchSpaceConfig, node, "search_space")
    with located("search_space"):
        return build_space(config, seed=seed)


def command_line_sources_win(node: Mapping[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``node`` with the file's ``prefix``/``base`` dropped where ``prefix_from``/``base_from`` was given on the
    command line (``overrides``, Hydra's task overrides) and the pattern itself was not.

    The shipped ``end-incremental.yaml`` sets ``prefix: AAMMMM`` as its default: a ``prefix_from=RUN`` typed
    by the user must replace it, not collide with it. Both given on the command line still fail.
    """
    from omegaconf import DictConfig, OmegaConf

    from composer_automl.adapters.hydra import typed_keys

    data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    given = typed_keys(overrides)
    for key in ("prefix", "base"):
        if f"search_space.{key}_from" in given and f"search_space.{key}" not in given:
            data[key] = None
    return data


def load_space(name: str, seed: int = 0, **overrides: Any) -> SearchSpace:
    """Load ``search_spaces/<name>.yaml`` (or a path to one), with optional field overrides; errors name the file."""
    from composer_automl.config import load_yaml
    from composer_automl.paths import find_option, group_options

    path = find_option("search_space", name)
    if path is None:
        raise ConfigError(f"unknown search_space {name!r}; have: {group_options('search_space')}")
    data = {k: v for k, v in load_yaml(path, "a search-space mapping").items() if k != "defaults"}  # Hydra's
    return build_space(to_dataclass(SearchSpaceConfig, {**data, **overrides}, f"{path}:"), seed=seed)
