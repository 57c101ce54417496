"""Weight mapping between :class:`HybridLM` and its megatron-core tensor-parallel twin.

Two layout differences matter, besides the names:

* attention ``qkv_proj`` rows are ``[q; k; v]``; megatron's ``linear_qkv`` rows are
  grouped per KV head — ``[q(group 0) k0 v0 | q(group 1) k1 v1 | …]`` — so that a
  contiguous row shard holds whole query groups;
* SwiGLU ``gate_up_proj`` rows are ``[gate; up]``; megatron chunks each rank's
  *local* ``linear_fc1`` output in two, so rank r holds ``[gate_r; up_r]``.

Everything here works on plain state dicts: ``hybrid_to_parallel`` gives one
rank's shard, ``parallel_to_hybrid`` rebuilds the HybridLM weights from all shards.
With Transformer Engine layers (``impl="te"``) each RMSNorm weight lives in the linear
layer it feeds (``linear_qkv.layer_norm_weight``, ``linear_fc1.layer_norm_weight``).
"""

from __future__ import annotations

import torch

from composer_automl.spec import ModelSpec

Tensor = torch.Tensor
StateDict = dict[str, Tensor]

COLUMN_PARALLEL = ("word_embeddings.weight", "linear_qkv.weight", "linear_fc1.weight", "output_layer.weight")
"""Megatron weights split along rows (output features / vocabulary) across TP ranks."""
ROW_PARALLEL = ("linear_proj.weight", "linear_fc2.weight")
"""Megatron weights split along columns (input features) across TP ranks."""


def hybrid_names(spec: ModelSpec, impl: str = "local") -> dict[str, str]:
    """Megatron parameter name → HybridLM parameter name, for every weight of ``spec`` (``impl``: the
    parallel model's layer implementation, ``local`` or ``te``)."""
    te = impl == "te"
    names = {"embedding.word_embeddings.weight": "embed.weight",
             "decoder.final_layernorm.weight": "final_norm.weight"}
    for i, kind in enumerate(spec.pattern):
        ours, theirs = f"layers.{i}", f"decoder.layers.{i}"
        if kind == "A":
            norm = "self_attention.linear_qkv.layer_norm_weight" if te else "input_layernorm.weight"
            names[f"{theirs}.{norm}"] = f"{ours}.norm.weight"
            names[f"{theirs}.self_attention.linear_qkv.weight"] = f"{ours}.mixer.qkv_proj.weight"
            names[f"{theirs}.self_attention.linear_proj.weight"] = f"{ours}.mixer.out_proj.weight"
        else:
            norm = "mlp.linear_fc1.layer_norm_weight" if te else "pre_mlp_layernorm.weight"
            names[f"{theirs}.{norm}"] = f"{ours}.norm.weight"
            names[f"{theirs}.mlp.linear_fc1.weight"] = f"{ours}.mixer.gate_up_proj.weight"
            names[f"{theirs}.mlp.linear_fc2.weight"] = f"{ours}.mixer.down_proj.weight"
    if not spec.tie_embeddings:
        names["output_layer.weight"] = "lm_head.weight"
    return names


def impl_renames(spec: ModelSpec, impl: str) -> dict[str, str]:
    """Parameter name in the ``local`` model → its name in an ``impl`` model, where they differ."""
    local = {ours: theirs for theirs, ours in hybrid_names(spec).items()}
    other = {ours: theirs for theirs, ours in hybrid_names(spec, impl).items()}
    return {local[name]: other[name] for name in local if local[name] != other[name]}


def _interleave_qkv(qkv: Tensor, spec: ModelSpec) -> Tensor:
    """[q; k; v] rows → per-query-group [q_g k_g v_g] rows."""
    hd, groups = spec.head_dim, spec.n_kv_heads
    q, k, v = qkv.split([spec.n_heads * hd, groups * hd, groups * hd], dim=0)
    d = qkv.shape[1]
    grouped = torch.cat([q.reshape(groups, -1, d), k.reshape(groups, hd, d), v.reshape(groups, hd, d)], dim=1)
    return grouped.reshape(-1, d)


