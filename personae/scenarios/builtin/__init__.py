"""Moved to :mod:`personae.studies`; these names keep working until 0.4."""

from personae.studies import BUILTINS, builtin, counseling

__all__ = ["BUILTINS", "builtin", "counseling"]
