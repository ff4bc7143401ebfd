"""Agents: personas, memory and the Agent that speaks through a ChatModel."""

from personae.agents.agent import Agent
from personae.agents.memory import Memory, Utterance
from personae.agents.persona import (
    BIG_FIVE,
    CLIENT_STYLES,
    CORE_BELIEFS,
    EMOTIONS,
    CognitiveModel,
    Demographics,
    Persona,
)

__all__ = [
    "BIG_FIVE",
    "CLIENT_STYLES",
    "CORE_BELIEFS",
    "EMOTIONS",
    "Agent",
    "CognitiveModel",
    "Demographics",
    "Memory",
    "Persona",
    "Utterance",
]
