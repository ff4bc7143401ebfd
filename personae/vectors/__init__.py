"""Trait vectors: directions in a model's residual stream per trait, for monitoring and steering.

Build them with :func:`build_vectors` (or ``personae vectors build``), save and
load them with :func:`save_vectors` / :func:`load_vectors` (refused for
another model), measure stored transcripts with
:func:`~personae.vectors.monitor.monitor_database` (``personae monitor``).
See docs/vectors.md.
"""

from personae.vectors.build import Recipe, build_vectors, separation
from personae.vectors.traits import (
    BIG_FIVE_DOMAINS,
    TraitSpec,
    big_five_traits,
    load_traits,
    resolve_traits,
)
from personae.vectors.vectorfile import TraitVector, TraitVectors, load_vectors, save_vectors

__all__ = [
    "BIG_FIVE_DOMAINS",
    "Recipe",
    "TraitSpec",
    "TraitVector",
    "TraitVectors",
    "big_five_traits",
    "build_vectors",
    "load_traits",
    "load_vectors",
    "resolve_traits",
    "save_vectors",
    "separation",
]
