"""The SQLite schema: every table personae writes, in one file.

The tables are documented column by column in ``docs/schema.md``; keep the two
in step. Rows of an episode are written while it runs, but the episode only
counts once ``episodes.status`` is ``'complete'``, which is set after all its
rows are committed. The views for people (``transcript``, ...) show complete
episodes only.
"""

from __future__ import annotations

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Written to ``PRAGMA application_id`` so a personae database can be told from any other.
APPLICATION_ID = 0x50455253  # "PERS"


class Base(DeclarativeBase):
    """Declarative base of the personae tables."""


class ExperimentRow(Base):
    """One Monte Carlo experiment: a scenario, a parameter grid, replicates and a seed."""

    __tablename__ = "experiments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String, nullable=False)
    scenario: Mapped[str] = mapped_column(String, nullable=False)
    config_hash: Mapped[str] = mapped_column(String, nullable=False, unique=True)
    config_json: Mapped[str] = mapped_column(Text, nullable=False)
    seed: Mapped[int] = mapped_column(Integer, nullable=False)
    model: Mapped[str | None] = mapped_column(String)
    server_info: Mapped[str | None] = mapped_column(Text)
    code_version: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[str] = mapped_column(String, nullable=False)
    replay: Mapped[str | None] = mapped_column(String)


class EpisodeRow(Base):
    """One run of the scenario with one parameter set and one replicate index."""

    __tablename__ = "episodes"
    __table_args__ = (UniqueConstraint("experiment_id", "param_index", "replicate"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"), nullable=False)
    param_index: Mapped[int] = mapped_column(Integer, nullable=False)
    replicate: Mapped[int] = mapped_column(Integer, nullable=False)
    params_json: Mapped[str] = mapped_column(Text, nullable=False)
    param_key: Mapped[str | None] = mapped_column(Text)
    seed: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String, nullable=False, default="pending")
    n_turns: Mapped[int | None] = mapped_column(Integer)
    end_reason: Mapped[str | None] = mapped_column(String)
    started_at: Mapped[str | None] = mapped_column(String)
    finished_at: Mapped[str | None] = mapped_column(String)
    error: Mapped[str | None] = mapped_column(Text)
    row_counts: Mapped[str | None] = mapped_column(Text)


class AgentRow(Base):
    """A participant of one episode, with the persona it was given."""

    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("episode_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"), nullable=False)
    name: Mapped[str] = mapped_column(String, nullable=False)
    role: Mapped[str] = mapped_column(String, nullable=False)
    persona_json: Mapped[str] = mapped_column(Text, nullable=False)
    #: The system prompt the agent started the episode with (persona card and
    #: the scenario's rules, as sent); NULL for agents stored before 0.3.
    system_prompt: Mapped[str | None] = mapped_column(Text)


class LLMCallRow(Base):
    """One request to the model: who asked, why, with which seed and parameters, and the cost."""

    __tablename__ = "llm_calls"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"), nullable=False)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    purpose: Mapped[str] = mapped_column(String, nullable=False)
    step: Mapped[int | None] = mapped_column(Integer)
    model: Mapped[str | None] = mapped_column(String)
    server: Mapped[str | None] = mapped_column(String)
    seed: Mapped[int | None] = mapped_column(Integer)
    params_json: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int | None] = mapped_column(Integer)
    finish_reason: Mapped[str | None] = mapped_column(String)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(String, nullable=False)
    raw_text: Mapped[str | None] = mapped_column(Text)
    raw_bytes: Mapped[bytes | None] = mapped_column(LargeBinary)
    replaced_chars: Mapped[int | None] = mapped_column(Integer)
    endpoint: Mapped[str | None] = mapped_column(String)
    structured: Mapped[str | None] = mapped_column(String)
    replica: Mapped[str | None] = mapped_column(String)
    cached_tokens: Mapped[int | None] = mapped_column(Integer)


class TurnRow(Base):
    """One utterance in a conversation."""

    __tablename__ = "turns"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"), nullable=False)
    session: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    step: Mapped[int] = mapped_column(Integer, nullable=False)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), nullable=False)
    visible_to: Mapped[str | None] = mapped_column(Text)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    scripted: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    llm_call_id: Mapped[int | None] = mapped_column(ForeignKey("llm_calls.id"))
    created_at: Mapped[str] = mapped_column(String, nullable=False)
    truncated: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    empty: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    cleaned: Mapped[str | None] = mapped_column(Text)


