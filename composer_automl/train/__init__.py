"""Scale-out training: ``composer-automl train`` (megatron-core tensor parallelism under Lightning)."""
