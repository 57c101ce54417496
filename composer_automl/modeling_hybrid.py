"""Hugging Face ``transformers`` classes of a hybrid model: ``HybridConfig`` and ``HybridForCausalLM``.

``composer-automl export format=hf`` writes this file and :mod:`composer_automl.model` (the one
relative import) into the export folder, and ``config.json``'s ``auto_map`` names them, so
``AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)`` runs the very same
:class:`~composer_automl.model.HybridLM` where this package is not installed. Importing this
module registers the classes with ``AutoConfig`` / ``AutoModelForCausalLM`` (model type
``composer-hybrid``), so the folder also loads without ``trust_remote_code``. It therefore
imports only torch, transformers and its sibling ``model``.

Generation keeps HybridLM's own :class:`~composer_automl.model.KVCache` (attention layers
only, sized for the call) as the cache ``transformers``' ``generate`` hands from step to step
(the two overridden generation hooks are the only transformers internals used); batches are
unpadded (an attention mask with zeros is refused) and beam search is not supported.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForCausalLM, GenerationMixin, PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .model import HybridLM, KVCache


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
    def num_hidden_layers(self) -> int:
        return len(self.pattern)


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

    def _prepare_cache_for_generation(self, generation_config, model_kwargs: dict, generation_mode,
                                      batch_size: int, max_cache_length: int) -> None:
        """transformers' hook before generating: instead of its cache, the length of HybridLM's KVCache that the
        first forward pass starts (attention layers only, sized for this call)."""
        if generation_config.num_beams > 1:
            raise ValueError("HybridForCausalLM does not do beam search (its cache cannot be reordered)")
        if generation_config.use_cache is not False:
            model_kwargs["cache_length"] = min(max_cache_length, self.config.max_seq_len)

    def _init_weights(self, module: torch.nn.Module) -> None:
        # Loaded weights are never re-initialised; the RoPE tables are buffers outside the checkpoint.
        if isinstance(module, HybridLM):
            module.reset_rope()
        else:
            super()._init_weights(module)

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.model.embed

    def get_output_embeddings(self) -> torch.nn.Module | None:
        return self.model.lm_head  # None when tied: the head reads the embedding matrix

    def forward(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None,
                cache: KVCache | None = None, cache_length: int | None = None,
                labels: torch.LongTensor | None = None, **kwargs) -> CausalLMOutputWithPast:
        """Logits (B, T, V) of ``input_ids`` (B, T), continuing ``cache`` (filled by earlier calls) when given.

        ``cache_length`` (from ``generate``) starts a :class:`KVCache` of that many tokens when there is
        none yet; ``labels`` (B, T) give the mean next-token cross-entropy (``-100`` ignored).
        """
        if attention_mask is not None and not bool(attention_mask.all()):
            raise ValueError("HybridForCausalLM does not take padded batches (attention_mask has zeros); "
                             "run sequences of equal length or one at a time")
        if cache is None and cache_length:
            param = self.model.embed.weight
            cache = KVCache(self.config, input_ids.shape[0], cache_length, param.device, param.dtype)
        logits = self.model(input_ids, cache)  # (B, T, V)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=cache)

    def prepare_inputs_for_generation(self, input_ids: torch.LongTensor, cache: KVCache | None = None,
                                      attention_mask: torch.Tensor | None = None, cache_length: int | None = None,
                                      **kwargs) -> dict:
        """Feed only the tokens the cache has not seen (all of them on the first step)."""
        if cache is not None:
            input_ids = input_ids[:, cache.length:]
        return {"input_ids": input_ids, "cache": cache, "attention_mask": attention_mask, "cache_length": cache_length}


HybridConfig.register_for_auto_class()
HybridForCausalLM.register_for_auto_class("AutoModelForCausalLM")
AutoConfig.register(HybridConfig.model_type, HybridConfig, exist_ok=True)
AutoModelForCausalLM.register(HybridConfig, HybridForCausalLM, exist_ok=True)
