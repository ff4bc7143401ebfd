"""Row ids that never collide, whichever file or worker writes the row.

An episode's rows (agents, llm_calls, turns, memories, states, measurements,
scores) take their ids from a *block* reserved for that episode: the high bits
are the episode id, the low :data:`LOW_BITS` bits count the episode's rows of
that table from 1::

    row id = episode_id * 2**32 + n        (n = 1, 2, 3, ... per table)

Episode ids are allocated by the coordinating database (``episodes.id``)
before any episode runs, so every sink (the run's writer, a shard file written
by another worker, the in-memory log) gives the rows of episode 7 the ids
``7 * 2**32 + 1, + 2, ...`` and no other episode's rows ever share them. A
shard can therefore be copied into the main file without renumbering, and the
same episode run twice (same seed) gets the same ids.

Older databases (0.1.0, 0.2.0) numbered rows ``max(id) + 1`` across the whole
file; those rows keep their ids. They all lie in block 0 (below ``2**32``),
which no episode owns because episode ids start at 1. Migration ``m004``
checks, once, that an old file has no row at or past ``2**32``, and ids
handed out by the legacy :meth:`~personae.store.writer.Writer.new_id` stay in
block 0 (:func:`legacy_ceiling`).

Nothing reads meaning into the ids beyond uniqueness: no view or analysis
assumes they are contiguous or ordered across episodes (within an episode,
they grow in the order the rows were made). Ids stay below ``2**53`` (exact
in a JavaScript number or a float64 column) for episode ids below ``2**21``.
"""

from __future__ import annotations

from personae.errors import StoreError

__all__ = ["BLOCK", "LOW_BITS", "block_of", "first_id", "legacy_ceiling"]

#: Bits of a row id that count the rows of one episode in one table.
LOW_BITS = 32

#: Ids in each episode's block: ``BLOCK - 1`` rows per table and episode at most.
BLOCK = 1 << LOW_BITS


def first_id(episode_id: int) -> int:
    """The id before the first row of ``episode_id`` (its rows are ``first_id + 1, + 2, ...``).

    Raises:
        StoreError: ``episode_id`` is not a positive integer below ``2**31``.
    """
    if not 0 < episode_id < 1 << (63 - LOW_BITS):
        raise StoreError(
            f"episode id {episode_id} has no block of row ids; episode ids run from 1 "
            f"to {(1 << (63 - LOW_BITS)) - 1}"
        )
    return episode_id << LOW_BITS


def block_of(row_id: int) -> int:
    """The episode whose block holds ``row_id`` (0 for ids of older databases)."""
    return row_id >> LOW_BITS


def legacy_ceiling() -> int:
    """The first id the legacy ``max(id) + 1`` numbering may not reach (the start of block 1)."""
    return BLOCK
