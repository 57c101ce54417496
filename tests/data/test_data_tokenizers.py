"""Tokenizer registry: byte round trip, local HF tokenizer.json, bad files."""

from __future__ import annotations

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from composer_automl.config import ConfigError
from composer_automl.data.tokenizers import ByteTokenizer, build_tokenizer


def make_hf_tokenizer(path, eod="<|endoftext|>"):
    """A tiny word-level tokenizer.json written locally (no download)."""
    vocab = {"[UNK]": 0, eod: 1, "hello": 2, "world": 3, "again": 4}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens([eod])
    tok.save(str(path))
    return path


def test_byte_tokenizer_round_trips_unicode_text():
    """Encoding UTF-8 text to byte ids and decoding gives the text back; ids stay below the EOD id 256."""
    tok = ByteTokenizer()
    text = "def f(x):\n    return 'héllo ☃'\n"
    (ids,) = tok.encode_batch([text.encode("utf-8")])
    assert ids.max() < tok.eod_id == 256 and tok.vocab_size == 257
    assert len(ids) == len(text.encode("utf-8"))
    assert tok.decode(np.append(ids, tok.eod_id)) == text


def test_hf_tokenizer_loads_local_file_and_finds_eod(tmp_path):
    """A local tokenizer.json encodes words to its ids and its <|endoftext|> becomes the EOD id."""
    tok = build_tokenizer("hf", str(make_hf_tokenizer(tmp_path / "tokenizer.json")))
    (ids,) = tok.encode_batch([b"hello world again"])
    assert ids.tolist() == [2, 3, 4]
    assert tok.eod_id == 1 and tok.vocab_size == 5
    assert tok.identity.startswith("hf-")


def test_unparsable_tokenizer_file_is_one_clear_error(tmp_path):
    """A tokenizer.json that is not valid raises ConfigError naming data.tokenizer_path."""
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="tokenizer_path.*does not parse"):
        build_tokenizer("hf", str(bad))


def test_missing_tokenizer_file_and_missing_eod_token_are_errors(tmp_path):
    """A missing file, or an eod_token the tokenizer lacks, raise ConfigError."""
    with pytest.raises(ConfigError, match="no such file"):
        build_tokenizer("hf", str(tmp_path / "nope.json"))
    path = make_hf_tokenizer(tmp_path / "tokenizer.json")
    with pytest.raises(ConfigError, match="eod_token"):
        build_tokenizer("hf", str(path), eod_token="</s>")


def test_prepare_with_a_local_hf_tokenizer(tmp_path):
    """prepare() with tokenizer=hf stores the tokenizer's ids, each document ending with its EOD id."""
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    from composer_automl.data.config import DataConfig
    from composer_automl.data.prepare import prepare

    path = make_hf_tokenizer(tmp_path / "tokenizer.json")
    (tmp_path / "in").mkdir()
    for i, text in enumerate(["hello world", "world again", "again hello hello"]):
        (tmp_path / "in" / f"{i}.txt").write_text(text)
    data = prepare(DataConfig(source=str(tmp_path / "in"), tokenizer="hf", tokenizer_path=str(path),
                              cache_dir=str(tmp_path / "c"), valid_fraction=0.34, progress=False))
    assert data.meta["vocab_size"] == 5 and data.meta["eod_id"] == 1
    docs = [IndexedDataset(data.prefix(s)) for s in ("train", "valid")]
    stored = sorted(ds[i].tolist() for ds in docs for i in range(len(ds)))
    assert stored == sorted([[2, 3, 1], [3, 4, 1], [4, 2, 2, 1]])
