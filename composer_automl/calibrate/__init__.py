"""Calibrating a fidelity ladder: every pattern at every rung with several seeds, and how well rungs agree.

``composer-automl calibrate`` evaluates a set of patterns at every rung of a ladder
(plus an optional reference rung) through the evaluation engine (the same workers as a search), appends one row
per (pattern, rung, seed) to ``RUN/table.jsonl`` and reports, per rung, its cost, its
seed-to-seed rank agreement (the noise ceiling) and its rank agreement with the
reference. HybridBench-6 (``benchmarks/hybridbench6``) is such a run over all 64
six-layer patterns; the ``tabular`` rung replays its table.
"""
