"""DataConfig: where a corpus comes from, how it is tokenized and split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from composer_automl.config import ConfigError, choice
from composer_automl import paths

FORMATS = ("auto", "stdlib", "text", "jsonl", "indexed", "tokens", "prepared")
"""Input formats; ``auto`` guesses from the source (see :func:`composer_automl.data.corpus.detect_format`)."""

TOKEN_DTYPES = ("uint16", "uint32", "int32", "int64")
"""Element types accepted for raw token files."""


@dataclass
class DataConfig:
    """A corpus to tokenize into megatron-core indexed datasets (train and valid splits)."""

    source: str = "stdlib"
    """``stdlib`` (the embedded smoke-test corpus), a directory, a glob, a ``.jsonl`` file,
    a megatron indexed-dataset prefix (``PREFIX.bin`` + ``PREFIX.idx``), a raw token file, or a
    folder made by ``data prepare`` (used as is: no hashing, no tokenizing)."""
    format: str = "auto"
    """One of ``auto``, ``stdlib``, ``text``, ``jsonl``, ``indexed``, ``tokens``, ``prepared``."""
    name: str | None = None
    """Readable name; the cache folder is ``<cache_dir>/<name>-<key>``. Null: the source's own name (``stdlib``,
    the file's stem, the folder's name, or the glob's fixed leading folder)."""
    content_hash: bool = False
    """Key the cache on a SHA-256 of the inputs' bytes (reads the whole corpus on every prepare)
    instead of their resolved paths, sizes and modification times (O(1) in the corpus size)."""
    text_glob: str = "**/*.txt"
    """Files taken from a directory source (text format); one file is one document."""
    jsonl_field: str = "text"
    """JSONL key holding each document's text."""
    tokenizer: str = "byte"
    """``byte`` (UTF-8 bytes 0–255 plus end-of-document id 256; offline) or ``hf`` (a local tokenizer.json)."""
    tokenizer_path: str | None = None
    """Path to a Hugging Face ``tokenizer.json`` (``tokenizer: hf`` only); never downloaded."""
    eod_token: str | None = None
    """``hf``: the special token that ends each document (default: the first of
    ``<|endoftext|>``, ``<|end_of_text|>``, ``</s>``, ``<eos>`` the tokenizer knows)."""
    tokens_dtype: str = "uint16"
    """Element type of a raw token file (documents end with the tokenizer's end-of-document id)."""
    valid_fraction: float = 0.05
    """Share of documents held out for validation (at least one document)."""
    split_seed: int = 1234
    """Seed of the document-level train/valid assignment."""
    max_bytes: int = 4_000_000
    """``stdlib`` source only: stop adding standard-library files past this many bytes."""
    cache_dir: str | None = None
    """Where prepared datasets live (default: ``~/.cache/composer-automl/data`` or ``$COMPOSER_AUTOML_CACHE/data``)."""
    progress: bool = True
    """Show a progress bar while tokenizing."""

    def __post_init__(self) -> None:
        from composer_automl.data.tokenizers import check_tokenizer

        choice(self.format, FORMATS, "format")
        check_tokenizer(self.tokenizer, self.tokenizer_path)
        choice(self.tokens_dtype, TOKEN_DTYPES, "tokens_dtype")
        if not self.source:
            raise ConfigError("is empty; give 'stdlib', a directory, a glob, a .jsonl file, an indexed-dataset "
                              "prefix or a token file", key="source")
        if self.format == "stdlib" and self.source != "stdlib":
            raise ConfigError(f"=stdlib takes no files but source={self.source!r}; set format=auto (or "
                              "text/jsonl/indexed/tokens) for your own files", key="format")
        if not 0 < self.valid_fraction <= 0.5:
            raise ConfigError(f"={self.valid_fraction} must be in (0, 0.5]", key="valid_fraction")
        if self.max_bytes < 1:
            raise ConfigError(f"={self.max_bytes} must be a positive integer", key="max_bytes")
        if self.name is None:
            fixed = self.source[: min((self.source.find(c) for c in "*?[" if c in self.source), default=None)]
            self.name = Path(fixed.rstrip("/")).stem or "corpus"
        if not self.name or "/" in self.name:
            raise ConfigError(f"={self.name!r} must be a non-empty name without '/'", key="name")

    @property
    def cache_root(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else paths.cache_dir("data")
