"""Adapters: the only modules that touch other libraries' private internals, one module per library.

Each is pinned by a test under ``tests/adapters/`` that fails when the library changes underneath.
"""