class MemoryRow(Base):
    """A recorded memory event: a rolling summary that replaced older history."""

    __tablename__ = "memories"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"), nullable=False)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), nullable=False)
    session: Mapped[int] = mapped_column(Integer, nullable=False)
    step: Mapped[int] = mapped_column(Integer, nullable=False)
    kind: Mapped[str] = mapped_column(String, nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    llm_call_id: Mapped[int | None] = mapped_column(ForeignKey("llm_calls.id"))


class StateRow(Base):
    """A numeric or text observation over time: mental state, sensors, opinions, probe results."""

    __tablename__ = "states"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"), nullable=False)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    session: Mapped[int | None] = mapped_column(Integer)
    t: Mapped[int] = mapped_column(Integer, nullable=False)
    variable: Mapped[str] = mapped_column(String, nullable=False)
    value: Mapped[float | None] = mapped_column(Float)
    text: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String, nullable=False)


class MeasurementRow(Base):
    """One answer to one questionnaire item, given in a separate context (a probe)."""

    __tablename__ = "measurements"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"), nullable=False)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), nullable=False)
    session: Mapped[int | None] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer, nullable=False)
    point: Mapped[str] = mapped_column(String, nullable=False)
    occasion: Mapped[int] = mapped_column(Integer, nullable=False)
    instrument: Mapped[str] = mapped_column(String, nullable=False)
    item: Mapped[str] = mapped_column(String, nullable=False)
    prompt_variant: Mapped[int] = mapped_column(Integer, nullable=False)
    option_order: Mapped[str] = mapped_column(String, nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    batch: Mapped[int] = mapped_column(Integer, nullable=False)
    raw: Mapped[str | None] = mapped_column(Text)
    value: Mapped[float | None] = mapped_column(Float)
    valid: Mapped[int] = mapped_column(Integer, nullable=False)
    reason: Mapped[str | None] = mapped_column(String)
    llm_call_id: Mapped[int | None] = mapped_column(ForeignKey("llm_calls.id"))


class ScoreRow(Base):
    """A scale score of one administration: a facet, a domain or a total, self-reported or judged."""

    __tablename__ = "scores"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"), nullable=False)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), nullable=False)
    session: Mapped[int | None] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer, nullable=False)
    point: Mapped[str] = mapped_column(String, nullable=False)
    occasion: Mapped[int] = mapped_column(Integer, nullable=False)
    instrument: Mapped[str] = mapped_column(String, nullable=False)
    level: Mapped[str] = mapped_column(String, nullable=False)
    scale: Mapped[str] = mapped_column(String, nullable=False)
    value: Mapped[float | None] = mapped_column(Float)
    n_items: Mapped[int] = mapped_column(Integer, nullable=False)
    n_missing: Mapped[int] = mapped_column(Integer, nullable=False)
    band: Mapped[str | None] = mapped_column(String)
    prompt_variant: Mapped[int | None] = mapped_column(Integer)
    option_order: Mapped[str | None] = mapped_column(String)
    source: Mapped[str] = mapped_column(String, nullable=False)


Index("ix_episodes_experiment_status", EpisodeRow.experiment_id, EpisodeRow.status)
Index("ix_agents_episode", AgentRow.episode_id)
Index("ix_turns_episode_step", TurnRow.episode_id, TurnRow.session, TurnRow.step)
Index("ix_llm_calls_episode", LLMCallRow.episode_id)
Index("ix_memories_episode", MemoryRow.episode_id)
Index("ix_states_episode_var", StateRow.episode_id, StateRow.variable, StateRow.t)
Index("ix_measurements_episode", MeasurementRow.episode_id, MeasurementRow.instrument)
Index("ix_scores_episode", ScoreRow.episode_id, ScoreRow.instrument, ScoreRow.scale)

#: Columns added after the first release, by table: (name, SQLite type and default).
#: A database made before them gets them from migration ``m003``.
ADDED_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "episodes": (("param_key", "TEXT"), ("row_counts", "TEXT")),
    "llm_calls": (
        ("raw_text", "TEXT"),
        ("raw_bytes", "BLOB"),
        ("replaced_chars", "INTEGER"),
    ),
    "turns": (
        ("truncated", "INTEGER NOT NULL DEFAULT 0"),
        ("empty", "INTEGER NOT NULL DEFAULT 0"),
        ("cleaned", "TEXT"),
    ),
}

#: Tables that hold rows of one episode, in the order they must be deleted.
EPISODE_TABLES = (
    "evaluations",
    "turns",
    "memories",
    "states",
    "measurements",
    "scores",
    "llm_calls",
    "agents",
)

