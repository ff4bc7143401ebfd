"""Moved to :mod:`personae.engine.conversation`; these names keep working until 0.4."""

from personae.engine.conversation import (
    EpisodeState,
    after_session,
    after_turn,
    begin_session,
    build_graph,
    end_session,
    initial_state,
    recursion_limit,
    take_turn,
)

__all__ = [
    "EpisodeState",
    "after_session",
    "after_turn",
    "begin_session",
    "build_graph",
    "end_session",
    "initial_state",
    "recursion_limit",
    "take_turn",
]
