"""``composer-automl export``: native and hf formats from a native folder, tokenizers carried, bad input refused."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import torch

from composer_automl.config import ConfigError
from composer_automl.data.tokenizers import ByteTokenizer, build_tokenizer
from composer_automl.export.command import ExportConfig, check
from composer_automl.export.command import main as export_main
from composer_automl.export.files import open_export
from composer_automl.spec import ModelSpec
from exports import SPEC, TEXTS, bare_export, make_bpe_tokenizer, make_export

transformers = pytest.importorskip("transformers")


def test_byte_level_tokenizer_json_encodes_exactly_like_the_byte_tokenizer():
    """The tokenizer.json written for byte-tokenized models gives the byte ids of any text (every byte value,
    multi-byte characters), 256 for <|endoftext|>, and decodes back to the text."""
    from composer_automl.export.hf import byte_level_tokenizer

    tokenizer = byte_level_tokenizer()
    text = "".join(TEXTS) + "".join(chr(i) for i in range(1, 600)) + "\t\r\n  "
    expected = ByteTokenizer().encode_batch([text.encode("utf-8")])[0].tolist()
    assert tokenizer.encode(text).ids == expected
    assert tokenizer.decode(expected) == text
    assert tokenizer.token_to_id("<|endoftext|>") == ByteTokenizer.eod_id


def test_hf_config_carries_every_model_spec_field_under_its_name():
    """model.py and HybridConfig (which cannot import ModelSpec: they travel in hf folders) declare exactly
    ModelSpec's fields, the usual transformers aliases read them, and the layers build from the config alone."""
    from composer_automl.export.hf import hf_config
    from composer_automl.model import HybridLM

    from composer_automl.model import Architecture

    config = hf_config(SPEC, {}, 256)
    spec_fields = {f.name for f in dataclasses.fields(ModelSpec)}
    assert set(Architecture.__annotations__) == spec_fields  # what the layers read: ModelSpec's fields, no more
    assert spec_fields <= {f.name for f in dataclasses.fields(type(config))}
    assert (config.hidden_size, config.num_attention_heads, config.num_key_value_heads, config.intermediate_size,
            config.max_position_embeddings, config.num_hidden_layers) == (32, 2, 1, 64, 64, 4)
    assert sum(p.numel() for p in HybridLM(config).parameters()) == SPEC.num_params()


def test_native_to_hf_conversion_keeps_weights_and_tokenizer(tmp_path):
    """A native export converts to hf: transformers' model (registered auto class) gives HybridLM's logits
    and, KV-cached, its greedy tokens; AutoTokenizer gives the byte ids; open_export reads the hf folder back
    to the same weights and spec."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import composer_automl.modeling_hybrid  # noqa: F401  (registers composer-hybrid with the auto classes)

    native, model = make_export(tmp_path, "native")
    hf = tmp_path / "hf"
    export_main([f"ckpt={native}", f"out={hf}", "format=hf"])
    assert {"config.json", "model.safetensors", "modeling_hybrid.py", "model.py", "tokenizer.json",
            "tokenizer_config.json"} <= {p.name for p in hf.iterdir()}
    config = json.loads((hf / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_hybrid.HybridForCausalLM"
    assert config["export_info"]["tokenizer"]["identity"] == "byte-v1"

    loaded = AutoModelForCausalLM.from_pretrained(hf).eval()
    idx = torch.randint(0, 257, (2, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(loaded(idx).logits, model(idx), rtol=1e-5, atol=1e-5)
    assert AutoTokenizer.from_pretrained(hf)("héllo ☃").input_ids == list("héllo ☃".encode())

    prompt = idx[:1, :10]  # generate(): HybridLM's greedy tokens, through its KV cache of the attention layers only
    out = loaded.generate(prompt, max_new_tokens=8, do_sample=False, return_dict_in_generate=True)
    n = out.sequences.shape[1]  # transformers stops early only at the end-of-document token
    assert torch.equal(out.sequences, model.generate(prompt, 8, temperature=0.0)[:, :n])
    assert out.cache.length == n - 1 and out.cache.nbytes == SPEC.kv_cache_bytes(10 + 8 - 1, dtype="float32")

    back = open_export(hf)
    assert back.format == "hf" and back.spec == SPEC
    for name, tensor in model.state_dict().items():
        assert torch.equal(back.state_dict()[name], tensor), name


def test_hf_tokenizer_travels_verbatim_natively_and_encodes_alike_in_transformers(tmp_path):
    """tokenizer=hf: the native export holds the tokenizer.json byte for byte; the hf export's AutoTokenizer
    and our HFTokenizer give the same ids; both record the training tokenizer's identity and EOD token."""
    from transformers import AutoTokenizer

    path = make_bpe_tokenizer(tmp_path / "tokenizer.json")
    spec = SPEC.replace(vocab_size=320)
    args = ["tokenizer=hf", f"tokenizer_path={path}"]
    native, _ = make_export(tmp_path, "native", spec, tokenizer=args)
    hf, _ = make_export(tmp_path, "hf", spec, fmt="hf", tokenizer=args)
    assert (native / "tokenizer.json").read_bytes() == path.read_bytes()
    ours = build_tokenizer("hf", str(path))
    for folder in (native, hf):
        exported = open_export(folder)
        assert exported.tokenizer_info == {"name": "hf", "identity": ours.identity, "eod_token": "<|endoftext|>"}
        text = TEXTS[3] + TEXTS[0]
        assert exported.tokenizer().encode_batch([text.encode()])[0].tolist() == \
            ours.encode_batch([text.encode()])[0].tolist()
    text = "".join(TEXTS)
    assert AutoTokenizer.from_pretrained(hf)(text).input_ids == ours.encode_batch([text.encode()])[0].tolist()
    assert json.loads((hf / "config.json").read_text())["eos_token_id"] == ours.eod_id


