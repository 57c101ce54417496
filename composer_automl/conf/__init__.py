"""Hydra primary configs (one per subcommand) and the shipped config groups."""
