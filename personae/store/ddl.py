"""The schema as released, frozen: the DDL the migrations apply. Never edit what is here.

Migrations must not build tables from the current ORM models (``schema.py``):
those change, and a migration that created "the current ``turns``" would make
a new file differ from an upgraded one, and make the first ``ADD COLUMN``
migration fail on new files. So each migration spells out what it creates,
as released:

* ``V0_1_0_TABLES``, ``V0_1_0_INDEXES``, ``V0_1_0_VIEWS``: the 0.1.0 file, made
  by ``m001_initial`` (the text SQLAlchemy wrote then, one column a line).
* ``V0_1_0_MEASUREMENT_TABLES``: the questionnaire tables as ``m002`` creates
  them where missing (a file from before 0.1.0).
* ``V0_2_0_ADDED_COLUMNS``, ``V0_2_0_VIEWS``: what ``m003_honest_rows`` adds.
* ``V0_3_0_ADDED_COLUMNS``: what ``m005_agent_prompts`` adds (no view changes).
* ``V0_3_0_ENDPOINT_COLUMNS``: what ``m006_endpoints`` adds (no view changes).

A new column, table, index or view is a new migration (``m005`` and on) with
its own frozen DDL here, and the matching change to ``schema.py``;
``tests/unit/test_migrations.py`` checks that the two agree.
"""

from __future__ import annotations

__all__ = [
    "V0_1_0_INDEXES",
    "V0_1_0_MEASUREMENT_TABLES",
    "V0_1_0_TABLES",
    "V0_1_0_VIEWS",
    "V0_2_0_ADDED_COLUMNS",
    "V0_2_0_VIEWS",
    "V0_3_0_ADDED_COLUMNS",
    "V0_3_0_ENDPOINT_COLUMNS",
]


#: The tables of a 0.1.0 file, in the order 0.1.0 created them.
V0_1_0_TABLES: tuple[str, ...] = (
    """CREATE TABLE experiments (
    id INTEGER NOT NULL,
    name VARCHAR NOT NULL,
    scenario VARCHAR NOT NULL,
    config_hash VARCHAR NOT NULL,
    config_json TEXT NOT NULL,
    seed INTEGER NOT NULL,
    model VARCHAR,
    server_info TEXT,
    code_version VARCHAR,
    created_at VARCHAR NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (config_hash)
)""",
    """CREATE TABLE episodes (
    id INTEGER NOT NULL,
    experiment_id INTEGER NOT NULL,
    param_index INTEGER NOT NULL,
    replicate INTEGER NOT NULL,
    params_json TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status VARCHAR NOT NULL,
    n_turns INTEGER,
    end_reason VARCHAR,
    started_at VARCHAR,
    finished_at VARCHAR,
    error TEXT,
    PRIMARY KEY (id),
    UNIQUE (experiment_id, param_index, replicate),
    FOREIGN KEY(experiment_id) REFERENCES experiments (id)
)""",
    """CREATE TABLE agents (
    id INTEGER NOT NULL,
    episode_id INTEGER NOT NULL,
    name VARCHAR NOT NULL,
    role VARCHAR NOT NULL,
    persona_json TEXT NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (episode_id, name),
    FOREIGN KEY(episode_id) REFERENCES episodes (id)
)""",
    """CREATE TABLE llm_calls (
    id INTEGER NOT NULL,
    episode_id INTEGER NOT NULL,
    agent_id INTEGER,
    purpose VARCHAR NOT NULL,
    step INTEGER,
    model VARCHAR,
    server VARCHAR,
    seed INTEGER,
    params_json TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    latency_ms FLOAT,
    attempts INTEGER,
    finish_reason VARCHAR,
    error TEXT,
    created_at VARCHAR NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(episode_id) REFERENCES episodes (id),
    FOREIGN KEY(agent_id) REFERENCES agents (id)
)""",
    """CREATE TABLE states (
    id INTEGER NOT NULL,
    episode_id INTEGER NOT NULL,
    agent_id INTEGER,
    session INTEGER,
    t INTEGER NOT NULL,
    variable VARCHAR NOT NULL,
    value FLOAT,
    text TEXT,
    source VARCHAR NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(episode_id) REFERENCES episodes (id),
    FOREIGN KEY(agent_id) REFERENCES agents (id)
)""",
    """CREATE TABLE scores (
    id INTEGER NOT NULL,
    episode_id INTEGER NOT NULL,
    agent_id INTEGER NOT NULL,
    session INTEGER,
    step INTEGER NOT NULL,
    point VARCHAR NOT NULL,
    occasion INTEGER NOT NULL,
    instrument VARCHAR NOT NULL,
    level VARCHAR NOT NULL,
    scale VARCHAR NOT NULL,
    value FLOAT,
    n_items INTEGER NOT NULL,
    n_missing INTEGER NOT NULL,
    band VARCHAR,
    prompt_variant INTEGER,
    option_order VARCHAR,
    source VARCHAR NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(episode_id) REFERENCES episodes (id),
    FOREIGN KEY(agent_id) REFERENCES agents (id)
)""",
    """CREATE TABLE turns (
    id INTEGER NOT NULL,
    episode_id INTEGER NOT NULL,
    session INTEGER NOT NULL,
    step INTEGER NOT NULL,
    agent_id INTEGER NOT NULL,
    visible_to TEXT,
    content TEXT NOT NULL,
    scripted INTEGER NOT NULL,
    llm_call_id INTEGER,
    created_at VARCHAR NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(episode_id) REFERENCES episodes (id),
    FOREIGN KEY(agent_id) REFERENCES agents (id),
    FOREIGN KEY(llm_call_id) REFERENCES llm_calls (id)
)""",
    """CREATE TABLE memories (
    id INTEGER NOT NULL,
    episode_id INTEGER NOT NULL,
    agent_id INTEGER NOT NULL,
    session INTEGER NOT NULL,
    step INTEGER NOT NULL,
    kind VARCHAR NOT NULL,
    content TEXT NOT NULL,
    llm_call_id INTEGER,
    PRIMARY KEY (id),
    FOREIGN KEY(episode_id) REFERENCES episodes (id),
    FOREIGN KEY(agent_id) REFERENCES agents (id),
    FOREIGN KEY(llm_call_id) REFERENCES llm_calls (id)
)""",
    """CREATE TABLE measurements (
    id INTEGER NOT NULL,
    episode_id INTEGER NOT NULL,
    agent_id INTEGER NOT NULL,
    session INTEGER,
    step INTEGER NOT NULL,
    point VARCHAR NOT NULL,
    occasion INTEGER NOT NULL,
    instrument VARCHAR NOT NULL,
    item VARCHAR NOT NULL,
    prompt_variant INTEGER NOT NULL,
    option_order VARCHAR NOT NULL,
    position INTEGER NOT NULL,
    batch INTEGER NOT NULL,
    raw TEXT,
    value FLOAT,
    valid INTEGER NOT NULL,
    reason VARCHAR,
    llm_call_id INTEGER,
    PRIMARY KEY (id),
    FOREIGN KEY(episode_id) REFERENCES episodes (id),
    FOREIGN KEY(agent_id) REFERENCES agents (id),
    FOREIGN KEY(llm_call_id) REFERENCES llm_calls (id)
)""",
)

