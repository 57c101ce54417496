"""Checkpoints that outlive a layout: megatron-core ``dist_checkpointing`` under Lightning.

A checkpoint is a folder ``step_NNNNNN.ckpt/`` written by every rank together:

* megatron's sharded checkpoint (torch_dist backend: ``*.distcp``, ``common.pt``,
  ``metadata.json``). Model weights and AdamW's moments are stored as *global*
  tensors (each rank writes its TP shard; data-parallel replicas are
  deduplicated), so a run saved at one TP/DP size loads at another — the
  ``sharded_state_dict`` of the new layout says which slice each rank reads.
  Lightning's own state (loop counters, schedule, callbacks) is the common part.
* ``meta.json``, written last by global rank 0: model spec, the layout (TP, DP,
  micro-batch, accumulation, sequence length) and the data position (optimizer
  step, consumed samples). A folder with ``meta.json`` is complete.

A resume may change TP, DP, micro-batch and accumulation as long as the
global batch (micro × accum × DP) and the sequence length stay the same: then
each optimizer step reads the same samples as the saved run would have
(:mod:`composer_automl.train.data`). Anything else would silently change the data
stream and is refused.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from composer_automl.config import ConfigError
from composer_automl.spec import ModelSpec, SpecError
from composer_automl.files import atomic_write_text

META = "meta.json"
MOMENTS = ("exp_avg", "exp_avg_sq")
"""AdamW state tensors stored sharded like their parameter."""
SHARDING = {"non_homogeneous_layers": True}
"""megatron sharding metadata: A and M layers hold different weights, so each layer gets its own keys
(the default stacks layer *i*'s weights into one tensor per name, which needs every layer to have them)."""


@dataclass(frozen=True)
class Layout:
    """How a run reads its data: what a checkpoint stores and a resume is checked against."""

    tp: int
    dp: int
    micro_batch_size: int
    grad_accum: int
    seq_len: int

    @property
    def global_batch(self) -> int:
        """Sequences per optimizer step."""
        return self.micro_batch_size * self.grad_accum * self.dp

    def describe(self) -> str:
        return (f"global batch {self.global_batch} = micro_batch_size {self.micro_batch_size} × "
                f"grad_accum {self.grad_accum} × DP {self.dp}, seq_len {self.seq_len}")


def write_meta(folder: str | Path, spec: ModelSpec, layout: Layout, step: int, impl: str = "local") -> None:
    """Mark ``folder`` complete (atomic rename); ``impl`` is the layer implementation the weights are named by."""
    meta = {"step": step, "consumed_samples": step * layout.global_batch, **asdict(layout),
            "global_batch": layout.global_batch, "model": spec.to_dict(), "impl": impl,
            "format": "megatron-dist-checkpoint"}
    atomic_write_text(Path(folder) / META, json.dumps(meta, indent=1))


def read_meta(folder: str | Path, what: str = "resume") -> dict:
    """The checkpoint's ``meta.json``; ConfigError naming ``what`` unless ``folder`` is a complete checkpoint of
    ours whose files are whole (:func:`damage`)."""
    meta_path = Path(folder) / META
    if not meta_path.is_file():
        raise ConfigError(
            f"{what}={str(folder)!r} is not a complete `composer-automl train` checkpoint folder "
            f"(no {META}); pass a checkpoints/step_NNNNNN.ckpt folder"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as err:
        meta, problem = None, f"{META} cannot be read ({type(err).__name__}: {err})"
    else:
        ours = isinstance(meta, dict) and meta.get("format") == "megatron-dist-checkpoint" and "model" in meta
        problem = damage(folder, meta) if ours else f"{META} is not a `composer-automl train` checkpoint record"
    if problem:
        raise ConfigError(f"{what}={str(folder)!r} is a damaged checkpoint: {problem}; use another checkpoint "
                          "(checkpoints/step_NNNNNN.ckpt) or move this one out of the way")
    return meta


def damage(folder: str | Path, meta: dict) -> str | None:
    """What makes a checkpoint unreadable, found without reading its tensors, or None: ``meta.json`` fields,
    megatron's ``metadata.json``, PyTorch's ``.metadata``, each shard file as long as the byte ranges it is listed
    with, and a loadable ``common.pt`` (Lightning's loop state)."""
    from torch.distributed.checkpoint import FileSystemReader

    folder = Path(folder)
    missing = [k for k in ("step", "consumed_samples", *Layout.__dataclass_fields__) if not isinstance(meta.get(k), int)]
    if missing:
        return f"{META} lacks the integer field(s) {missing}"
    try:
        ModelSpec.from_dict(meta["model"])
    except (SpecError, TypeError) as err:
        return f"{META} holds no valid model ({err})"
    try:
        if not isinstance(json.loads((folder / "metadata.json").read_text()), dict):
            return "metadata.json is not a JSON object"
        shards = FileSystemReader(str(folder)).read_metadata().storage_data
    except Exception as err:  # a missing, empty or garbled file: JSON, pickle and OS errors alike
        return f"its metadata (metadata.json, .metadata) cannot be read ({type(err).__name__}: {err})"
    ends: dict[str, int] = {}
    for info in shards.values():
        ends[info.relative_path] = max(ends.get(info.relative_path, 0), info.offset + info.length)
    for name, end in sorted(ends.items()):
        size = (folder / name).stat().st_size if (folder / name).is_file() else None
        if size is None or size < end:
            return f"{name} is {'missing' if size is None else f'truncated ({size} of {end} bytes)'}"
    try:
        torch.load(folder / "common.pt", map_location="cpu", weights_only=False)
    except Exception as err:  # missing, empty or truncated pickle
        return f"common.pt cannot be read ({type(err).__name__}: {err})"
    return None


def check_checkpoint(folder: str | Path, spec: ModelSpec, layout: Layout, impl: str = "local") -> dict:
    """Return the checkpoint's meta; ConfigError unless it is complete, of ``spec`` and layer
    implementation ``impl``, and ``layout`` reads the same data stream (same global batch and
    sequence length; TP, DP, micro-batch and accumulation may differ)."""
    meta = read_meta(folder)
    saved_impl = meta.get("impl", "local")
    if saved_impl != impl:
        raise ConfigError(
            f"resume={str(folder)!r} was saved with parallel.impl={saved_impl}, this run has parallel.impl={impl}; "
            f"their layers name the norm weights differently: resume with parallel.impl={saved_impl}"
        )
    if meta["model"] != spec.to_dict():
        diff = sorted(k for k in set(meta["model"]) | set(spec.to_dict()) if meta["model"].get(k) != spec.to_dict().get(k))
        raise ConfigError(
            f"resume={str(folder)!r} was saved from another model (fields {diff} differ): "
            f"checkpoint {[meta['model'].get(k) for k in diff]} vs model {[spec.to_dict().get(k) for k in diff]}"
        )
    saved = Layout(**{k: meta[k] for k in Layout.__dataclass_fields__})
    if saved.global_batch != layout.global_batch or saved.seq_len != layout.seq_len:
        raise ConfigError(
            f"resume={str(folder)!r} cannot continue the same data stream: it was saved with {saved.describe()}, "
            f"this run has {layout.describe()}; keep micro_batch_size × grad_accum × DP = {saved.global_batch} "
            f"and seq_len = {saved.seq_len}"
        )
    return meta


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    """The ``step_NNNNNN.ckpt`` folder with ``meta.json`` (complete) and the largest N, or None."""
    done = [p for p in Path(ckpt_dir).glob("step_*.ckpt") if p.stem[5:].isdigit() and (p / META).is_file()]
    return max(done, key=lambda p: int(p.stem[5:]), default=None)


# --- sharded state ---------------------------------------------------------------------------


def model_sharded_state(model: torch.nn.Module, renames: dict[str, str] | None = None) -> dict[str, Any]:
    """Parameter name → megatron ShardedTensor (or factory) of this rank's shard (``_extra_state`` dropped);
    ``renames`` (parameter name → name in the checkpoint) reads weights saved by another layer
    implementation (:func:`composer_automl.parallel.weights.impl_renames`)."""
    sharded = model.sharded_state_dict(metadata=dict(SHARDING))
    sharded = {name: value for name, value in sharded.items() if not name.endswith("_extra_state")}
    for name, saved in (renames or {}).items():
        sharded[name] = replace(sharded[name], key=sharded[name].key.removesuffix(name) + saved)
    return sharded


def optimizer_sharded_state(model: torch.nn.Module, model_sharded: dict[str, Any],
                            optimizer: torch.optim.Optimizer | None) -> dict[str, Any]:
    """AdamW moments of every parameter, sharded like the parameter (zeros as a load template when
    ``optimizer`` is None)."""
    from megatron.core.dist_checkpointing.optimizer import make_sharded_optimizer_tensor

    out = {}
    for name, param in model.named_parameters():
        state = optimizer.state.get(param, {}) if optimizer is not None else {}
        for moment in MOMENTS:
            tensor = state[moment] if moment in state else torch.zeros_like(param)
            out[f"{moment}.{name}"] = make_sharded_optimizer_tensor(model_sharded[name], tensor, f"optimizer.{moment}")
    return out


def _in_process_strategy():
    """megatron's ``torch_dist`` format written by PyTorch DCP's own ``FileSystemWriter`` in this process.

    megatron's writer forks one process per file bucket after staging tensors and
    synchronises CUDA; on CPU (gloo threads already running) the forked writers
    died and the save hung. Used for CPU runs only; GPU runs keep megatron's writer.
    """
    from megatron.core.dist_checkpointing.strategies.torch import (
        MCoreSavePlanner, TorchDistSaveShardedStrategy, _replace_state_dict_keys_with_sharded_keys,
        mcore_to_pyt_state_dict)
    from torch.distributed import checkpoint as dcp

    class InProcessTorchDistSave(TorchDistSaveShardedStrategy):
        def save(self, sharded_state_dict, checkpoint_dir) -> None:
            sharded, _, _ = _replace_state_dict_keys_with_sharded_keys(sharded_state_dict, self.keep_only_main_replica)
            dcp.save(mcore_to_pyt_state_dict(sharded, False),
                     storage_writer=dcp.FileSystemWriter(str(checkpoint_dir), thread_count=1),
                     planner=MCoreSavePlanner(flatten_state_dict=False))

    return InProcessTorchDistSave("torch_dist", 1)


def save(folder: str | Path, checkpoint: dict[str, Any], model: torch.nn.Module,
         optimizer: torch.optim.Optimizer, on_cpu: bool) -> None:
    """Write Lightning's ``checkpoint`` dict with the model and AdamW state as megatron sharded tensors.

    Collective: every rank calls it. The optimizer's scalar step count and param-group
    hyperparameters go to the common part.
    """
    from megatron.core import dist_checkpointing

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model_sharded = model_sharded_state(model)
    steps = {float(s["step"]) for s in optimizer.state.values() if "step" in s}
    state = {k: v for k, v in checkpoint.items() if k not in ("state_dict", "optimizer_states")}
    state["state_dict"] = {f"model.{k}": v for k, v in model_sharded.items()}
    state["optimizer"] = {
        "moments": optimizer_sharded_state(model, model_sharded, optimizer),
        "step": max(steps, default=0.0),
        "param_groups": [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups],
    }
    dist_checkpointing.save(state, str(folder), sharded_strategy=_in_process_strategy() if on_cpu else None)


def load(folder: str | Path, model: torch.nn.Module) -> dict[str, Any]:
    """Read a checkpoint into this rank's layout: Lightning's dict with ``state_dict`` (this rank's
    weight shards, LightningModule names) and ``optimizer_states[0]`` (moments by parameter name)."""
    from megatron.core import dist_checkpointing

    model_sharded = model_sharded_state(model)
    template = {
        "state_dict": {f"model.{k}": v for k, v in model_sharded.items()},
        "optimizer": {"moments": optimizer_sharded_state(model, model_sharded, None)},
    }
    loaded = dist_checkpointing.load(template, str(folder))
    loaded["optimizer_states"] = [loaded.pop("optimizer")]  # where Lightning looks for optimizer state
    return loaded


def restore_optimizer(optimizer: torch.optim.Optimizer, model: torch.nn.Module, saved: dict[str, Any]) -> None:
    """Load the moments, step count and group hyperparameters saved by :func:`save` into ``optimizer``."""
    index = {id(p): i for i, p in enumerate(p for g in optimizer.param_groups for p in g["params"])}
    state_dict = optimizer.state_dict()
    if len(saved["param_groups"]) != len(state_dict["param_groups"]):
        raise RuntimeError("checkpoint optimizer has a different number of parameter groups")
    for group, saved_group in zip(state_dict["param_groups"], saved["param_groups"]):
        group.update(saved_group)
    state_dict["state"] = {
        index[id(param)]: {"step": torch.tensor(saved["step"], dtype=torch.float32),
                           **{m: saved["moments"][f"{m}.{name}"] for m in MOMENTS}}
        for name, param in model.named_parameters()
    }
    optimizer.load_state_dict(state_dict)
