"""Tensor parallelism for hybrid models with megatron-core (imports megatron: keep it out of light paths).

* :mod:`.layers` — one megatron layer spec per pattern entry, SDPA attention core;
* :mod:`.model` — ``build_parallel_model(spec, tp)``, ``check_layout``;
* :mod:`.weights` — HybridLM ⇄ megatron weight mapping (q/k/v grouping, SwiGLU shards);
* :mod:`.state` — megatron ``parallel_state`` on an existing process group;
* :mod:`.strategy` — the Lightning strategy (DDP over the data-parallel group only);
* :mod:`.cpu_compat` — the CPU-only redirect of megatron's CUDA calls.
"""

from composer_automl.parallel.model import build_parallel_model, check_layout
from composer_automl.parallel.weights import gather_to_hybrid, hybrid_to_parallel, load_hybrid_weights, parallel_to_hybrid

__all__ = ["build_parallel_model", "check_layout", "gather_to_hybrid", "hybrid_to_parallel",
           "load_hybrid_weights", "parallel_to_hybrid"]
