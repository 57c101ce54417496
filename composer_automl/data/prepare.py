"""Tokenize a corpus into megatron-core indexed datasets, split by document, cached by input fingerprint.

On-disk layout of a prepared dataset (``<cache_dir>/<name>-<key16>/``)::

    train.bin  train.idx    # megatron-core IndexedDataset, prefix ".../train"
    valid.bin  valid.idx    # prefix ".../valid"
    meta.json               # vocab_size, eod_id, tokenizer, n_documents, n_tokens, per-split counts

Each document is one sequence (and one megatron "document") ending with the
tokenizer's end-of-document id; ids are stored as ``uint16`` when the vocabulary
has fewer than 65500 entries, else ``int32`` (megatron's own rule). The same
prefixes feed megatron's ``GPTDataset`` / our tensor-parallel training.

The key hashes the inputs' paths, sizes and modification times (their bytes with
``data.content_hash``), the tokenizer's identity and the split settings, so preparing
again with unchanged inputs reuses the folder in O(1) of the corpus size (no byte of
it is read), and any change builds a new one. A build writes into a hidden temporary folder and
renames it into place at the end: a folder with ``meta.json`` is always complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from composer_automl.config import ConfigError
from composer_automl.data.config import DataConfig
from composer_automl.data.corpus import Corpus, open_corpus
from composer_automl.data.megatron_io import indexed_dataset
from composer_automl.data.tokenizers import Tokenizer, build_tokenizer
from composer_automl.files import check_writable

FORMAT_VERSION = 1
"""Bump when the on-disk layout or the split rule changes (invalidates every cache entry)."""
SPLITS = ("train", "valid")


@dataclass(frozen=True)
class PreparedData:
    """A prepared dataset folder and its ``meta.json``."""

    path: Path
    meta: dict
    reused: bool = False
    """True when the cache already held this dataset."""

    def prefix(self, split: str) -> str:
        """megatron-core path prefix of ``train`` or ``valid`` (``PREFIX.bin`` / ``PREFIX.idx``)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return str(self.path / split)

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])


def split_mask(n_documents: int, valid_fraction: float, seed: int) -> np.ndarray:
    """Boolean per document, True = validation. At least one document on each side.

    Each document is held out with probability ``valid_fraction`` (a seeded uniform
    draw per document index), so the assignment does not depend on content.
    """
    if n_documents < 2:
        raise ConfigError(f"has {n_documents} document(s); a train/valid split needs at least 2", key="source")
    draws = np.random.default_rng(seed).random(n_documents)
    mask = draws < valid_fraction
    if not mask.any():
        mask[np.argmin(draws)] = True
    if mask.all():
        mask[np.argmax(draws)] = False
    return mask


def cache_key(cfg: DataConfig, corpus: Corpus, tokenizer: Tokenizer) -> str:
    """SHA-256 of everything the output depends on: the inputs (path/size/mtime, or their bytes with
    ``data.content_hash``), the tokenizer, the split settings."""
    parts = {
        "format_version": FORMAT_VERSION,
        "kind": corpus.kind,
        "jsonl_field": cfg.jsonl_field if corpus.kind == "jsonl" else None,
        "tokens_dtype": cfg.tokens_dtype if corpus.kind == "tokens" else None,
        "tokenizer": tokenizer.identity,
        "valid_fraction": cfg.valid_fraction,
        "split_seed": cfg.split_seed,
        "inputs": ("content:" if cfg.content_hash else "stat:") + corpus.digest(cfg.content_hash),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def token_dtype(vocab_size: int) -> type:
    """megatron-core's storage type for a vocabulary of this size."""
    return indexed_dataset().DType.optimal_dtype(vocab_size)


def read_meta(folder: str | Path) -> dict:
    """A prepared dataset's ``meta.json``; ConfigError naming the file when it cannot be read as a JSON object."""
    meta_file = Path(folder) / "meta.json"
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{meta_file} cannot be read ({type(err).__name__}: {err}); prepare the dataset again "
                          "(`composer-automl data prepare`)") from None
    if not isinstance(meta, dict):
        raise ConfigError(f"{meta_file} is not a JSON object; prepare the dataset again (`composer-automl data prepare`)")
    return meta


