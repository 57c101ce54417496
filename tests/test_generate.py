"""``composer-automl generate``: KV-cached continuation of a prompt by an exported or freshly built model."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from composer_automl.config import ConfigError
from composer_automl.data.tokenizers import ByteTokenizer
from composer_automl.generate.command import GenerateConfig, generate, load_model, load_tokenizer, main
from composer_automl.model import HybridLM
from composer_automl.spec import ModelSpec
from cli_runs import MALFORMED_SPEC_FILES
from exports import make_bpe_tokenizer, make_export
from test_readme import readme_commands

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


def _bare(folder, spec: ModelSpec):
    torch.manual_seed(0)
    folder.mkdir()
    spec.save_yaml(folder / "model.yaml")
    save_file(HybridLM(spec).state_dict(), str(folder / "model.safetensors"))
    return folder


@pytest.mark.parametrize("source", ["conf", "readme"])
def test_the_usage_example_runs_from_a_shell_as_written(tmp_path, source):
    """The usage line of conf/generate.yaml (and the README's generate line), typed into bash with the
    placeholder filled and the optional parts left out, continues the quoted prompt (exit 0)."""
    root = Path(__file__).resolve().parents[1]
    if source == "conf":
        line = (root / "composer_automl" / "conf" / "generate.yaml").read_text().splitlines()[0].removeprefix("# ")
    else:
        [line] = [c for c in readme_commands() if c.startswith("composer-automl generate")]
    line = re.sub(r"\s*\[[^\]]*\]", "", line)
    assert "def main(" in line
    folder = _bare(tmp_path / "export", SPEC.replace(max_seq_len=128))
    line = line.replace("EXPORTED_FOLDER", str(folder)).replace("model=my_model", f"model={folder}")
    line = line.replace("composer-automl", f"{shlex.quote(sys.executable)} -m composer_automl", 1)
    done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("def main(")


@pytest.mark.parametrize("case", sorted(MALFORMED_SPEC_FILES))
def test_a_malformed_spec_file_is_one_error_naming_spec(tmp_path, capsys, case):
    text, problem = MALFORMED_SPEC_FILES[case]
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    with pytest.raises(SystemExit) as exit_info:
        main([f"spec={spec}", "prompt=x"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.strip().splitlines() == [f"error: spec={str(spec)!r}: {problem.format(f=spec)}"]


def test_an_hf_tokenizer_without_its_file_is_one_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["spec=tiny", "prompt=x", "tokenizer=hf"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: tokenizer_path is required with tokenizer=hf (a local tokenizer.json)"]


def test_ids_the_tokenizer_cannot_show_are_said(tmp_path, capsys):
    """A model whose vocabulary is larger than the byte tokenizer's (random weights pick ids past 256) prints what it
    can and says how many generated ids had no text, instead of silently printing the prompt alone."""
    spec = tmp_path / "wide.yaml"
    SPEC.replace(vocab_size=4096, tie_embeddings=False).save_yaml(spec)  # a random head: ids anywhere
    text = generate(GenerateConfig(spec=str(spec), prompt="def f(", max_new_tokens=8))
    err = capsys.readouterr().err
    unshown = int(re.fullmatch(r"note: (\d) of the 8 generated ids lie beyond the byte tokenizer's 257 ids \(the "
                               r"model's vocab_size is 4096\) and have no text: random weights, or a model trained "
                               r"with another tokenizer\n", err)[1])
    assert unshown >= 1 and len(text.encode()) <= 8 - unshown


def test_an_export_is_read_with_the_tokenizer_it_records(tmp_path):
    """An export made with an hf tokenizer is generated from with that tokenizer when none is named."""
    bpe = make_bpe_tokenizer(tmp_path / "tokenizer.json")
    folder, _ = make_export(tmp_path, "hf-tok", SPEC.replace(vocab_size=304), tokenizer=["tokenizer=hf",
                                                                                        f"tokenizer_path={bpe}"])
    config = GenerateConfig(model=str(folder), prompt="def add(a, b):", max_new_tokens=4)
    assert load_tokenizer(config).name == "hf"
    assert load_tokenizer(GenerateConfig(model=str(folder), prompt="x", tokenizer="byte")).name == "byte"