#: The indexes of a 0.1.0 file.
V0_1_0_INDEXES: tuple[str, ...] = (
    "CREATE INDEX ix_episodes_experiment_status ON episodes (experiment_id, status)",
    "CREATE INDEX ix_agents_episode ON agents (episode_id)",
    "CREATE INDEX ix_llm_calls_episode ON llm_calls (episode_id)",
    "CREATE INDEX ix_states_episode_var ON states (episode_id, variable, t)",
    "CREATE INDEX ix_scores_episode ON scores (episode_id, instrument, scale)",
    "CREATE INDEX ix_turns_episode_step ON turns (episode_id, session, step)",
    "CREATE INDEX ix_memories_episode ON memories (episode_id)",
    "CREATE INDEX ix_measurements_episode ON measurements (episode_id, instrument)",
)

#: The questionnaire tables (and their indexes) of 0.1.0, for ``m002`` on older files.
V0_1_0_MEASUREMENT_TABLES: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS scores (
    id INTEGER NOT NULL,
    episode_id INTEGER NOT NULL,
    agent_id INTEGER NOT NULL,
    session INTEGER,
    step INTEGER NOT NULL,
    point VARCHAR NOT NULL,
    occasion INTEGER NOT NULL,
    instrument VARCHAR NOT NULL,
    level VARCHAR NOT NULL,
    scale VARCHAR NOT NULL,
    value FLOAT,
    n_items INTEGER NOT NULL,
    n_missing INTEGER NOT NULL,
    band VARCHAR,
    prompt_variant INTEGER,
    option_order VARCHAR,
    source VARCHAR NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(episode_id) REFERENCES episodes (id),
    FOREIGN KEY(agent_id) REFERENCES agents (id)
)""",
    """CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER NOT NULL,
    episode_id INTEGER NOT NULL,
    agent_id INTEGER NOT NULL,
    session INTEGER,
    step INTEGER NOT NULL,
    point VARCHAR NOT NULL,
    occasion INTEGER NOT NULL,
    instrument VARCHAR NOT NULL,
    item VARCHAR NOT NULL,
    prompt_variant INTEGER NOT NULL,
    option_order VARCHAR NOT NULL,
    position INTEGER NOT NULL,
    batch INTEGER NOT NULL,
    raw TEXT,
    value FLOAT,
    valid INTEGER NOT NULL,
    reason VARCHAR,
    llm_call_id INTEGER,
    PRIMARY KEY (id),
    FOREIGN KEY(episode_id) REFERENCES episodes (id),
    FOREIGN KEY(agent_id) REFERENCES agents (id),
    FOREIGN KEY(llm_call_id) REFERENCES llm_calls (id)
)""",
    "CREATE INDEX IF NOT EXISTS ix_scores_episode ON scores (episode_id, instrument, scale)",
    "CREATE INDEX IF NOT EXISTS ix_measurements_episode ON measurements (episode_id, instrument)",
)

#: The views of a 0.1.0 file: name -> the SELECT after ``AS``.
V0_1_0_VIEWS: dict[str, str] = {
    "transcript": """
        SELECT x.name AS experiment, e.experiment_id, t.episode_id, e.replicate,
               e.param_index, e.params_json AS params, e.seed, t.session, t.step,
               a.name AS speaker, a.role, t.content AS text
        FROM turns t
        JOIN episodes e ON e.id = t.episode_id
        JOIN experiments x ON x.id = e.experiment_id
        JOIN agents a ON a.id = t.agent_id
        WHERE e.status = 'complete'
        ORDER BY t.episode_id, t.session, t.step""",
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
        ORDER BY s.episode_id, a.name, s.instrument, s.occasion, s.level, s.scale""",
    "episode_summary": """
        SELECT x.name AS experiment, e.experiment_id, e.id AS episode_id, e.param_index,
               e.replicate, e.params_json AS params, e.seed, e.status, e.n_turns,
               e.end_reason, e.started_at, e.finished_at,
               (SELECT COUNT(*) FROM llm_calls c WHERE c.episode_id = e.id) AS llm_calls,
               (SELECT COALESCE(SUM(c.completion_tokens), 0) FROM llm_calls c
                 WHERE c.episode_id = e.id) AS completion_tokens
        FROM episodes e JOIN experiments x ON x.id = e.experiment_id
        ORDER BY e.id""",
}