def load_prepared(path: str | Path) -> PreparedData:
    """Open a prepared dataset folder (one holding ``meta.json``)."""
    path = Path(path).expanduser()
    if not (path / "meta.json").is_file():
        raise ConfigError(f"{str(path)!r} is not a prepared dataset (no meta.json); run `composer-automl data prepare`")
    return PreparedData(path, read_meta(path), reused=True)


def prepare(cfg: DataConfig) -> PreparedData:
    """Tokenize ``cfg``'s corpus into train/valid indexed datasets, or reuse the cached result.

    A ``source`` that is already a prepared folder (``format: prepared``, or ``auto`` and a
    ``meta.json`` inside) is opened directly: search workers skip re-hashing a large corpus.
    """
    source = Path(cfg.source).expanduser()
    if cfg.format == "prepared" or (cfg.format == "auto" and (source / "meta.json").is_file()):
        return load_prepared(source)
    tokenizer = build_tokenizer(cfg.tokenizer, cfg.tokenizer_path, cfg.eod_token)
    corpus = open_corpus(cfg, tokenizer)
    key = cache_key(cfg, corpus, tokenizer)
    final = cfg.cache_root / f"{cfg.name}-{key[:16]}"
    if (final / "meta.json").is_file():
        return load_prepared(final)
    check_writable(cfg.cache_root, "cache_dir")
    mask = split_mask(corpus.count_documents(), cfg.valid_fraction, cfg.split_seed)

    created = [p for p in (final.parent, *final.parent.parents) if not p.exists()]  # innermost first
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        meta = _write_splits(tmp, corpus, tokenizer, mask, cfg)
        meta.update(key=key, name=cfg.name, source=cfg.source)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "meta.json").is_file():  # not a concurrent twin finishing first
                raise
            shutil.rmtree(tmp)
            return load_prepared(final)
    except BaseException:  # a bad document found while tokenizing: leave nothing behind, not even the cache folder
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:
            try:
                folder.rmdir()
            except OSError:  # not empty: another dataset (or a concurrent run) lives there
                break
        raise
    return PreparedData(final, meta, reused=False)


def _write_splits(out: Path, corpus: Corpus, tokenizer: Tokenizer, mask: np.ndarray, cfg: DataConfig) -> dict:
    """Stream every document into the train or valid builder; return the per-split counts."""
    dtype = token_dtype(tokenizer.vocab_size)
    builders = {s: indexed_dataset().IndexedDatasetBuilder(str(out / f"{s}.bin"), dtype=dtype) for s in SPLITS}
    counts = {s: {"n_documents": 0, "n_tokens": 0} for s in SPLITS}
    start = time.perf_counter()
    bar = tqdm(total=corpus.n_bytes, unit="B", unit_scale=True, desc=f"tokenize {cfg.name}",
               disable=not cfg.progress, file=sys.stderr, dynamic_ncols=True)
    with bar:
        for doc, (tokens, n_bytes) in enumerate(corpus.documents()):
            split = SPLITS[int(mask[doc])]
            builders[split].add_document(tokens, [tokens.size])
            counts[split]["n_documents"] += 1
            counts[split]["n_tokens"] += int(tokens.size)
            bar.update(n_bytes)
    for split, builder in builders.items():
        builder.finalize(str(out / f"{split}.idx"))
    seconds = time.perf_counter() - start
    return {
        "format_version": FORMAT_VERSION,
        "kind": corpus.kind,
        "vocab_size": tokenizer.vocab_size,
        "eod_id": tokenizer.eod_id,
        "dtype": np.dtype(dtype).name,
        "tokenizer": {"name": tokenizer.name, "identity": tokenizer.identity, "path": cfg.tokenizer_path},
        "valid_fraction": cfg.valid_fraction,
        "split_seed": cfg.split_seed,
        "n_documents": sum(c["n_documents"] for c in counts.values()),
        "n_tokens": sum(c["n_tokens"] for c in counts.values()),
        "splits": counts,
        "input_bytes": corpus.n_bytes,
        "prepare_seconds": round(seconds, 3),
    }
