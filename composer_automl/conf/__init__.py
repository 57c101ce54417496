"""Hydra primary configs (one per subcommand), the shipped config groups, and their schemas.

Each setting's default is written once, in its dataclass: the dataclasses are registered in
Hydra's ConfigStore as structured-config schemas, a command's YAML names its schemas in its
defaults list and only sets what differs for that command (values, comments, Hydra's own
settings). Root keys that belong to no dataclass section (``resume``, ``pattern`` …) are the
other way round: the YAML holds the default and the command's dataclass has none.
"""

from __future__ import annotations

import importlib

from hydra.core.config_store import ConfigStore

SCHEMAS: dict[str, tuple[str, str | None, str | None]] = {
    # name: ("module:Class", config group, package)
    "search_settings": ("composer_automl.search.run:SearchSettings", None, "search"),
    "calibrate_settings": ("composer_automl.calibrate.run:CalibrateSettings", None, "calibrate"),
    "pretrain_settings": ("composer_automl.pretrain.config:PretrainConfig", None, "pretrain"),
    "mad_width": ("composer_automl.spec:SearchWidth", None, "width"),
    "train_schema": ("composer_automl.train.config:TrainConfig", None, "_global_"),
    "aggregate_schema": ("composer_automl.aggregate.command:AggregateConfig", None, "_global_"),
    "export_schema": ("composer_automl.export.command:ExportConfig", None, "_global_"),
    "extrapolate_schema": ("composer_automl.extrapolate.command:ExtrapolateConfig", None, "_global_"),
    "generate_schema": ("composer_automl.generate.command:GenerateConfig", None, "_global_"),
    "worker_schema": ("composer_automl.engine.command:WorkerConfig", None, "_global_"),
    "evaluate_schema": ("composer_automl.evaluate.config:EvaluateConfig", None, "_global_"),
    "data/base": ("composer_automl.data.config:DataConfig", "data", None),
    "search_space/base": ("composer_automl.spaces:SearchSpaceConfig", "search_space", None),
}
"""Schema name (what a defaults list names) → its dataclass, config group and package."""

COMMAND_SCHEMAS: dict[str, tuple[str, ...]] = {
    "search": ("search_settings", "search_space/base"),
    "calibrate": ("calibrate_settings", "search_space/base"),
    "pretrain": ("pretrain_settings", "data/base"),
    "data": ("data/base",),
    "mad": ("mad_width",),
    "train": ("train_schema",),
    "aggregate": ("aggregate_schema",),
    "export": ("export_schema",),
    "extrapolate": ("extrapolate_schema",),
    "generate": ("generate_schema",),
    "worker": ("worker_schema",),
    "evaluate": ("evaluate_schema",),
}
"""Subcommand → the schemas its primary config and groups use (imported only for that command)."""


def register_schemas(command: str) -> None:
    """Store the schemas of ``command`` in Hydra's ConfigStore (idempotent)."""
    store = ConfigStore.instance()
    for name in COMMAND_SCHEMAS.get(command, ()):
        target, group, package = SCHEMAS[name]
        module, cls = target.split(":")
        node = getattr(importlib.import_module(module), cls)
        store.store(name=name.rsplit("/", 1)[-1], group=group, node=node, package=package)
