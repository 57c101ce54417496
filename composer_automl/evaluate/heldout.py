"""Held-out loss, perplexity and bits per byte of a model on a prepared dataset's split.

Every document of the split is scored as lm-eval's ``loglikelihood_rolling`` scores a text:
after the end-of-document token, each token once, in windows of the model's ``max_seq_len``
(:func:`~composer_automl.evaluate.scoring.rolling_windows`); the document's own trailing EOD is
not predicted. With N the summed negative log-likelihood (nats) over T tokens and B bytes:
``loss = N / T``, ``perplexity = exp(loss)``, ``bits_per_byte = N / (B · ln 2)``. B counts the
documents' UTF-8 bytes as the dataset's tokenizer decodes them, so it is the same for every model
and bits per byte compare models whatever their tokenizers (``data.compare=bytes``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from composer_automl.config import ConfigError
from composer_automl.data.megatron_io import indexed_dataset
from composer_automl.data.prepare import load_prepared
from composer_automl.data.tokenizers import ByteTokenizer, Tokenizer, build_tokenizer
from composer_automl.evaluate.config import HeldoutConfig
from composer_automl.evaluate.models import LoadedModel
from composer_automl.evaluate.scoring import text_loglikelihood


@dataclass(frozen=True)
class HeldoutText:
    """The documents of one split: the dataset's tokens (trailing EOD removed) and their bytes."""

    path: Path
    split: str
    tokenizer_identity: str
    vocab_size: int
    documents: list[np.ndarray]
    texts: list[bytes]

    @property
    def n_bytes(self) -> int:
        return sum(len(t) for t in self.texts)


def dataset_tokenizer(meta: dict, path: str) -> Tokenizer:
    """The tokenizer a prepared dataset records (to decode its documents to bytes)."""
    record = meta.get("tokenizer")
    if not record:
        raise ConfigError(f"data.path={path!r} records no tokenizer in meta.json; prepare it with `composer-automl data prepare`")
    tokenizer = ByteTokenizer() if record["name"] == "byte" else build_tokenizer("hf", record.get("path"))
    if tokenizer.identity != record["identity"]:
        raise ConfigError(f"data.path={path!r} was tokenized by {record['identity']}, but its tokenizer file "
                          f"{record.get('path')!r} now reads as {tokenizer.identity}")
    return tokenizer


def read_heldout(config: HeldoutConfig) -> HeldoutText:
    """The split's documents (the first ``max_documents``); ConfigError naming ``data.path`` if unusable."""
    try:
        data = load_prepared(config.path)
    except ConfigError as err:
        raise ConfigError(f"data.path: {err}") from None
    tokenizer = dataset_tokenizer(data.meta, config.path)
    split = indexed_dataset().IndexedDataset(data.prefix(config.split))
    n = len(split) if config.max_documents is None else min(len(split), config.max_documents)
    documents = []
    for i in range(n):
        tokens = np.asarray(split[i], dtype=np.int64)
        documents.append(tokens[:-1] if len(tokens) and tokens[-1] == tokenizer.eod_id else tokens)
    documents = [d for d in documents if len(d)]
    if not documents:
        raise ConfigError(f"data.path={config.path!r}: the {config.split} split has no non-empty document")
    return HeldoutText(data.path, config.split, tokenizer.identity, data.vocab_size, documents,
                       [tokenizer.decode_bytes(d) for d in documents])


def check_models(models: list[tuple[str, str, int]], text: HeldoutText, compare: str) -> None:
    """``(key, tokenizer identity, vocab size)`` per model: with ``compare=tokens`` all must read the dataset's tokens."""
    if compare != "tokens":
        return
    for key, identity, vocab_size in models:
        if identity != text.tokenizer_identity:
            raise ConfigError(
                f"data.compare=tokens compares losses on the dataset's tokens ({text.tokenizer_identity}), but "
                f"{key} was trained with tokenizer {identity}; use data.compare=bytes (bits per byte, each model "
                "reading the text with its own tokenizer) or a dataset prepared with that model's tokenizer")
        if text.vocab_size > vocab_size:
            raise ConfigError(f"data.path has vocab_size {text.vocab_size} > {key}'s vocab_size {vocab_size}")


def heldout_metrics(model: LoadedModel, text: HeldoutText, batch_size: int,
                    progress: Callable[[int], None] | None = None) -> dict[str, float]:
    """loss, perplexity, bits_per_byte, tokens, bytes and documents of ``model`` on ``text``."""
    same = model.tokenizer_identity == text.tokenizer_identity
    documents = text.documents if same else model.tokenizer.encode_batch(text.texts)
    loglik = text_loglikelihood(model.logits, documents, model.tokenizer.eod_id, model.spec.max_seq_len,
                                batch_size, progress)
    nll, n_tokens = -sum(loglik), sum(len(d) for d in documents)
    loss = nll / n_tokens
    return {"loss": loss, "perplexity": math.exp(loss), "bits_per_byte": nll / (text.n_bytes * math.log(2)),
            "tokens": n_tokens, "bytes": text.n_bytes, "documents": len(documents)}
