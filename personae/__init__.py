"""personae: persona-grounded multi-agent social simulation.

Define personas and a scenario in Python, run Monte Carlo experiments against
a local vLLM server (or any OpenAI-compatible one), and query every turn in
SQLite.

Example:
    >>> from personae import Persona, Scenario, Experiment, MaxTurns
"""

from personae.agents import Agent, CognitiveModel, Demographics, Memory, Persona, Utterance
from personae.environments.networks import Network
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
from personae.llm.base import ChatModel, Completion, Message
from personae.llm.fake import FunctionModel, ScriptedModel
from personae.measures.administer import Questionnaire
from personae.measures.instruments import Instrument, load_instrument
from personae.measures.judge import Judge
from personae.runner import Experiment, LocalExecutor, RunSummary
from personae.scenarios import (
    ActivityWeighted,
    Episode,
    MaxTurns,
    Moderated,
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
    TurnView,
    When,
)
from personae.seeds import derive_seed

__version__ = "0.2.0"

__all__ = [
    "ActivityWeighted",
    "Agent",
    "ChatModel",
    "CognitiveModel",
    "Completion",
    "ConfigError",
    "Demographics",
    "Episode",
    "Experiment",
    "FunctionModel",
    "Instrument",
    "Judge",
    "LocalExecutor",
    "MaxTurns",
    "Memory",
    "Message",
    "ModelError",
    "ModelTimeout",
    "ModelUnreachable",
    "Moderated",
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
    "RoundRobin",
    "RunSummary",
    "Says",
    "Scenario",
    "ScenarioFileError",
    "Script",
    "ScriptedModel",
    "ServerError",
    "StoreError",
    "TurnView",
    "Utterance",
    "When",
    "__version__",
    "derive_seed",
    "load_instrument",
]
