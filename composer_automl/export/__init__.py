"""``composer-automl export``: a training checkpoint → one single-device HybridLM (safetensors + spec YAML)."""

from composer_automl.export.files import WEIGHTS, SPEC, load_hybrid

__all__ = ["SPEC", "WEIGHTS", "load_hybrid"]