#: Columns ``m003`` adds where missing, by table: (name, SQLite type and default).
V0_2_0_ADDED_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "episodes": (("param_key", "TEXT"), ("row_counts", "TEXT")),
    "llm_calls": (("raw_text", "TEXT"), ("raw_bytes", "BLOB"), ("replaced_chars", "INTEGER")),
    "turns": (
        ("truncated", "INTEGER NOT NULL DEFAULT 0"),
        ("empty", "INTEGER NOT NULL DEFAULT 0"),
        ("cleaned", "TEXT"),
    ),
}

#: The views ``m003`` rebuilds: name -> the SELECT after ``AS``.
V0_2_0_VIEWS: dict[str, str] = {
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

#: Columns ``m005`` adds, by table: (name, SQLite type). Rows written before stay NULL.
V0_3_0_ADDED_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "agents": (("system_prompt", "TEXT"),),
}

#: Columns ``m006`` adds, by table: (name, SQLite type). Rows written before stay NULL.
V0_3_0_ENDPOINT_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "llm_calls": (("endpoint", "VARCHAR"), ("structured", "VARCHAR"), ("replica", "VARCHAR")),
}

#: Columns ``m008`` adds, by table: (name, SQLite type). Rows written before stay NULL.
V0_3_0_REPLAY_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "experiments": (("replay", "VARCHAR"),),
    "llm_calls": (("cached_tokens", "INTEGER"),),
}

#: The table ``m007`` creates: the scores evaluators give stored episodes (frozen).
V0_3_0_EVALUATION_TABLE = """
    CREATE TABLE IF NOT EXISTS evaluations (
        id INTEGER NOT NULL PRIMARY KEY,
        episode_id INTEGER NOT NULL REFERENCES episodes (id),
        agent_id INTEGER REFERENCES agents (id),
        turn_id INTEGER REFERENCES turns (id),
        step INTEGER,
        evaluator VARCHAR NOT NULL,
        evaluator_version VARCHAR NOT NULL,
        dimension VARCHAR NOT NULL,
        sample INTEGER NOT NULL,
        value FLOAT,
        valid INTEGER NOT NULL,
        reason VARCHAR,
        rationale TEXT,
        raw_text TEXT,
        llm_call_id INTEGER REFERENCES llm_calls (id),
        judge_endpoint VARCHAR,
        judge_model VARCHAR,
        created_at VARCHAR NOT NULL
    )"""

#: The index ``m007`` creates on ``evaluations``.
V0_3_0_EVALUATION_INDEX = (
    "CREATE INDEX IF NOT EXISTS ix_evaluations_episode "
    "ON evaluations (episode_id, evaluator, evaluator_version)"
)

#: The view ``m007`` creates: evaluations of complete episodes with their conditions.
V0_3_0_EVALUATION_VIEWS: dict[str, str] = {
    "evaluation_scores": """
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
    """,
}
