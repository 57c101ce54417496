"""``composer-automl evaluate``: exported models side by side — held-out loss and bits per byte, lm-eval tasks
(the model registered as lm-eval's ``composer-automl``), parameters, FLOPs, KV cache and measured latency."""
