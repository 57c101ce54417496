"""ModelSpec validation, exact parameter counts, FLOPs and KV-cache accounting."""

import random

import pytest

from composer_automl.model import HybridLM
from composer_automl.presets import PRESETS, PUBLISHED_PARAMS, get_preset
from composer_automl.spec import ModelSpec, SpecError


def make_random_spec(rng: random.Random) -> ModelSpec:
    head_dim = rng.choice([2, 4, 8])
    n_kv = rng.choice([1, 2, 3])
    n_heads = n_kv * rng.choice([1, 2, 4])
    layers = "".join(rng.choice("AM") for _ in range(rng.randint(1, 7)))
    return ModelSpec(
        pattern=layers, d_model=n_heads * head_dim, n_heads=n_heads, n_kv_heads=n_kv,
        ffn_hidden=rng.randint(1, 40), vocab_size=rng.randint(2, 70), max_seq_len=16,
        tie_embeddings=rng.random() < 0.5,
    )


def test_num_params_equals_built_model_for_random_specs():
    """num_params() equals sum(p.numel()) of the built HybridLM for 60 seeded random specs."""
    rng = random.Random(1234)
    seen_tied = set()
    for _ in range(60):
        spec = make_random_spec(rng)
        model = HybridLM(spec)
        assert spec.num_params() == sum(p.numel() for p in model.parameters()), spec
        seen_tied.add(spec.tie_embeddings)
    assert seen_tied == {True, False}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_llama_presets_match_published_parameter_counts(name):
    """Llama 3.2 1B/3B in pattern form have exactly the released parameter counts."""
    assert get_preset(name).num_params() == PUBLISHED_PARAMS[name]


def test_target_presets_carry_baseline_widths():
    """1B/3B targets share the Llama 3.2 widths; 350M is about 350M parameters."""
    for target, llama in (("1B", "llama3.2-1B"), ("3B", "llama3.2-3B")):
        assert PRESETS[target].num_params() == PRESETS[llama].num_params()
        assert PRESETS[target].d_model == PRESETS[llama].d_model
    assert 340e6 < PRESETS["350M"].num_params() < 360e6


def test_llama_1b_flops_per_token_formula():
    """flops_per_token = 6·(matmul weights incl. LM head) + 12·n_attn·d_attn·T."""
    spec = get_preset("llama3.2-1B")
    matmul = 16 * (spec.attention_params() + spec.mlp_params()) + spec.vocab_size * spec.d_model
    assert spec.flops_per_token(2048) == 6 * matmul + 12 * 16 * 2048 * 2048
    assert spec.flops_per_token(4096) > spec.flops_per_token(2048)


def test_mlp_only_pattern_has_no_attention_flops_or_kv_cache():
    """Attention terms scale with the number of attention layers only."""
    spec = get_preset("tiny").replace(pattern="MMMM")
    assert spec.kv_cache_bytes(128, 4) == 0
    assert spec.flops_per_token(16) == spec.flops_per_token(4096)


def test_kv_cache_bytes():
    """KV cache = 2·n_attn·n_kv·head_dim·T·B·bytes; Llama 3.2 1B is 32 KiB/token in bf16."""
    spec = get_preset("llama3.2-1B")
    assert spec.kv_cache_bytes(1, 1, "bfloat16") == 2 * 16 * 8 * 64 * 2 == 32 * 1024
    assert spec.kv_cache_bytes(100, 3, "float32") == 2 * 16 * 8 * 64 * 4 * 300
    with pytest.raises(SpecError, match="unknown dtype 'int3'"):
        spec.kv_cache_bytes(1, 1, "int3")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"d_model": 65}, "divisible by n_heads"),
        ({"n_kv_heads": 3}, "must divide n_heads"),
        ({"d_model": 0}, "d_model must be a positive integer"),
        ({"vocab_size": 1.5}, "vocab_size must be a positive integer"),
        ({"n_heads": True}, "n_heads must be a positive integer"),
        ({"pattern": "AXM"}, "ModelSpec.pattern: unknown layer kind"),
        ({"pattern": ""}, "ModelSpec.pattern: empty pattern"),
        ({"rope_theta": 0.0}, "rope_theta"),
        ({"norm_eps": -1.0}, "norm_eps"),
        ({"d_model": 12, "n_heads": 4, "n_kv_heads": 2}, "head_dim=3 must be even"),
    ],
)
def test_invalid_specs_raise_one_clear_error(changes, message):
    """Each invalid field raises SpecError naming it."""
    with pytest.raises(SpecError, match=message):
        get_preset("tiny").replace(**changes)


def test_yaml_round_trip(tmp_path):
    """save_yaml/load_yaml give back an equal spec; unknown keys and missing files fail."""
    spec = get_preset("llama3.2-3B").replace(pattern="2A+4M", tie_embeddings=False)
    spec.save_yaml(tmp_path / "m.yaml", extra={"params": spec.num_params()})
    assert ModelSpec.load_yaml(tmp_path / "m.yaml") == spec
    (tmp_path / "bad.yaml").write_text("model:\n  d_modle: 3\n")
    with pytest.raises(SpecError, match=r"unknown ModelSpec field\(s\) \['d_modle'\]"):
        ModelSpec.load_yaml(tmp_path / "bad.yaml")
    with pytest.raises(SpecError, match="does not exist"):
        ModelSpec.load_yaml(tmp_path / "missing.yaml")
    with pytest.raises(SpecError, match="missing field"):
        ModelSpec.from_dict({"pattern": "AM"})


def test_unknown_preset_lists_allowed_names():
    """get_preset names the shipped presets when asked for an unknown one."""
    with pytest.raises(SpecError, match="allowed: .*llama3.2-1B"):
        get_preset("llama-7B")