@pytest.mark.parametrize("case", ["out_exists", "hf_folder", "tokenizer_conflict", "vocab_too_small", "bad_format",
                                  "truncated_weights"])
def test_bad_input_is_one_error_line_naming_the_key(tmp_path, capsys, case):
    """Each bad input: exit 2, one `error:` line naming the key as typed, no output folder."""
    native, _ = make_export(tmp_path, "native")
    out = tmp_path / "out"
    args, expected = {
        "out_exists": ([f"ckpt={native}", f"out={native}"], "out="),
        "hf_folder": ([f"ckpt={make_export(tmp_path, 'hf', fmt='hf')[0]}", f"out={out}", "format=hf"],
                      "is not a complete"),
        "tokenizer_conflict": ([f"ckpt={native}", f"out={out}", "tokenizer=byte"], "drop tokenizer="),
        "vocab_too_small": ([f"ckpt={bare_export(tmp_path / 'small', SPEC.replace(vocab_size=200))[0]}",
                             f"out={out}"], "tokenizer=byte has 257 ids"),
        "bad_format": ([f"ckpt={native}", f"out={out}", "format=gguf"], "format='gguf' is not allowed"),
        "truncated_weights": ([f"ckpt={native}", f"out={out}", "format=hf"], "model.safetensors cannot be read"),
    }[case]
    if case == "truncated_weights":  # a copy cut short: the weights' header promises more bytes than there are
        with (native / "model.safetensors").open("r+b") as fh:
            fh.truncate(100)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        export_main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("error:") == 1 and expected in err, err
    assert not out.exists()


def test_format_hf_without_transformers_is_one_error_before_work(tmp_path):
    """Without the [eval] extra, format=hf stops with one error line naming format=hf and the extra; no folder."""
    native, _ = make_export(tmp_path, "native")
    code = ("import sys; sys.modules['transformers'] = None\n"
            "from composer_automl.cli import main; main(sys.argv[1:])")
    done = subprocess.run([sys.executable, "-c", code, "export", f"ckpt={native}", f"out={tmp_path / 'out'}",
                           "format=hf"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == ["error: format=hf needs the Hugging Face libraries: "
                                                "pip install 'composer-automl[eval]'"]
    assert not (tmp_path / "out").exists()


def test_check_reads_no_weights_and_native_needs_no_tokenizer_argument(tmp_path):
    """check() validates from the folder's metadata alone; an old export gets the byte tokenizer by default."""
    bare, _ = bare_export(tmp_path / "bare")
    source = check(ExportConfig(ckpt=str(bare), out=str(tmp_path / "x")))
    assert source.tokenizer.name == "byte" and source.spec == SPEC and source.tokenizer_file is None
    with pytest.raises(ConfigError, match="^tokenizer_path is required with tokenizer=hf"):
        ExportConfig(ckpt=str(bare), out=str(tmp_path / "x"), tokenizer="hf")
