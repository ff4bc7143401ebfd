"""Hand-made personae databases for analysis tests: the real schema, rows written directly."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from personae.store.database import Database


class HandMadeDb:
    """A fresh database with one experiment; subclasses add the rows their analysis reads."""

    def __init__(self, path: Path, scenario: str = "counseling") -> None:
        Database(path).close()
        self.path = path
        self.con = sqlite3.connect(path)
        self.con.execute(
            "INSERT INTO experiments (id, name, scenario, config_hash, config_json, seed, model,"
            " created_at) VALUES (1, ?, ?, 'h', '{}', 1, 'fake', 'now')",
            (scenario, scenario),
        )
        self.agents: dict[tuple[int, str], int] = {}

    def add_episode(
        self,
        params: Mapping[str, Any],
        *,
        param_index: int = 0,
        replicate: int = 0,
        status: str = "complete",
    ) -> int:
        cur = self.con.execute(
            "INSERT INTO episodes (experiment_id, param_index, replicate, params_json, seed,"
            " status) VALUES (1, ?, ?, ?, 0, ?)",
            (param_index, replicate, json.dumps(dict(params)), status),
        )
        return int(cur.lastrowid or 0)

    def add_agent(
        self, episode: int, name: str, role: str, persona: Mapping[str, Any] | None = None
    ) -> int:
        cur = self.con.execute(
            "INSERT INTO agents (episode_id, name, role, persona_json) VALUES (?, ?, ?, ?)",
            (episode, name, role, json.dumps(dict(persona or {}))),
        )
        self.agents[episode, name] = int(cur.lastrowid or 0)
        return self.agents[episode, name]

    def done(self) -> Path:
        self.con.commit()
        self.con.close()
        return self.path
