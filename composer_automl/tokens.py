"""Token-id conventions shared by data generation and the losses."""

IGNORE_INDEX = -100
"""Target id of positions that neither train nor count (PyTorch's cross-entropy default)."""
