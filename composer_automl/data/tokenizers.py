"""Tokenizer registry: ``byte`` (offline default) and ``hf`` (a local tokenizer.json).

Every tokenizer turns one document's UTF-8 bytes into token ids and names an
end-of-document (EOD) id that :mod:`composer_automl.data.prepare` appends to
every text document, so documents stay separable once concatenated.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from composer_automl.config import ConfigError, choice

EOD_CANDIDATES = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>")
"""Special tokens tried, in order, as the end-of-document token of a HF tokenizer."""


class Tokenizer(Protocol):
    name: str
    vocab_size: int
    eod_id: int
    identity: str
    """Stable description of the tokenizer (part of the dataset cache key)."""

    def encode_batch(self, documents: list[bytes]) -> list[np.ndarray]: ...

    def decode(self, ids: np.ndarray) -> str: ...

    def decode_bytes(self, ids: np.ndarray) -> bytes:
        """The UTF-8 bytes ``ids`` stand for (special tokens such as the EOD stand for none)."""
        ...


class ByteTokenizer:
    """UTF-8 bytes as ids 0–255; id 256 is the end-of-document marker (vocab 257)."""

    name = "byte"
    vocab_size = 257
    eod_id = 256
    identity = "byte-v1"

    def encode_batch(self, documents: list[bytes]) -> list[np.ndarray]:
        return [np.frombuffer(doc, dtype=np.uint8).astype(np.uint16) for doc in documents]

    def decode(self, ids: np.ndarray) -> str:
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def decode_bytes(self, ids: np.ndarray) -> bytes:
        ids = np.asarray(ids)
        return ids[ids < 256].astype(np.uint8).tobytes()  # exactly the document's bytes, valid UTF-8 or not


class HFTokenizer:
    """A Hugging Face ``tokenizers`` tokenizer loaded from a local ``tokenizer.json``."""

    name = "hf"

    def __init__(self, path: str, eod_token: str | None = None):
        from tokenizers import Tokenizer as _HFTokenizer

        file = Path(path).expanduser()
        if not file.is_file():
            raise ConfigError(f"={path!r}: no such file (expected a local tokenizer.json)", key="tokenizer_path")
        try:
            self._tok = _HFTokenizer.from_file(str(file))
        except Exception as err:  # the Rust parser raises plain Exception subclasses
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ConfigError(f"={path!r} does not parse as a tokenizer.json: {first}", key="tokenizer_path") from None
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        candidates = (eod_token,) if eod_token else EOD_CANDIDATES
        found = [(t, self._tok.token_to_id(t)) for t in candidates if self._tok.token_to_id(t) is not None]
        if not found:
            raise ConfigError(f": tokenizer {path!r} has none of {list(candidates)}; "
                "set data.eod_token to one of its special tokens", key="eod_token")
        self.eod_token, self.eod_id = found[0]
        digest = hashlib.sha256(file.read_bytes()).hexdigest()[:16]
        self.identity = f"hf-{digest}-eod={self.eod_token}"

    def encode_batch(self, documents: list[bytes]) -> list[np.ndarray]:
        texts = [doc.decode("utf-8", errors="replace") for doc in documents]
        encodings = self._tok.encode_batch(texts, add_special_tokens=False)
        return [np.asarray(enc.ids, dtype=np.int64) for enc in encodings]

    def decode(self, ids: np.ndarray) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=True)

    def decode_bytes(self, ids: np.ndarray) -> bytes:
        return self.decode(ids).encode("utf-8")


TOKENIZERS: dict[str, Callable[..., Tokenizer]] = {
    "byte": lambda path=None, eod_token=None: ByteTokenizer(),
    "hf": HFTokenizer,
}
"""Tokenizer name → factory ``(tokenizer_path, eod_token) -> Tokenizer``."""


def check_tokenizer(name: str, path: str | None) -> None:
    """A registered tokenizer name, with the file ``hf`` needs; ConfigError naming ``tokenizer`` / ``tokenizer_path``."""
    choice(name, TOKENIZERS, "tokenizer")
    if name == "hf" and not path:
        raise ConfigError("is required with tokenizer=hf (a local tokenizer.json)", key="tokenizer_path")


def build_tokenizer(name: str, path: str | None = None, eod_token: str | None = None) -> Tokenizer:
    """Instantiate a registered tokenizer; a bad name or file raises :class:`ConfigError`."""
    check_tokenizer(name, path)
    return TOKENIZERS[name](path, eod_token)
