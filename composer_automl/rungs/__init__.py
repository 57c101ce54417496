"""Fidelity rungs: ways of scoring a pattern at one cost (a MAD suite, a pretraining run, a table, a model of a table).

:mod:`~composer_automl.rungs.base` defines what a rung kind is (:class:`~composer_automl.rungs.base.RungKind`);
:mod:`~composer_automl.rungs.registry` lists the kinds and loads rung files.
"""