def _deinterleave_qkv(qkv: Tensor, spec: ModelSpec) -> Tensor:
    """Inverse of :func:`_interleave_qkv`."""
    hd, groups = spec.head_dim, spec.n_kv_heads
    d = qkv.shape[1]
    q, k, v = qkv.reshape(groups, -1, d).split([spec.n_heads // groups * hd, hd, hd], dim=1)
    return torch.cat([q.reshape(-1, d), k.reshape(-1, d), v.reshape(-1, d)], dim=0)


def _shard(name: str, full: Tensor, tp: int, rank: int) -> Tensor:
    if name.endswith("linear_fc1.weight"):
        gate, up = full.chunk(2, dim=0)
        return torch.cat([gate.chunk(tp, dim=0)[rank], up.chunk(tp, dim=0)[rank]], dim=0)
    if name.endswith(COLUMN_PARALLEL):
        return full.chunk(tp, dim=0)[rank]
    if name.endswith(ROW_PARALLEL):
        return full.chunk(tp, dim=1)[rank]
    return full  # replicated (norms)


def _unshard(name: str, shards: list[Tensor]) -> Tensor:
    if name.endswith("linear_fc1.weight"):
        halves = [s.chunk(2, dim=0) for s in shards]
        return torch.cat([torch.cat([h[0] for h in halves]), torch.cat([h[1] for h in halves])], dim=0)
    if name.endswith(COLUMN_PARALLEL):
        return torch.cat(shards, dim=0)
    if name.endswith(ROW_PARALLEL):
        return torch.cat(shards, dim=1)
    return shards[0]


def hybrid_to_parallel(hybrid: StateDict, spec: ModelSpec, tp: int, rank: int, impl: str = "local") -> StateDict:
    """TP rank ``rank``'s megatron state dict (weights only) from a HybridLM state dict."""
    out = {}
    for theirs, ours in hybrid_names(spec, impl).items():
        full = hybrid[ours].detach()
        if theirs.endswith("linear_qkv.weight"):
            full = _interleave_qkv(full, spec)
        out[theirs] = _shard(theirs, full, tp, rank).clone()
    return out


def parallel_to_hybrid(shards: list[StateDict], spec: ModelSpec, impl: str = "local") -> StateDict:
    """HybridLM state dict from every TP rank's megatron state dict (in rank order)."""
    out = {}
    for theirs, ours in hybrid_names(spec, impl).items():
        full = _unshard(theirs, [s[theirs].detach() for s in shards])
        if theirs.endswith("linear_qkv.weight"):
            full = _deinterleave_qkv(full, spec)
        out[ours] = full.clone()
    return out


def load_hybrid_weights(model: torch.nn.Module, hybrid: StateDict, spec: ModelSpec, impl: str = "local") -> None:
    """Copy HybridLM weights into this rank's shard of the parallel model (in place)."""
    from megatron.core import parallel_state

    tp = parallel_state.get_tensor_model_parallel_world_size()
    rank = parallel_state.get_tensor_model_parallel_rank()
    local = hybrid_to_parallel(hybrid, spec, tp, rank, impl)
    missing, unexpected = model.load_state_dict(local, strict=False)
    missing = [k for k in missing if not k.endswith("_extra_state")]
    if missing or unexpected:
        raise RuntimeError(f"weight mapping mismatch: missing {missing}, unexpected {unexpected}")


def gather_to_hybrid(local: StateDict, spec: ModelSpec, impl: str = "local") -> StateDict:
    """All-gather this rank's megatron-named tensors over the TP group; return them in HybridLM layout.

    Works for weights (``model.state_dict()``) and equally for gradients
    (``{name: p.grad for name, p in model.named_parameters()}``).
    """
    import torch.distributed as dist
    from megatron.core import parallel_state

    names = hybrid_names(spec, impl)
    local = {k: v.detach().cpu() for k, v in local.items() if k in names}
    shards: list[StateDict] = [{} for _ in range(parallel_state.get_tensor_model_parallel_world_size())]
    dist.all_gather_object(shards, local, group=parallel_state.get_tensor_model_parallel_group())
    return parallel_to_hybrid(shards, spec, impl)
