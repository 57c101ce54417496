"""``composer-automl evaluate`` settings: one dataclass per part, each default written here once.

``conf/evaluate.yaml`` extends this file's :class:`EvaluateConfig`, registered as a Hydra schema
(:mod:`composer_automl.conf`), and adds only Hydra's own settings, so ``--cfg job`` shows every key with its
default from this file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from composer_automl import devices
from composer_automl.config import ConfigError, choice

SPLITS = ("valid", "train")
COMPARE = ("tokens", "bytes")
"""``data.compare``: the dataset's tokens for every model (one tokenizer), or each model's own tokens of
the same text (bits per byte compare across tokenizers)."""
DEFAULT_TASKS = ("py_cloze",)
"""The shipped local task (no download): :mod:`composer_automl.evaluate.tasks`."""


@dataclass
class HeldoutConfig:
    """``data.*``: held-out loss, perplexity and bits per byte on a prepared dataset."""

    path: Optional[str] = None
    """A folder made by ``composer-automl data prepare`` (null: no held-out loss)."""
    split: str = "valid"
    """Which of its splits: ``valid`` or ``train``."""
    compare: str = "tokens"
    """``tokens``: every model reads the dataset's own tokens (models must share its tokenizer), so loss and
    perplexity compare; ``bytes``: each model tokenizes the documents' text itself, and bits per byte compare."""
    max_documents: Optional[int] = None
    """Score only the split's first N documents (null: all)."""

    def __post_init__(self) -> None:
        choice(self.split, SPLITS, "data.split")
        choice(self.compare, COMPARE, "data.compare")
        if self.max_documents is not None and self.max_documents < 1:
            raise ConfigError(f"data.max_documents={self.max_documents} must be >= 1 or null (all documents)")


@dataclass
class EfficiencyConfig:
    """``efficiency.*``: size and cost from the spec, latency measured on the chosen device."""

    seq_len: int = 2048
    """Context length at which FLOPs per token and the KV cache are computed."""
    latency: bool = True
    """Measure prefill and per-token decode latency (KV-cached, batch 1)."""
    prompt_tokens: int = 128
    """Prompt length of the latency measurement."""
    decode_tokens: int = 32
    """Tokens decoded after the prompt."""
    reps: int = 3
    """Timed repetitions (models alternate; each keeps its fastest)."""

    def __post_init__(self) -> None:
        for name in ("seq_len", "prompt_tokens", "decode_tokens", "reps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"efficiency.{name}={getattr(self, name)} must be >= 1")


@dataclass
class EvaluateConfig:
    """``composer-automl evaluate models=[A,B]``: the exported models side by side."""

    models: list[str] = field(default_factory=list)
    """Exported model folders (``composer-automl export``, native or hf); one report column each."""
    names: Optional[list[str]] = None
    """Column names, one per model (null: the folders' names)."""
    data: HeldoutConfig = field(default_factory=HeldoutConfig)
    tasks: list[str] = field(default_factory=lambda: list(DEFAULT_TASKS))
    """lm-evaluation-harness task names or task YAML files ([]: none; needs the ``[eval]`` extra)."""
    num_fewshot: Optional[int] = None
    """Few-shot examples per task prompt (null: each task's own default)."""
    limit: Optional[int] = None
    """Evaluate only the first N documents of each task (null: all)."""
    batch_size: int = 8
    """Sequences per forward pass (held-out windows, task requests)."""
    max_gen_toks: int = 256
    """Longest generation of a ``generate_until`` task unless the task sets its own."""
    accelerator: str = "cpu"
    """``cpu`` | ``gpu`` | ``auto`` (gpu when CUDA is visible)."""
    precision: str = "auto"
    """``32-true`` | ``bf16-true`` | ``bf16-mixed`` | ``16-mixed`` (GPU) | ``auto`` (bf16-mixed on GPU, fp32 on CPU)."""
    cpu_threads: int = 1
    """torch intra-op threads (1, as ``pretrain``: small models gain nothing from more and lose much when
    processes share cores; 0: torch's default, for large models on a dedicated CPU machine)."""
    efficiency: EfficiencyConfig = field(default_factory=EfficiencyConfig)
    out: Optional[str] = None
    """New report folder (null: ``runs/evaluate-<time>``)."""
    seed: int = 0
    """Seeds lm-eval's few-shot sampling and the latency prompt."""

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("models is empty; give models=[EXPORTED_FOLDER,…] (one or more exports)")
        if self.names is not None:
            if len(self.names) != len(self.models):
                raise ConfigError(f"names has {len(self.names)} entries for {len(self.models)} models; give one per model")
            if len(set(self.names)) != len(self.names) or not all(self.names):
                raise ConfigError(f"names={self.names} must be non-empty and distinct")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit={self.limit} must be an integer >= 1 (documents per task) or null (all)")
        if self.num_fewshot is not None and self.num_fewshot < 0:
            raise ConfigError(f"num_fewshot={self.num_fewshot} must be >= 0 or null (the task's default)")
        for name in ("batch_size", "max_gen_toks"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1")
        if self.cpu_threads < 0:
            raise ConfigError(f"cpu_threads={self.cpu_threads} must be >= 0 (0: torch's default)")
        devices.check_fields(self.accelerator, self.precision)  # `auto` is resolved on the machine, before work

    @property
    def column_names(self) -> list[str]:
        """One distinct name per model: ``names``, else the folder names (numbered when they clash)."""
        if self.names is not None:
            return list(self.names)
        base = [Path(m).name or str(m) for m in self.models]
        return [b if base.count(b) == 1 else f"{b}#{i + 1}" for i, b in enumerate(base)]
