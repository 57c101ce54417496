"""The evaluation engine: patterns evaluated on fidelity rungs by a pool of worker processes.

A proposer (the search's optimizer, a calibration's plan) says what to evaluate; the engine
(:mod:`~composer_automl.engine.runner`) runs it on local and remote workers
(:mod:`~composer_automl.engine.pool`, :mod:`~composer_automl.engine.worker`), over the ladder of
rungs (:mod:`~composer_automl.engine.ladder`), and hands back one record per evaluation
(:mod:`~composer_automl.engine.jobs`). hpbandster's dispatcher and Pyro4 carry the jobs
(:mod:`composer_automl.adapters`).
"""
