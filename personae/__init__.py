"""personae: persona-grounded multi-agent social simulation.

Define personas and a scenario in Python, run Monte Carlo experiments against
a local vLLM server (or any OpenAI-compatible one), and query every turn in
SQLite.

Example:
    >>> from personae import Persona, Scenario, Experiment, MaxTurns
"""

from personae.agents import Agent, CognitiveModel, Demographics, Memory, Persona, Utterance
from personae.engine import (
    ActivityWeighted,
    Cue,
    Episode,
    MaxTurns,
    Moderated,
    Monitor,
    Neighbours,
    Never,
    Opening,
    Probe,
    ProbePoint,
    RandomOrder,
    RoundRobin,
    Says,
    Scenario,
    Script,
    Stop,
    TurnView,
    When,
)
from personae.errors import (
    ConfigError,
    ModelError,
    ModelTimeout,
    ModelUnreachable,
    PersonaeError,
    ScenarioFileError,
    ServerError,
    StoreError,
)
from personae.llm.base import ChatModel, Completion, Message, Sampling
from personae.llm.fake import FunctionModel, ScriptedModel
from personae.llm.structured import Choice, Grammar, JsonSchema, Regex
from personae.measures.administer import Questionnaire
from personae.measures.instruments import Instrument, load_instrument
from personae.measures.judge import Judge
from personae.runner import Experiment, LocalExecutor, RunSummary
from personae.seeds import derive_seed
from personae.world.networks import Network

__version__ = "0.3.0"

__all__ = [
    "ActivityWeighted",
    "Agent",
    "ChatModel",
    "Choice",
    "CognitiveModel",
    "Completion",
    "ConfigError",
    "Cue",
    "Demographics",
    "Episode",
    "Experiment",
    "FunctionModel",
    "Grammar",
    "Instrument",
    "JsonSchema",
    "Judge",
    "LocalExecutor",
    "MaxTurns",
    "Memory",
    "Message",
    "ModelError",
    "ModelTimeout",
    "ModelUnreachable",
    "Moderated",
    "Monitor",
    "Neighbours",
    "Network",
    "Never",
    "Opening",
    "Persona",
    "PersonaeError",
    "Probe",
    "ProbePoint",
    "Questionnaire",
    "RandomOrder",
    "Regex",
    "RoundRobin",
    "RunSummary",
    "Sampling",
    "Says",
    "Scenario",
    "ScenarioFileError",
    "Script",
    "ScriptedModel",
    "ServerError",
    "Stop",
    "StoreError",
    "TurnView",
    "Utterance",
    "When",
    "__version__",
    "derive_seed",
    "load_instrument",
]
