"""Kernel choice of the tensor-parallel model: ``parallel.impl`` / ``parallel.fusions`` logic on CPU."""

from __future__ import annotations

import pytest

from composer_automl.config import ConfigError
from composer_automl.parallel.kernels import Kernels, rope_fusion_available, select_kernels, transformer_engine_error
from composer_automl.parallel.model import transformer_config
from composer_automl.parallel.weights import hybrid_names, impl_renames
from composer_automl.presets import get_preset
from tp_world import run_world

FUSION_FLAGS = ("bias_activation_fusion", "bias_dropout_fusion", "apply_rope_fusion", "masked_softmax_fusion",
                "persist_layer_norm")


def test_cpu_runs_never_fuse_and_build_the_unfused_model():
    """On CPU the kernels are local and unfused whatever parallel.fusions says: the model config has every
    fusion flag off, as before the option existed."""
    kernels = select_kernels("local", fusions=True, on_cpu=True)
    assert kernels == Kernels("local", False)
    config = transformer_config(get_preset("tiny"), 1, on_cpu=True, kernels=kernels)
    assert not any(getattr(config, flag) for flag in FUSION_FLAGS)


def test_gpu_runs_fuse_swiglu_and_residual_adds_and_rope_only_where_a_kernel_exists():
    """GPU + parallel.fusions: fused SwiGLU and bias-dropout-add; fused RoPE only if megatron found TE's kernel;
    masked softmax stays off (attention is SDPA / TE fused attention); fusions=false turns all off."""
    flags = select_kernels("local", fusions=True, on_cpu=False).config_flags()
    assert flags["bias_activation_fusion"] and flags["bias_dropout_fusion"]
    assert flags["apply_rope_fusion"] == rope_fusion_available()
    assert not flags["masked_softmax_fusion"] and not flags["persist_layer_norm"]
    assert not any(select_kernels("local", fusions=False, on_cpu=False).config_flags().values())


@pytest.mark.parametrize("impl, on_cpu, message", [
    ("te", True, "parallel.impl=te runs on CUDA only"),
    ("bogus", False, "parallel.impl='bogus' is not allowed"),
])
def test_bad_impl_is_one_clear_error(impl, on_cpu, message):
    with pytest.raises(ConfigError, match=message):
        select_kernels(impl, fusions=True, on_cpu=on_cpu)


@pytest.mark.skipif(transformer_engine_error() is None, reason="Transformer Engine is installed here")
def test_te_without_transformer_engine_names_the_missing_package():
    """A GPU run asking for parallel.impl=te where transformer_engine does not import: one clear error."""
    with pytest.raises(ConfigError, match=r"parallel.impl=te needs Transformer Engine, which is not importable here "
                                          r"\(.*\); install transformer-engine\[pytorch\] or use parallel.impl=local"):
        select_kernels("te", fusions=True, on_cpu=False)


def test_te_weight_names_move_each_norm_into_the_linear_it_feeds():
    """With TE layers an A layer's norm is linear_qkv.layer_norm_weight and an M layer's is
    linear_fc1.layer_norm_weight; every other weight keeps its name, and both maps cover the same
    HybridLM weights."""
    spec = get_preset("tiny").replace(pattern="AMMA")
    assert sorted(hybrid_names(spec, "te").values()) == sorted(hybrid_names(spec).values())
    assert impl_renames(spec, "te") == {
        "decoder.layers.0.input_layernorm.weight": "decoder.layers.0.self_attention.linear_qkv.layer_norm_weight",
        "decoder.layers.1.pre_mlp_layernorm.weight": "decoder.layers.1.mlp.linear_fc1.layer_norm_weight",
        "decoder.layers.2.pre_mlp_layernorm.weight": "decoder.layers.2.mlp.linear_fc1.layer_norm_weight",
        "decoder.layers.3.input_layernorm.weight": "decoder.layers.3.self_attention.linear_qkv.layer_norm_weight",
    }
    assert impl_renames(spec, "local") == {}


