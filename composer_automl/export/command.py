"""``composer-automl export ckpt=CHECKPOINT|NATIVE_EXPORT out=FOLDER [format=native|hf]``.

From a training checkpoint: reads the (sharded, any-TP) checkpoint at TP=1 in this one process —
megatron ``dist_checkpointing`` reassembles the global tensors — and maps the megatron weights to
HybridLM names and layout (:func:`composer_automl.parallel.weights.parallel_to_hybrid`). A
checkpoint of Transformer Engine layers (``parallel.impl=te``) is read into local layers under its
own weight names, so exporting needs neither Transformer Engine nor a GPU. Optimizer state is not
exported. From a ``native`` export folder: its weights and tokenizer as they are (converting it to
``hf``, or re-writing an old export with a tokenizer record).

``format=native`` writes ``model.safetensors`` + ``model.yaml`` (+ ``tokenizer.json``);
``format=hf`` a folder ``transformers`` loads (:mod:`composer_automl.export.hf`). A checkpoint
does not know its tokenizer: ``tokenizer=byte`` (the default data's) or ``tokenizer=hf
tokenizer_path=…/tokenizer.json`` names it and the export records it. Everything is checked
before work; the folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from omegaconf import DictConfig

from composer_automl.cli import run_hydra_app
from composer_automl.config import ConfigError, choice, to_dataclass
from composer_automl.data.tokenizers import Tokenizer, build_tokenizer, check_tokenizer
from composer_automl.export.files import FORMATS, SPEC, TOKENIZER, WEIGHTS, open_export, tokenizer_record
from composer_automl.files import atomic_dir, check_writable
from composer_automl.spec import ModelSpec


@dataclass
class ExportConfig:
    """``composer-automl export``: a training checkpoint (or a native export) to a model folder."""

    ckpt: str = ""
    """A ``checkpoints/step_NNNNNN.ckpt`` folder written by ``composer-automl train``, or a native export folder."""
    out: str = ""
    """New folder to create (must not exist)."""
    format: str = "native"
    """``native`` (HybridLM safetensors + spec YAML) or ``hf`` (a ``transformers`` folder)."""
    tokenizer: Optional[str] = None
    """The tokenizer the model was trained with: ``byte`` or ``hf`` (with ``tokenizer_path``).
    Null: a native export's own record, else ``byte``. A native export that records one takes no other."""
    tokenizer_path: Optional[str] = None
    """``tokenizer=hf``: the local ``tokenizer.json`` the training data was prepared with."""
    eod_token: Optional[str] = None
    """``tokenizer=hf``: its end-of-document token (default: as ``data prepare`` chose it)."""

    def __post_init__(self) -> None:
        if not self.ckpt or not self.out:
            raise ConfigError("export needs ckpt=CHECKPOINT_FOLDER and out=NEW_FOLDER")
        choice(self.format, FORMATS, "format")
        if self.tokenizer is not None:
            check_tokenizer(self.tokenizer, self.tokenizer_path)


@dataclass
class Source:
    """What an export is made of, known before any weight is read."""

    spec: ModelSpec
    read_weights: Callable[[], dict[str, torch.Tensor]]
    tokenizer: Tokenizer
    tokenizer_file: Optional[Path]
    """The ``tokenizer.json`` of a Hugging Face tokenizer (None for ``byte``)."""
    info: dict[str, Any]


def check(config: ExportConfig) -> Source:
    """Validate before any work: the source, its tokenizer, a free ``out``, the libraries ``format`` needs."""
    from composer_automl.export.hf import require_transformers

    if Path(config.out).exists():
        raise ConfigError(f"out={config.out!r} already exists; choose a new folder")
    check_writable(Path(config.out), "out")
    if config.format == "hf":
        require_transformers("format=hf")
    ckpt = Path(config.ckpt)
    if (ckpt / SPEC).is_file():
        source = _native_source(config)
    elif (ckpt / "meta.json").is_file():
        source = _checkpoint_source(config)
    else:
        raise ConfigError(f"ckpt={config.ckpt!r} is not a complete `composer-automl train` checkpoint (no readable "
                          f"meta.json) nor a native export folder (no {SPEC}); pass a checkpoints/step_NNNNNN.ckpt folder")
    if source.tokenizer.vocab_size > source.spec.vocab_size:
        raise ConfigError(f"tokenizer={source.tokenizer.name} has {source.tokenizer.vocab_size} ids but the model's "
                          f"vocab_size is {source.spec.vocab_size}; name the tokenizer the model was trained with")
    return source


