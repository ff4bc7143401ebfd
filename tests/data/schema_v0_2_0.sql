-- sqlite_master of a new database made by personae 0.2.0 (see tests/data/README)
CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT);
CREATE TABLE experiments (
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
);
CREATE TABLE episodes (
	id INTEGER NOT NULL, 
	experiment_id INTEGER NOT NULL, 
	param_index INTEGER NOT NULL, 
	replicate INTEGER NOT NULL, 
	params_json TEXT NOT NULL, 
	param_key TEXT, 
	seed INTEGER NOT NULL, 
	status VARCHAR NOT NULL, 
	n_turns INTEGER, 
	end_reason VARCHAR, 
	started_at VARCHAR, 
	finished_at VARCHAR, 
	error TEXT, 
	row_counts TEXT, 
	PRIMARY KEY (id), 
	UNIQUE (experiment_id, param_index, replicate), 
	FOREIGN KEY(experiment_id) REFERENCES experiments (id)
);
CREATE INDEX ix_episodes_experiment_status ON episodes (experiment_id, status);
CREATE TABLE agents (
	id INTEGER NOT NULL, 
	episode_id INTEGER NOT NULL, 
	name VARCHAR NOT NULL, 
	role VARCHAR NOT NULL, 
	persona_json TEXT NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (episode_id, name), 
	FOREIGN KEY(episode_id) REFERENCES episodes (id)
);
CREATE INDEX ix_agents_episode ON agents (episode_id);
CREATE TABLE llm_calls (
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
	raw_text TEXT, 
	raw_bytes BLOB, 
	replaced_chars INTEGER, 
	PRIMARY KEY (id), 
	FOREIGN KEY(episode_id) REFERENCES episodes (id), 
	FOREIGN KEY(agent_id) REFERENCES agents (id)
);
CREATE INDEX ix_llm_calls_episode ON llm_calls (episode_id);
CREATE TABLE states (
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
);
CREATE INDEX ix_states_episode_var ON states (episode_id, variable, t);
CREATE TABLE scores (
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
);
CREATE INDEX ix_scores_episode ON scores (episode_id, instrument, scale);
CREATE TABLE turns (
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
	truncated INTEGER DEFAULT '0' NOT NULL, 
	empty INTEGER DEFAULT '0' NOT NULL, 
	cleaned TEXT, 
	PRIMARY KEY (id), 
	FOREIGN KEY(episode_id) REFERENCES episodes (id), 
	FOREIGN KEY(agent_id) REFERENCES agents (id), 
	FOREIGN KEY(llm_call_id) REFERENCES llm_calls (id)
);
CREATE INDEX ix_turns_episode_step ON turns (episode_id, session, step);
CREATE TABLE memories (
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
);
CREATE INDEX ix_memories_episode ON memories (episode_id);
CREATE TABLE measurements (
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
);
CREATE INDEX ix_measurements_episode ON measurements (episode_id, instrument);
CREATE VIEW transcript AS 
        SELECT x.name AS experiment, e.experiment_id, t.episode_id, e.replicate,
               e.param_index, e.params_json AS params, e.seed, t.session, t.step,
               a.name AS speaker, a.role, t.content AS text, t.truncated, t.empty
        FROM turns t
        JOIN episodes e ON e.id = t.episode_id
        JOIN experiments x ON x.id = e.experiment_id
        JOIN agents a ON a.id = t.agent_id
        WHERE e.status = 'complete'
        ORDER BY t.episode_id, t.session, t.step;
CREATE VIEW trait_scores AS 
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
        ORDER BY s.episode_id, a.name, s.instrument, s.occasion, s.level, s.scale;
CREATE VIEW episode_summary AS 
        SELECT x.name AS experiment, e.experiment_id, e.id AS episode_id, e.param_index,
               e.replicate, e.params_json AS params, e.seed, e.status, e.n_turns,
               e.end_reason, e.started_at, e.finished_at,
               (SELECT COUNT(*) FROM llm_calls c WHERE c.episode_id = e.id) AS llm_calls,
               (SELECT COALESCE(SUM(c.completion_tokens), 0) FROM llm_calls c
                 WHERE c.episode_id = e.id) AS completion_tokens
        FROM episodes e JOIN experiments x ON x.id = e.experiment_id
        ORDER BY e.id;