VIEWS: dict[str, str] = {
    "transcript": """
        SELECT x.name AS experiment, e.experiment_id, t.episode_id, e.replicate,
               e.param_index, e.params_json AS params, e.seed, t.session, t.step,
               a.name AS speaker, a.role, t.content AS text, t.truncated, t.empty
        FROM turns t
        JOIN episodes e ON e.id = t.episode_id
        JOIN experiments x ON x.id = e.experiment_id
        JOIN agents a ON a.id = t.agent_id
        WHERE e.status = 'complete'
        ORDER BY t.episode_id, t.session, t.step
    """,
    "trait_scores": """
        SELECT x.name AS experiment, e.experiment_id, s.episode_id, e.replicate,
               e.param_index, e.params_json AS params, e.seed, a.name AS agent, a.role,
               s.session, s.step, s.point, s.occasion, s.instrument, s.level, s.scale,
               s.value, s.band, s.n_items, s.n_missing, s.prompt_variant, s.option_order,
               s.source
        FROM scores s
        JOIN episodes e ON e.id = s.episode_id
        JOIN experiments x ON x.id = e.experiment_id
        JOIN agents a ON a.id = s.agent_id
        WHERE e.status = 'complete'
        ORDER BY s.episode_id, a.name, s.instrument, s.occasion, s.level, s.scale
    """,
    "episode_summary": """
        SELECT x.name AS experiment, e.experiment_id, e.id AS episode_id, e.param_index,
               e.replicate, e.params_json AS params, e.seed, e.status, e.n_turns,
               e.end_reason, e.started_at, e.finished_at,
               (SELECT COUNT(*) FROM llm_calls c WHERE c.episode_id = e.id) AS llm_calls,
               (SELECT COALESCE(SUM(c.completion_tokens), 0) FROM llm_calls c
                 WHERE c.episode_id = e.id) AS completion_tokens
        FROM episodes e JOIN experiments x ON x.id = e.experiment_id
        ORDER BY e.id
    """,
}


class EvaluationRow(Base):
    """One score an evaluator gave a stored episode, agent or turn on one dimension.

    ``sample`` numbers repeated ratings of the same item (other seeds), so the
    judge's agreement with itself can be measured; ``valid`` is 0 for an answer
    that could not be read or lay outside the dimension's range, with ``reason``
    and the judge's ``raw_text`` kept.
    """

    __tablename__ = "evaluations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"), nullable=False)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    turn_id: Mapped[int | None] = mapped_column(ForeignKey("turns.id"))
    step: Mapped[int | None] = mapped_column(Integer)
    evaluator: Mapped[str] = mapped_column(String, nullable=False)
    evaluator_version: Mapped[str] = mapped_column(String, nullable=False)
    dimension: Mapped[str] = mapped_column(String, nullable=False)
    sample: Mapped[int] = mapped_column(Integer, nullable=False)
    value: Mapped[float | None] = mapped_column(Float)
    valid: Mapped[int] = mapped_column(Integer, nullable=False)
    reason: Mapped[str | None] = mapped_column(String)
    rationale: Mapped[str | None] = mapped_column(Text)
    raw_text: Mapped[str | None] = mapped_column(Text)
    llm_call_id: Mapped[int | None] = mapped_column(ForeignKey("llm_calls.id"))
    judge_endpoint: Mapped[str | None] = mapped_column(String)
    judge_model: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[str] = mapped_column(String, nullable=False)


Index(
    "ix_evaluations_episode",
    EvaluationRow.episode_id,
    EvaluationRow.evaluator,
    EvaluationRow.evaluator_version,
)

VIEWS["evaluation_scores"] = """
        SELECT x.name AS experiment, e.experiment_id, v.episode_id, e.replicate,
               e.param_index, e.params_json AS params, e.seed, a.name AS agent, a.role,
               v.turn_id, v.step, v.evaluator, v.evaluator_version, v.dimension, v.sample,
               v.value, v.valid, v.reason, v.rationale, v.judge_endpoint, v.judge_model,
               v.llm_call_id
        FROM evaluations v
        JOIN episodes e ON e.id = v.episode_id
        JOIN experiments x ON x.id = e.experiment_id
        LEFT JOIN agents a ON a.id = v.agent_id
        WHERE e.status = 'complete'
        ORDER BY v.episode_id, v.evaluator, a.name, v.step, v.dimension, v.sample
    """