def _fused_vs_unfused_loss(rank: int, world_size: int) -> dict:
    """The same weights built with and without megatron's fused kernels (forced on, on CPU): loss and grads."""
    import torch

    from composer_automl.parallel import build_parallel_model, state
    from composer_automl.train.module import masked_mean_loss

    spec = get_preset("tiny")
    state.init_model_parallel(1, on_cpu=True)
    try:
        out = {}
        for name, kernels in (("unfused", Kernels()), ("fused", Kernels("local", fusions=True))):
            torch.manual_seed(0)
            model = build_parallel_model(spec, 1, on_cpu=True, kernels=kernels)
            assert model.config.bias_activation_fusion == model.config.bias_dropout_fusion == kernels.fusions
            idx = torch.arange(64).reshape(2, 32) * 5 % spec.vocab_size
            loss = masked_mean_loss(model, idx[:, :-1], idx[:, 1:])
            loss.backward()
            out[name] = (float(loss), {k: p.grad.clone() for k, p in model.named_parameters()})
        return out
    finally:
        state.destroy_model_parallel()


@pytest.mark.slow  # default-run time (CI < 10 min); parallel.fusions is off by default
@pytest.mark.timeout(300)  # megatron's fused kernels are torch.compile'd (for the CPU here): ~20 s
def test_fused_kernels_compute_the_unfused_loss_and_gradients():
    """megatron's fused SwiGLU and bias-dropout-add (run through the same config fields, here on CPU)
    give the unfused model's loss and gradients for the same initial weights."""
    [result] = run_world(_fused_vs_unfused_loss, 1, timeout=290)
    (loss_u, grads_u), (loss_f, grads_f) = result["unfused"], result["fused"]
    assert loss_f == pytest.approx(loss_u, rel=1e-5)
    for name, grad in grads_u.items():
        assert grads_f[name].allclose(grad, rtol=1e-4, atol=1e-6), name


def _cuda_losses(rank: int, world_size: int, impls: tuple[str, ...]) -> dict:
    """bf16 loss of the same HybridLM weights in each kernel choice of ``impls`` (``local``,
    ``local+fused``, ``te``), on this rank's CUDA device; plus TE's parameter names."""
    import torch

    from composer_automl.model import HybridLM
    from composer_automl.parallel import build_parallel_model, load_hybrid_weights, state
    from composer_automl.train.module import masked_mean_loss

    spec = get_preset("tiny")
    torch.cuda.set_device(0)
    state.init_model_parallel(1, on_cpu=False)
    try:
        torch.manual_seed(0)
        weights = HybridLM(spec).state_dict()
        idx = (torch.arange(256, device="cuda").reshape(4, 64) * 7) % spec.vocab_size
        out = {}
        for name in impls:
            impl, fused = name.split("+")[0], name.endswith("+fused")
            kernels = select_kernels(impl, fusions=fused, on_cpu=False)
            model = build_parallel_model(spec, 1, on_cpu=False, kernels=kernels).cuda()
            load_hybrid_weights(model, weights, spec, impl)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out[name] = float(masked_mean_loss(model, idx[:, :-1], idx[:, 1:]))
            out[f"{name}.names"] = sorted(model.state_dict())
        return out
    finally:
        state.destroy_model_parallel()


@pytest.mark.gpu
@pytest.mark.timeout(300)
def test_fused_and_te_kernels_compute_the_local_loss_on_cuda():
    """On a GPU the fused local model, and the TE model when Transformer Engine imports, give the unfused
    local model's bf16 loss for the same HybridLM weights (TE weights named as hybrid_names says)."""
    impls = ("local", "local+fused") + (() if transformer_engine_error() else ("te",))
    [out] = run_world(_cuda_losses, 1, impls, timeout=290)
    for name in impls[1:]:
        assert out[name] == pytest.approx(out["local"], rel=2e-2), name
    if "te" in impls:
        assert set(hybrid_names(get_preset("tiny"), "te")) <= set(out["te.names"])
