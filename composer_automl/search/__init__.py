"""Multi-fidelity architecture search (BOHB over a fidelity ladder)."""
