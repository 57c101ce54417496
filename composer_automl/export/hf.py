"""Write a Hugging Face ``transformers`` folder of a HybridLM (``export format=hf``).

``transformers`` does the writing: :class:`~composer_automl.modeling_hybrid.HybridForCausalLM`'s
``save_pretrained`` writes ``config.json`` (with ``auto_map``), ``generation_config.json`` and
``model.safetensors``, and copies ``modeling_hybrid.py`` with its relative import ``model.py``
into the folder (the classes are registered for the auto classes), so ``trust_remote_code=True``
needs nothing of this package; a ``PreTrainedTokenizerFast`` writes the tokenizer files. The byte
tokenizer becomes a ``tokenizers`` BPE with byte fallback and no merges, whose ids are the
UTF-8 bytes and whose ``<|endoftext|>`` is the end-of-document id 256, exactly as
:class:`~composer_automl.data.tokenizers.ByteTokenizer` encodes.

Needs ``transformers`` (the ``[eval]`` extra); :func:`require_transformers` says so in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from composer_automl.config import ConfigError
from composer_automl.data.tokenizers import ByteTokenizer, Tokenizer
from composer_automl.spec import ModelSpec

BYTE_EOD_TOKEN = "<|endoftext|>"


def require_transformers(key: str) -> None:
    """ConfigError naming ``key`` unless ``transformers`` imports."""
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise ConfigError(f"{key} needs the Hugging Face libraries: pip install 'composer-automl[eval]'") from None


def byte_level_tokenizer():
    """A ``tokenizers.Tokenizer`` equal to :class:`ByteTokenizer`: ids 0–255 are bytes, 256 ends a document."""
    from tokenizers import AddedToken, Tokenizer, decoders, models

    tokenizer = Tokenizer(models.BPE(vocab={f"<0x{b:02X}>": b for b in range(256)}, merges=[], byte_fallback=True))
    tokenizer.decoder = decoders.ByteFallback()
    tokenizer.add_special_tokens([AddedToken(BYTE_EOD_TOKEN, special=True)])
    assert tokenizer.token_to_id(BYTE_EOD_TOKEN) == ByteTokenizer.eod_id
    return tokenizer


def transformers_tokenizer(tokenizer: Tokenizer, tokenizer_file: Path | None, max_len: int):
    """``tokenizer`` as a ``PreTrainedTokenizerFast`` (EOS = its end-of-document token, no BOS)."""
    from transformers import PreTrainedTokenizerFast

    if tokenizer.name == "byte":
        return PreTrainedTokenizerFast(tokenizer_object=byte_level_tokenizer(), eos_token=BYTE_EOD_TOKEN,
                                       model_max_length=max_len)
    return PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_file), eos_token=tokenizer.eod_token,
                                   model_max_length=max_len)


def hf_config(spec: ModelSpec, info: dict[str, Any], eod_id: int):
    """The ``HybridConfig`` of ``spec`` (the pattern written compactly, ``AMMAMM``)."""
    from composer_automl.modeling_hybrid import HybridConfig

    fields = {**spec.to_dict(), "pattern": "".join(spec.pattern)}
    return HybridConfig(**fields, export_info=info, eos_token_id=eod_id, architectures=["HybridForCausalLM"])


def write_hf(folder: Path, spec: ModelSpec, weights: dict[str, torch.Tensor], tokenizer: Tokenizer,
             tokenizer_file: Path | None, info: dict[str, Any]) -> None:
    """Write the ``transformers`` folder into ``folder`` (an empty, existing directory)."""
    from composer_automl.modeling_hybrid import HybridForCausalLM

    with torch.device("meta"):  # no throw-away initialisation: the weights are assigned below
        model = HybridForCausalLM(hf_config(spec, info, tokenizer.eod_id))
    model.model.load_state_dict(weights, strict=True, assign=True)
    model.save_pretrained(folder)
    transformers_tokenizer(tokenizer, tokenizer_file, spec.max_seq_len).save_pretrained(folder)
