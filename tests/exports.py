"""Factories of exported models and prepared datasets for the export and evaluate tests (real code paths only)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from composer_automl.data.config import DataConfig
from composer_automl.data.prepare import prepare
from composer_automl.export.command import main as export_main
from composer_automl.model import HybridLM
from composer_automl.spec import ModelSpec

SPEC = ModelSpec(pattern="AMMA", d_model=32, n_heads=2, n_kv_heads=1, ffn_hidden=64, vocab_size=264, max_seq_len=64,
                 rope_theta=10_000.0)
"""A small hybrid that holds the byte tokenizer's 257 ids; 64 tokens of context, so long texts need several windows."""

TEXTS = [
    "def add(a, b):\n    return a + b\n",
    "import os\nprint(os.path.join('a', 'b'))\n" * 3,
    "class Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n",
    "héllo wörld ☃ — unicode bytes count more than characters\n",
    "for i in range(10):\n    if i % 2:\n        print(i)\n" * 2,
    "with open(path) as f:\n    data = f.read()\n",
]
"""Small documents (some longer than 64 bytes, one non-ASCII) for held-out and tokenizer tests."""


def bare_export(folder: Path, spec: ModelSpec = SPEC, seed: int = 0) -> tuple[Path, HybridLM]:
    """A seeded HybridLM as a native folder without tokenizer record (what `export` of old wrote)."""
    torch.manual_seed(seed)
    model = HybridLM(spec).eval()
    folder.mkdir(parents=True)
    spec.save_yaml(folder / "model.yaml")
    save_file(model.state_dict(), str(folder / "model.safetensors"))
    return folder, model


def make_export(root: Path, name: str, spec: ModelSpec = SPEC, fmt: str = "native", seed: int = 0,
                tokenizer: list[str] = ()) -> tuple[Path, HybridLM]:
    """An export made by `composer-automl export` (format ``fmt``, tokenizer args e.g. ``["tokenizer=hf", …]``)."""
    bare, model = bare_export(root / f"{name}-bare", spec, seed)
    out = root / name
    export_main([f"ckpt={bare}", f"out={out}", f"format={fmt}", *tokenizer])
    return out, model


def write_texts(folder: Path, texts: list[str] = TEXTS) -> Path:
    """One text file per document."""
    folder.mkdir(parents=True)
    for i, text in enumerate(texts):
        (folder / f"doc{i:02d}.txt").write_text(text)
    return folder


def make_dataset(root: Path, texts: list[str] = TEXTS, **data) -> Path:
    """A prepared dataset (``composer-automl data prepare``) of ``texts``, half held out."""
    source = write_texts(root / "texts", texts)
    cfg = DataConfig(source=str(source), name="texts", valid_fraction=0.5, cache_dir=str(root / "cache"),
                     progress=False, **data)
    return prepare(cfg).path


def make_bpe_tokenizer(path: Path, vocab_size: int = 300) -> Path:
    """A byte-level BPE tokenizer.json trained here on the test texts (no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(TEXTS * 4, trainer)
    tok.save(str(path))
    return path
