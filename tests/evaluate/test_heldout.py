"""Held-out loss and bits per byte on a prepared dataset: hand computations, and models of another tokenizer."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from composer_automl.config import ConfigError
from composer_automl.evaluate.config import HeldoutConfig
from composer_automl.evaluate.heldout import check_models, heldout_metrics, read_heldout
from composer_automl.evaluate.models import load_model, open_models, resolve_runtime
from exports import SPEC, make_bpe_tokenizer, make_dataset, make_export

LONG = SPEC.replace(max_seq_len=256)
"""Every test document fits one window: the hand computation is one forward pass per document."""


def nll_by_hand(model, ids: list[int], eod: int) -> float:
    """-Σ log p(token | EOD, earlier tokens) over the document, one forward pass."""
    tokens = torch.tensor([[eod, *ids]])
    with torch.no_grad():
        logits = model(tokens[:, :-1])
    return F.cross_entropy(logits[0], tokens[0, 1:], reduction="sum").item()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("heldout")
    data = make_dataset(root)
    byte_folder, byte_model = make_export(root, "byte", LONG)
    bpe = make_bpe_tokenizer(root / "tokenizer.json")
    bpe_folder, bpe_model = make_export(root, "bpe", LONG.replace(vocab_size=320), seed=1,
                                        tokenizer=["tokenizer=hf", f"tokenizer_path={bpe}"])
    return data, (byte_folder, byte_model), (bpe_folder, bpe_model)


def loaded(folder):
    [exported] = open_models([str(folder)])
    return load_model(folder.name, exported, resolve_runtime("cpu", "32-true"))


def test_bits_per_byte_equals_a_hand_computation(setup):
    """loss = NLL / tokens, perplexity = exp(loss), bits/byte = NLL / (bytes · ln 2), with the NLL summed
    by hand over the held-out documents (EOD, then every byte once) and the bytes of their UTF-8 text."""
    data, (folder, model), _ = setup
    text = read_heldout(HeldoutConfig(path=str(data)))
    assert len(text.documents) >= 2 and any(len(t) != len(t.decode()) for t in text.texts)  # non-ASCII held out
    nll = sum(nll_by_hand(model, list(t), 256) for t in text.texts)
    n_bytes = sum(len(t) for t in text.texts)
    got = heldout_metrics(loaded(folder), text, batch_size=3)
    assert got["tokens"] == got["bytes"] == n_bytes
    assert got["loss"] == pytest.approx(nll / n_bytes, rel=1e-5)
    assert got["perplexity"] == pytest.approx(math.exp(nll / n_bytes), rel=1e-5)
    assert got["bits_per_byte"] == pytest.approx(nll / (n_bytes * math.log(2)), rel=1e-5)


def test_models_with_another_tokenizer_compare_in_bits_per_byte_only(setup):
    """compare=tokens refuses a model trained with another tokenizer (naming data.compare and the model);
    compare=bytes scores it on its own tokens of the same text: the same bytes, its own token count,
    bits per byte by hand."""
    data, (byte_folder, _), (bpe_folder, bpe_model) = setup
    text = read_heldout(HeldoutConfig(path=str(data), compare="bytes"))
    bpe = loaded(bpe_folder)
    keys = [("models[0]='byte'", "byte-v1", 264), ("models[1]='bpe'", bpe.tokenizer_identity, 320)]
    with pytest.raises(ConfigError, match=r"data.compare=tokens .* models\[1\]='bpe' was trained with tokenizer hf-"):
        check_models(keys, text, "tokens")
    check_models(keys, text, "bytes")

    ids = [bpe.tokenizer.encode_batch([t])[0].tolist() for t in text.texts]
    nll = sum(nll_by_hand(bpe_model, doc, bpe.tokenizer.eod_id) for doc in ids)
    got = heldout_metrics(bpe, text, batch_size=2)
    assert got["bytes"] == heldout_metrics(loaded(byte_folder), text, batch_size=2)["bytes"]
    assert got["tokens"] == sum(len(doc) for doc in ids) < got["bytes"]
    assert got["bits_per_byte"] == pytest.approx(nll / (got["bytes"] * math.log(2)), rel=1e-5)


def test_a_folder_that_is_not_a_prepared_dataset_names_data_path(tmp_path):
    with pytest.raises(ConfigError, match="data.path: .* is not a prepared dataset"):
        read_heldout(HeldoutConfig(path=str(tmp_path)))
