"""``composer-automl generate``: KV-cached text generation with a trained (exported) model."""
