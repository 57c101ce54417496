"""prepare(): megatron indexed datasets written and read back, split by document, cached by path/size/mtime."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from megatron.core.datasets.indexed_dataset import IndexedDataset

from composer_automl.config import ConfigError
from composer_automl.data.config import DataConfig
from composer_automl.data.prepare import prepare, split_mask
from composer_automl.data.tokenizers import ByteTokenizer


def write_docs(folder, texts):
    folder.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(texts):
        (folder / f"doc{i:03d}.txt").write_text(text)
    return folder


def docs_of(prefix):
    """Every document of an indexed dataset, decoded by the byte tokenizer (EOD dropped)."""
    dataset = IndexedDataset(prefix)
    bounds = dataset.document_indices
    return [ByteTokenizer().decode(np.concatenate(dataset[int(bounds[d]):int(bounds[d + 1])]))
            for d in range(len(bounds) - 1)]


def test_written_dataset_is_read_back_by_megatron(tmp_path):
    """megatron-core's IndexedDataset reads our train/valid files: every document comes back exactly, ending in EOD."""
    texts = [f"document number {i}\n" * (i + 1) for i in range(20)]
    cfg = DataConfig(source=str(write_docs(tmp_path / "in", texts)), cache_dir=str(tmp_path / "cache"),
                     valid_fraction=0.2, progress=False)
    data = prepare(cfg)
    train, valid = docs_of(data.prefix("train")), docs_of(data.prefix("valid"))
    assert sorted(train + valid) == sorted(texts)
    for split in ("train", "valid"):
        ds = IndexedDataset(data.prefix(split))
        assert all(int(ds[i][-1]) == 256 for i in range(len(ds)))  # every document ends with EOD
        assert ds.index.dtype == np.uint16
    meta = json.loads((data.path / "meta.json").read_text())
    assert meta["vocab_size"] == 257 and meta["n_documents"] == 20
    assert meta["n_tokens"] == sum(len(t.encode()) + 1 for t in texts)


def test_split_is_disjoint_by_document_and_deterministic(tmp_path):
    """No document is in both splits; both are non-empty; the same seed gives the same split."""
    texts = [f"unique text {i} " + "x" * i for i in range(40)]
    src = write_docs(tmp_path / "in", texts)
    first = prepare(DataConfig(source=str(src), cache_dir=str(tmp_path / "c1"), valid_fraction=0.25, progress=False))
    again = prepare(DataConfig(source=str(src), cache_dir=str(tmp_path / "c2"), valid_fraction=0.25, progress=False))
    train, valid = set(docs_of(first.prefix("train"))), set(docs_of(first.prefix("valid")))
    assert train and valid and not train & valid and len(train | valid) == 40
    assert set(docs_of(again.prefix("valid"))) == valid
    mask = split_mask(1000, 0.1, seed=1)
    assert 50 < mask.sum() < 150 and not np.array_equal(mask, split_mask(1000, 0.1, seed=2))


def test_cache_reused_when_unchanged_and_rebuilt_when_changed(tmp_path):
    """Same inputs → same folder, reused untouched; an edited file or another split seed → a new folder."""
    src = write_docs(tmp_path / "in", [f"text {i}\n" for i in range(10)])
    cfg = DataConfig(source=str(src), cache_dir=str(tmp_path / "cache"), progress=False)
    first = prepare(cfg)
    mtime = (first.path / "train.bin").stat().st_mtime_ns
    second = prepare(cfg)
    assert second.reused and second.path == first.path
    assert (second.path / "train.bin").stat().st_mtime_ns == mtime
    (src / "doc003.txt").write_text("changed content\n")
    third = prepare(cfg)
    assert not third.reused and third.path != first.path
    reseeded = prepare(DataConfig(source=str(src), cache_dir=str(tmp_path / "cache"), split_seed=7, progress=False))
    assert reseeded.path not in (first.path, third.path)
    assert not list((tmp_path / "cache").glob(".tmp-*"))
    prepared = prepare(DataConfig(source=str(first.path), progress=False))  # a prepared folder is used as is
    assert prepared.reused and prepared.path == first.path and prepared.meta == first.meta