def _tokenizer_from_config(config: ExportConfig) -> tuple[Tokenizer, Optional[Path]]:
    name = config.tokenizer or "byte"
    tokenizer = build_tokenizer(name, config.tokenizer_path, config.eod_token)
    return tokenizer, Path(config.tokenizer_path) if name == "hf" else None


def _checkpoint_source(config: ExportConfig) -> Source:
    from composer_automl.parallel.checkpoint import read_meta

    meta = read_meta(config.ckpt, "ckpt")
    spec = ModelSpec.from_dict(meta["model"])
    tokenizer, tokenizer_file = _tokenizer_from_config(config)
    info = {"exported_from": str(Path(config.ckpt).resolve()), "step": meta["step"]}
    return Source(spec, lambda: read_checkpoint_weights(config.ckpt, meta), tokenizer, tokenizer_file, info)


def _native_source(config: ExportConfig) -> Source:
    exported = open_export(config.ckpt, "ckpt")
    if exported.tokenizer_info is None:
        tokenizer, tokenizer_file = _tokenizer_from_config(config)
    elif config.tokenizer is not None:
        raise ConfigError(f"ckpt={config.ckpt!r} records its tokenizer ({exported.tokenizer_info['name']}); "
                          "drop tokenizer= (an export keeps the tokenizer it was trained with)")
    else:
        tokenizer = exported.tokenizer()
        tokenizer_file = exported.folder / TOKENIZER if tokenizer.name == "hf" else None
    info = {k: v for k, v in exported.info.items() if k != "tokenizer"}
    return Source(exported.spec, exported.state_dict, tokenizer, tokenizer_file, info)


def read_checkpoint_weights(ckpt: str | Path, meta: dict) -> dict[str, torch.Tensor]:
    """A train checkpoint's weights at TP=1, under HybridLM names."""
    import torch.distributed as dist
    from megatron.core import dist_checkpointing

    from composer_automl.parallel import build_parallel_model, parallel_to_hybrid, state
    from composer_automl.parallel.checkpoint import model_sharded_state
    from composer_automl.parallel.weights import impl_renames

    spec = ModelSpec.from_dict(meta["model"])
    own_world = not dist.is_initialized()
    if own_world:  # a one-process world in memory: megatron's TP=1 groups need one, no network needed
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        state.init_model_parallel(1, on_cpu=True)
        model = build_parallel_model(spec, 1, on_cpu=True)
        renames = impl_renames(spec, meta.get("impl", "local"))  # a te checkpoint read into local layers, on CPU
        template = {"state_dict": model_sharded_state(model, renames)}
        loaded = dist_checkpointing.load(template, str(ckpt))["state_dict"]
        return {k: v.contiguous() for k, v in parallel_to_hybrid([loaded], spec).items()}
    finally:
        state.destroy_model_parallel()
        if own_world:
            dist.destroy_process_group()


def export(config: ExportConfig) -> Path:
    """Write the export folder; return its path."""
    source = check(config)
    weights = source.read_weights()
    info = {**source.info, "tokenizer": tokenizer_record(source.tokenizer)}
    with atomic_dir(config.out) as folder:
        if config.format == "hf":
            from composer_automl.export.hf import write_hf

            write_hf(folder, source.spec, weights, source.tokenizer, source.tokenizer_file, info)
        else:
            _write_native(folder, source, weights, info)
    return Path(config.out)


def _write_native(folder: Path, source: Source, weights: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    save_file(weights, str(folder / WEIGHTS), metadata={"format": "pt"})
    source.spec.save_yaml(folder / SPEC, extra=info)
    if source.tokenizer_file is not None:
        shutil.copyfile(source.tokenizer_file, folder / TOKENIZER)


def _task(cfg: DictConfig) -> None:
    config = to_dataclass(ExportConfig, cfg)
    out = export(config)
    files = sorted(p.name for p in out.iterdir())
    how = ("AutoModelForCausalLM.from_pretrained (import composer_automl.modeling_hybrid, or trust_remote_code=True)"
           if config.format == "hf" else "composer_automl.export.load_hybrid")
    print(f"exported {config.ckpt} -> {out} ({', '.join(files)}); load with {how}")


def main(argv: list[str]) -> None:
    run_hydra_app("export", _task, argv)

