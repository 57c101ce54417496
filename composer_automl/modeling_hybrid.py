"""Hugging Face ``transformers`` classes of a hybrid model: ``HybridConfig`` and ``HybridForCausalLM``.

``composer-automl export format=hf`` writes this file and :mod:`composer_automl.model` (the one
relative import) into the export folder, and ``config.json``'s ``auto_map`` names them, so
``AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)`` runs the very same
:class:`~composer_automl.model.HybridLM` where this package is not installed. Importing this
module registers the classes with ``AutoConfig`` / ``AutoModelForCausalLM`` (model type
``composer-hybrid``), so the folder also loads without ``trust_remote_code``. It therefore
imports only torch, transformers and its sibling ``model``.

Generation keeps HybridLM's own :class:`~composer_automl.model.KVCache` (attention layers
only) as the cache ``transformers``' ``generate`` hands from step to step; batches are
unpadded (an attention mask with zeros is refused).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForCausalLM, GenerationMixin, PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .model import MIXERS, Attention, HybridLM, KVCache, rope_tables


class HybridConfig(PreTrainedConfig):
    """A hybrid model's architecture under ``composer_automl.spec.ModelSpec``'s field names.

    The exporter writes every field; the ``None`` defaults exist only because ``transformers``
    builds a default config to compare against. ``attribute_map`` gives the usual names
    (``hidden_size``, ``num_attention_heads``, ``max_position_embeddings``, …) that tools read.
    """

    model_type = "composer-hybrid"
    attribute_map = {
        "hidden_size": "d_model",
        "num_attention_heads": "n_heads",
        "num_key_value_heads": "n_kv_heads",
        "intermediate_size": "ffn_hidden",
        "max_position_embeddings": "max_seq_len",
        "rms_norm_eps": "norm_eps",
        "tie_word_embeddings": "tie_embeddings",
        "num_hidden_layers": "n_layers",
    }

    pattern: str | None = None
    """Layer kinds, one letter per residual layer (``AMMAMM``)."""
    d_model: int | None = None
    n_heads: int | None = None
    n_kv_heads: int | None = None
    ffn_hidden: int | None = None
    vocab_size: int | None = None
    max_seq_len: int | None = None
    tie_embeddings: bool | None = None
    rope_theta: float | None = None
    norm_eps: float | None = None
    export_info: dict | None = None
    """Where the weights came from and the tokenizer they were trained with (written by the exporter)."""

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def n_layers(self) -> int:
        return len(self.pattern)

    @property
    def n_attention_layers(self) -> int:
        return sum(MIXERS[kind] is Attention for kind in self.pattern)


class HybridForCausalLM(PreTrainedModel, GenerationMixin):
    """:class:`HybridLM` under ``transformers``: weights at ``model.<HybridLM name>``."""

    config_class = HybridConfig
    base_model_prefix = "model"
    _no_split_modules = ["ResidualLayer"]
    _supports_sdpa = True

    def __init__(self, config: HybridConfig):
        super().__init__(config)
        self.model = HybridLM(config)
        self.post_init()

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # HybridLM keeps its own KVCache (attention layers only)

    def _init_weights(self, module: torch.nn.Module) -> None:
        # Loaded weights are never re-initialised; the RoPE tables are buffers outside the checkpoint.
        if isinstance(module, HybridLM):
            cos, sin = rope_tables(self.config.head_dim, self.config.max_seq_len, self.config.rope_theta)
            with torch.no_grad():
                module.rope_cos.copy_(cos)
                module.rope_sin.copy_(sin)
        else:
            super()._init_weights(module)

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.model.embed

    def get_output_embeddings(self) -> torch.nn.Module | None:
        return self.model.lm_head  # None when tied: the head reads the embedding matrix

    def forward(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None,
                cache: KVCache | None = None, use_cache: bool | None = None,
                labels: torch.LongTensor | None = None, **kwargs) -> CausalLMOutputWithPast:
        """Logits (B, T, V) of ``input_ids`` (B, T), continuing ``cache`` when given.

        ``use_cache`` starts a :class:`KVCache` (``max_seq_len`` long) when none is passed;
        ``labels`` (B, T) give the mean next-token cross-entropy (``-100`` ignored).
        """
        if attention_mask is not None and not bool(attention_mask.all()):
            raise ValueError("HybridForCausalLM does not take padded batches (attention_mask has zeros); "
                             "run sequences of equal length or one at a time")
        if cache is None and use_cache:
            param = self.model.embed.weight
            cache = KVCache(self.config, input_ids.shape[0], self.config.max_seq_len, param.device, param.dtype)
        logits = self.model(input_ids, cache)  # (B, T, V)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=cache)

    def prepare_inputs_for_generation(self, input_ids: torch.LongTensor, cache: KVCache | None = None,
                                      attention_mask: torch.Tensor | None = None, **kwargs) -> dict:
        """Feed only the tokens the cache has not seen (all of them on the first step)."""
        if cache is not None:
            input_ids = input_ids[:, cache.length:]
        return {"input_ids": input_ids, "cache": cache, "attention_mask": attention_mask,
                "use_cache": kwargs.get("use_cache", True)}


HybridConfig.register_for_auto_class()
HybridForCausalLM.register_for_auto_class("AutoModelForCausalLM")
AutoConfig.register(HybridConfig.model_type, HybridConfig, exist_ok=True)
AutoModelForCausalLM.register(HybridConfig, HybridForCausalLM, exist_ok=True)
