"""Input discovery: turn a :class:`DataConfig` source into a checked, countable stream of documents.

Sources (``data.format``):

- ``stdlib``: the embedded smoke-test corpus, the top-level ``.py`` files of this
  Python's standard library (``Path(os.__file__).parent``), sorted by name, empty
  files skipped, stopped at ``max_bytes``. Present on every machine, never
  downloaded; it is code, not prose, so use it to check the pipeline, not to rank
  architectures for natural language.
- ``text``: a file, a directory (files matching ``text_glob``) or a glob; one file
  is one document.
- ``jsonl``: a file, directory (``**/*.jsonl``) or glob of JSON lines; one line is
  one document, its text under ``jsonl_field``.
- ``indexed``: an existing megatron-core indexed dataset prefix (``PREFIX.bin`` +
  ``PREFIX.idx``), already tokenized with the configured tokenizer.
- ``tokens``: a flat binary file of token ids (``tokens_dtype``), documents ending
  with the tokenizer's end-of-document id (nanoGPT-style ``train.bin``).
- ``prepared``: a folder already written by ``data prepare`` (handled by
  :func:`composer_automl.data.prepare.prepare` itself, not here).

:func:`open_corpus` resolves the inputs and checks what it can without reading them
(existence, sizes, headers, each JSONL file's first record): it costs O(files), so a
cached dataset is found in O(1) of the corpus size. The checks that read every byte
(token ids against the vocabulary, document boundaries, document counts) run in
:meth:`Corpus.count_documents`, only when the dataset must be built, still before any
output is written.
"""

from __future__ import annotations

import gc
import glob
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from composer_automl.config import ConfigError
from composer_automl.data.config import DataConfig
from composer_automl.data.megatron_io import indexed_dataset
from composer_automl.data.tokenizers import Tokenizer

ENCODE_BATCH = 256
"""Documents handed to the tokenizer at once (HF tokenizers encode a batch in parallel)."""


def stdlib_files(max_bytes: int) -> list[Path]:
    """The embedded corpus: sorted, non-empty top-level standard-library ``.py`` files up to ``max_bytes``."""
    root = Path(os.__file__).resolve().parent
    chosen, total = [], 0
    for path in sorted(root.glob("*.py")):
        size = path.stat().st_size
        if size == 0:
            continue
        if total + size > max_bytes:
            break
        chosen.append(path)
        total += size
    return chosen


def detect_format(source: str) -> str:
    """Guess the format of a source: see the module docstring."""
    if source == "stdlib":
        return "stdlib"
    if glob.has_magic(source):
        matches = glob.glob(os.path.expanduser(source), recursive=True)
        return "jsonl" if matches and all(m.endswith((".jsonl", ".json")) for m in matches) else "text"
    path = Path(source).expanduser()
    prefix = str(path)[:-4] if path.suffix in (".bin", ".idx") else str(path)
    if Path(prefix + ".idx").is_file() and Path(prefix + ".bin").is_file():
        return "indexed"
    if path.suffix in (".jsonl", ".json"):
        return "jsonl"
    if path.suffix in (".bin", ".tok"):
        return "tokens"
    return "text"


def resolve_files(source: str, dir_glob: str, what: str) -> list[Path]:
    """Files named by a file path, a directory (+ ``dir_glob``) or a glob; missing, empty or unreadable files and
    broken symbolic links among the matches raise."""
    if glob.has_magic(source):
        matches = [Path(p) for p in glob.glob(os.path.expanduser(source), recursive=True)]
        files = sorted(p for p in matches if p.is_file())
        if not files:
            raise ConfigError(f"={source!r}: the glob matches no files", key="source")
    else:
        path = Path(source).expanduser()
        if path.is_dir():
            matches = list(path.glob(dir_glob))
            files = sorted(p for p in matches if p.is_file())
            if not files:
                raise ConfigError(f"={source!r}: the directory has no {what} files matching {dir_glob!r} "
                    "(set data.text_glob, or data.format=jsonl for JSON lines)", key="source")
        elif path.is_file():
            files = matches = [path]
        else:
            raise ConfigError(f"={source!r}: no such file or directory", key="source")
    broken = sorted(p for p in matches if p.is_symlink() and not p.exists())
    if broken:
        raise ConfigError(f": input {str(broken[0])!r} is a broken symbolic link ({len(broken)} in all); "
                          "fix or remove it", key="source")
    check_readable(files)
    empty = [f for f in files if f.stat().st_size == 0]
    if empty:
        raise ConfigError(f": input file {str(empty[0])!r} is empty ({len(empty)} empty file(s) in all)", key="source")
    return files


def check_readable(files: list[Path]) -> None:
    """Refuse input files this process may not read (before any is hashed or tokenized)."""
    unreadable = [f for f in files if not os.access(f, os.R_OK)]
    if unreadable:
        raise ConfigError(f": input file {str(unreadable[0])!r} cannot be read (permission denied; "
                          f"{len(unreadable)} such file(s) in all)", key="source")


