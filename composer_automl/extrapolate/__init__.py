"""Extrapolation: scale a searched pattern to a target depth and width (350M / 1B / 3B)."""
