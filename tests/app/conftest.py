"""Fixtures of the app-level tests: the stores of the Store contract suite."""

from .stores import open_store, store

__all__ = ["open_store", "store"]
