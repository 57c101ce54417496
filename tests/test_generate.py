"""``composer-automl generate``: KV-cached continuation of a prompt by an exported or freshly built model."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from composer_automl.config import ConfigError
from composer_automl.data.tokenizers import ByteTokenizer
from composer_automl.generate.command import GenerateConfig, generate, load_model
from composer_automl.model import HybridLM
from composer_automl.spec import ModelSpec

SPEC = ModelSpec(pattern="AMMA", d_model=32, n_heads=2, n_kv_heads=1, ffn_hidden=64, vocab_size=257, max_seq_len=64)


@pytest.fixture
def exported(tmp_path):
    """An exported folder (model.yaml + model.safetensors) of a seeded random HybridLM."""
    torch.manual_seed(3)
    model = HybridLM(SPEC)
    folder = tmp_path / "export"
    folder.mkdir()
    SPEC.save_yaml(folder / "model.yaml")
    save_file(model.state_dict(), str(folder / "model.safetensors"))
    return folder, model


def test_greedy_generation_of_an_exported_model_equals_uncached_decoding(exported):
    """The command's KV-cached greedy continuation is the uncached one, decoded by the byte tokenizer."""
    folder, model = exported
    config = GenerateConfig(model=str(folder), prompt="def f(", max_new_tokens=12)
    text = generate(config)
    prompt = torch.tensor([list(b"def f(")])
    expected = model.eval().generate(prompt, 12, temperature=0.0, use_cache=False)[0, 6:]
    assert text == ByteTokenizer().decode(expected.numpy())
    assert generate(config) == text
    assert generate(GenerateConfig(model=str(folder), prompt="def f(", max_new_tokens=12, decode="static")) == text


def test_bad_input_is_one_clear_error(tmp_path, exported):
    folder, _ = exported
    with pytest.raises(ConfigError, match="exactly one"):
        GenerateConfig(prompt="x")
    with pytest.raises(ConfigError, match="not an exported model folder"):
        GenerateConfig(model=str(tmp_path), prompt="x")
    with pytest.raises(ConfigError, match="exceeds the model's max_seq_len=64"):
        generate(GenerateConfig(model=str(folder), prompt="x" * 60, max_new_tokens=10))
    with pytest.raises(ConfigError, match="accelerator"):
        GenerateConfig(model=str(folder), prompt="x", accelerator="tpu")
    with pytest.raises(ConfigError, match="^decode=cuda-graph needs accelerator=gpu"):
        GenerateConfig(model=str(folder), prompt="x", decode="cuda-graph")
    with pytest.raises(ConfigError, match="^decode='fast' is not allowed"):
        GenerateConfig(model=str(folder), prompt="x", decode="fast")


def test_cli_prints_prompt_and_continuation(exported):
    folder, _ = exported
    out = subprocess.run([sys.executable, "-m", "composer_automl", "generate", f"model={folder}", "prompt=hello",
                          "max_new_tokens=5"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("hello")
    bad = subprocess.run([sys.executable, "-m", "composer_automl", "generate", "prompt=hello"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: give model=")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_accelerator_gpu_without_cuda_is_one_clear_error_before_loading(exported):
    folder, _ = exported
    with pytest.raises(ConfigError, match="^accelerator=gpu but no CUDA device is visible; use accelerator=cpu$"):
        load_model(GenerateConfig(model=str(folder), prompt="x", accelerator="gpu"))
