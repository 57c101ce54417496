"""composer-automl: multi-fidelity search of hybrid attention/MLP LLM architectures."""

from composer_automl.patterns import Pattern, PatternError
from composer_automl.spec import ModelSpec, SpecError

__all__ = ["ModelSpec", "Pattern", "PatternError", "SpecError"]
__version__ = "0.1.0"