def stat_digest(paths: list[Path]) -> str:
    """SHA-256 over each file's resolved path, size and modification time: O(1) per file, no bytes read."""
    digest = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def file_digest(paths: list[Path]) -> str:
    """SHA-256 over the contents of ``paths``, in order (each prefixed by its length): reads every byte."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path.stat().st_size).encode() + b"\0")
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Corpus:
    """A resolved input: its files, and ways to fingerprint, count and stream its tokenized documents."""

    kind: str
    """Resolved format: ``stdlib``, ``text``, ``jsonl``, ``indexed`` or ``tokens``."""
    files: list[Path]
    """Input files (for ``indexed``: the ``.idx`` and ``.bin``)."""
    n_bytes: int
    """Total input size (progress bar and MB/s figures)."""
    tokenizer: Tokenizer
    jsonl_field: str = "text"
    token_dtype: str = "uint16"
    _eod_ends: np.ndarray | None = field(default=None, repr=False)
    """``tokens`` only: end offset (exclusive) of each document (set by :meth:`count_documents`)."""

    def digest(self, content: bool = False) -> str:
        """The dataset cache key's input part: the files' path/size/mtime, or with ``content`` their bytes."""
        return file_digest(self.files) if content else stat_digest(self.files)

    def count_documents(self) -> int:
        """Read every input once: check token ids against the vocabulary, find document boundaries,
        and return the number of documents (errors are :class:`ConfigError`)."""
        if self.kind in ("stdlib", "text"):
            return len(self.files)
        if self.kind == "jsonl":
            n_documents = 0
            for path in self.files:
                with open(path, "rb") as fh:
                    n_documents += sum(1 for line in fh if line.strip())
            return n_documents
        where = f"data.source={str(self.files[0])!r}"
        if self.kind == "indexed":
            dataset = indexed_dataset().IndexedDataset(str(self.files[0])[: -len(".idx")])
            check_vocab(np.memmap(self.files[1], dtype=dataset.index.dtype, mode="r"), self.tokenizer.vocab_size, where)
            return len(dataset.document_indices) - 1
        tokens = np.memmap(self.files[0], dtype=self.token_dtype, mode="r")
        check_vocab(tokens, self.tokenizer.vocab_size, where)
        ends = np.flatnonzero(tokens == self.tokenizer.eod_id) + 1
        if ends.size == 0 or ends[-1] != tokens.size:
            ends = np.append(ends, tokens.size)  # a trailing document without an EOD
        self._eod_ends = ends
        return len(ends)

    def documents(self) -> Iterator[tuple[np.ndarray, int]]:
        """Yield ``(token ids ending with EOD, input bytes consumed)`` for every document, in order."""
        yield from {"stdlib": self._text_docs, "text": self._text_docs, "jsonl": self._jsonl_docs,
                    "indexed": self._indexed_docs, "tokens": self._token_docs}[self.kind]()

    # -- per format -----------------------------------------------------------------
    def _encode(self, batch: list[bytes]) -> Iterator[tuple[np.ndarray, int]]:
        eod = np.array([self.tokenizer.eod_id])
        for raw, ids in zip(batch, self.tokenizer.encode_batch(batch)):
            yield np.concatenate([ids.astype(np.int64), eod]), len(raw)

    def _text_docs(self) -> Iterator[tuple[np.ndarray, int]]:
        for start in range(0, len(self.files), ENCODE_BATCH):
            yield from self._encode([f.read_bytes() for f in self.files[start : start + ENCODE_BATCH]])

    def _jsonl_docs(self) -> Iterator[tuple[np.ndarray, int]]:
        batch: list[bytes] = []
        for path in self.files:
            with open(path, "rb") as fh:
                for lineno, line in enumerate(fh, 1):
                    if line.strip():
                        batch.append(jsonl_text(line, self.jsonl_field, path, lineno).encode("utf-8"))
                    if len(batch) == ENCODE_BATCH:
                        yield from self._encode(batch)
                        batch = []
        yield from self._encode(batch)

    def _indexed_docs(self) -> Iterator[tuple[np.ndarray, int]]:
        dataset = indexed_dataset().IndexedDataset(str(self.files[0])[: -len(".idx")])
        bounds = dataset.document_indices
        itemsize = np.dtype(dataset.index.dtype).itemsize
        for doc in range(len(bounds) - 1):
            tokens = np.concatenate(dataset[int(bounds[doc]) : int(bounds[doc + 1])]).astype(np.int64)
            yield tokens, tokens.size * itemsize

    def _token_docs(self) -> Iterator[tuple[np.ndarray, int]]:
        if self._eod_ends is None:
            self.count_documents()
        tokens = np.memmap(self.files[0], dtype=self.token_dtype, mode="r")
        start = 0
        for end in self._eod_ends:
            yield np.asarray(tokens[start:end], dtype=np.int64), int(end - start) * tokens.itemsize
            start = int(end)


def jsonl_text(line: bytes, field_name: str, path: Path, lineno: int) -> str:
    """The document text of one JSONL line; a bad line or an absent/non-string field raises."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(record, dict) or field_name not in record:
        keys = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise ConfigError(f"={field_name!r} is absent at {path}:{lineno}; the record has keys {keys}", key="jsonl_field")
    if not isinstance(record[field_name], str):
        raise ConfigError(f"={field_name!r} at {path}:{lineno} is not a string", key="jsonl_field")
    return record[field_name]