def test_jsonl_indexed_and_token_inputs(tmp_path):
    """JSONL (custom field), an existing indexed dataset and a raw token file all prepare to the same documents."""
    texts = [f"line {i} says hi\n" for i in range(12)]
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("".join(json.dumps({"body": t, "id": i}) + "\n" for i, t in enumerate(texts)))
    from_jsonl = prepare(DataConfig(source=str(jsonl), jsonl_field="body", cache_dir=str(tmp_path / "c"),
                                    progress=False))
    assert sorted(docs_of(from_jsonl.prefix("train")) + docs_of(from_jsonl.prefix("valid"))) == sorted(texts)

    from_indexed = prepare(DataConfig(source=from_jsonl.prefix("train"), cache_dir=str(tmp_path / "c"), progress=False))
    assert from_indexed.meta["kind"] == "indexed"
    assert sorted(docs_of(from_indexed.prefix("train")) + docs_of(from_indexed.prefix("valid"))) == \
        sorted(docs_of(from_jsonl.prefix("train")))

    tokens = np.concatenate([np.append(np.frombuffer(t.encode(), np.uint8), 256) for t in texts]).astype(np.uint16)
    raw = tmp_path / "tokens.bin"
    tokens.tofile(raw)
    from_tokens = prepare(DataConfig(source=str(raw), cache_dir=str(tmp_path / "c"), progress=False))
    assert from_tokens.meta["kind"] == "tokens" and from_tokens.meta["n_tokens"] == tokens.size
    assert sorted(docs_of(from_tokens.prefix("train")) + docs_of(from_tokens.prefix("valid"))) == sorted(texts)


def test_default_stdlib_corpus_is_found_offline(tmp_path):
    """The embedded corpus (standard-library sources) prepares without any download, capped by max_bytes."""
    data = prepare(DataConfig(source="stdlib", max_bytes=200_000, cache_dir=str(tmp_path), progress=False))
    assert data.meta["kind"] == "stdlib"
    assert 0 < data.meta["input_bytes"] <= 200_000
    assert data.meta["splits"]["valid"]["n_documents"] >= 1
    train = IndexedDataset(data.prefix("train"))  # keep it alive: items are views into its mmap
    assert "def " in ByteTokenizer().decode(train[0])


def write_token_corpus(path, n_tokens=20_000, doc_len=100, seed=0):
    """A raw uint16 token file of byte ids with an end-of-document id (256) every ``doc_len`` tokens."""
    tokens = np.random.default_rng(seed).integers(0, 256, n_tokens).astype(np.uint16)
    tokens[doc_len - 1 :: doc_len] = 256
    tokens.tofile(path)
    return path


def overwrite_keeping_stat(path, tokens):
    """Replace a file's bytes with ``tokens`` (same size) and restore its modification time."""
    before = path.stat()
    assert tokens.nbytes == before.st_size
    tokens.tofile(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_cached_dataset_is_found_without_reading_the_corpus(tmp_path):
    """The default key is path/size/mtime: after the first prepare, a file whose bytes changed (to ids
    outside the vocabulary) but whose size and mtime did not still hits the cache, so no byte was read
    (neither hashed nor vocabulary-checked); with data.content_hash the bytes are read and checked,
    and a new mtime alone also rebuilds."""
    source = write_token_corpus(tmp_path / "train.bin")
    cfg = DataConfig(source=str(source), cache_dir=str(tmp_path / "cache"), progress=False)
    first = prepare(cfg)
    assert not first.reused
    overwrite_keeping_stat(source, np.full(20_000, 60_000, dtype=np.uint16))
    again = prepare(cfg)
    assert again.reused and again.path == first.path
    with pytest.raises(ConfigError, match=r"token ids span \[60000, 60000\]"):
        prepare(DataConfig(source=str(source), cache_dir=str(tmp_path / "cache"), content_hash=True, progress=False))
    os.utime(source)  # touched: a new mtime is a new key, so the dataset is rebuilt and checked
    with pytest.raises(ConfigError, match="token ids span"):
        prepare(cfg)
    assert not list((tmp_path / "cache").glob(".tmp-*")) and len(list((tmp_path / "cache").iterdir())) == 1


def test_content_hash_key_ignores_mtime(tmp_path):
    """data.content_hash keys on the bytes: touching the file reuses the folder; a changed byte rebuilds it."""
    source = write_token_corpus(tmp_path / "train.bin")
    cfg = DataConfig(source=str(source), cache_dir=str(tmp_path / "cache"), content_hash=True, progress=False)
    first = prepare(cfg)
    os.utime(source, ns=(0, 10**18))
    assert prepare(cfg).path == first.path
    tokens = np.fromfile(source, dtype=np.uint16)
    tokens[0] = (tokens[0] + 1) % 256
    overwrite_keeping_stat(source, tokens)
    rebuilt = prepare(cfg)
    assert not rebuilt.reused and rebuilt.path != first.path
    assert prepare(DataConfig(source=str(source), cache_dir=str(tmp_path / "cache"), progress=False)).path \
        not in (first.path, rebuilt.path)  # the two key kinds never share a folder