def check_vocab(tokens: np.ndarray, vocab_size: int, where: str) -> None:
    """Raise if any id is negative or ≥ ``vocab_size``."""
    if tokens.size and (int(tokens.max()) >= vocab_size or int(tokens.min()) < 0):
        raise ConfigError(
            f"{where}: token ids span [{int(tokens.min())}, {int(tokens.max())}] but the tokenizer's "
            f"vocabulary is [0, {vocab_size}); use the tokenizer the tokens were made with (data.tokenizer)"
        )


def open_corpus(cfg: DataConfig, tokenizer: Tokenizer) -> Corpus:
    """Resolve ``cfg``'s source and check what can be checked without reading it (O(files))."""
    kind = detect_format(cfg.source) if cfg.format == "auto" else cfg.format
    if kind == "stdlib":
        files = stdlib_files(cfg.max_bytes)
        if not files:
            raise ConfigError(f"={cfg.max_bytes} is smaller than any standard-library file", key="max_bytes")
        return Corpus(kind, files, sum(f.stat().st_size for f in files), tokenizer)
    if kind == "text":
        files = resolve_files(cfg.source, cfg.text_glob, "text")
        return Corpus(kind, files, sum(f.stat().st_size for f in files), tokenizer)
    if kind == "jsonl":
        return _open_jsonl(cfg, tokenizer)
    if kind == "indexed":
        return _open_indexed(cfg, tokenizer)
    return _open_tokens(cfg, tokenizer)


def _open_jsonl(cfg: DataConfig, tokenizer: Tokenizer) -> Corpus:
    files = resolve_files(cfg.source, "**/*.jsonl", "JSONL")
    for path in files:  # each file's first record is checked up front; later ones while tokenizing
        with open(path, "rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    jsonl_text(line, cfg.jsonl_field, path, lineno)
                    break
    return Corpus("jsonl", files, sum(f.stat().st_size for f in files), tokenizer, cfg.jsonl_field)


def _indexed_problem(prefix: str) -> str | None:
    """Why megatron cannot open the indexed dataset ``prefix`` (it reads the .idx header and index, not the
    tokens), or None. Megatron asserts on a malformed header and its half-built reader then fails again in
    ``__del__``; that second error is silenced here, so a bad file is one error line and no stray traceback."""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        try:
            indexed_dataset().IndexedDataset(prefix)
        except Exception as err:
            return str(err) or type(err).__name__
        finally:
            gc.collect()  # the half-built reader goes now, while its __del__ error is silenced
        return None
    finally:
        sys.unraisablehook = hook


def _open_indexed(cfg: DataConfig, tokenizer: Tokenizer) -> Corpus:
    path = Path(cfg.source).expanduser()
    prefix = str(path)[:-4] if path.suffix in (".bin", ".idx") else str(path)
    idx, bin_ = Path(prefix + ".idx"), Path(prefix + ".bin")
    for part in (idx, bin_):
        if not part.is_file():
            raise ConfigError(f"={cfg.source!r}: indexed dataset file {str(part)!r} is missing", key="source")
        if part.stat().st_size == 0:
            raise ConfigError(f"={cfg.source!r}: indexed dataset file {str(part)!r} is empty", key="source")
    problem = _indexed_problem(prefix)
    if problem:
        raise ConfigError(f"={cfg.source!r} is not a readable megatron indexed dataset: {problem}", key="source")
    return Corpus("indexed", [idx, bin_], bin_.stat().st_size, tokenizer)


def _open_tokens(cfg: DataConfig, tokenizer: Tokenizer) -> Corpus:
    path = Path(cfg.source).expanduser()
    if not path.is_file():
        raise ConfigError(f"={cfg.source!r}: no such token file", key="source")
    check_readable([path])
    size, itemsize = path.stat().st_size, np.dtype(cfg.tokens_dtype).itemsize
    if size == 0:
        raise ConfigError(f"={cfg.source!r}: the token file is empty", key="source")
    if size % itemsize:
        raise ConfigError(f"={cfg.tokens_dtype}: {size} bytes is not a whole number of {itemsize}-byte ids", key="tokens_dtype")
    return Corpus("tokens", [path], size, tokenizer, token_dtype=cfg.tokens_dtype)
