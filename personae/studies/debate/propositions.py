"""Debate propositions grouped by how strongly people hold opinions on them.

Persuasion experiments in the style of Salvi et al. (2025) pair a participant
and an opponent on a yes/no proposition and compare topics of low, moderate and
high opinion strength. The bundled set (``data/propositions.csv``, 12 per
group) was written for this project after that design; it is not the study's
own list. See ``docs/population.md``.

Example:
    >>> from personae.studies.debate.propositions import proposition, sample_propositions
    >>> proposition("t02").text
    'Should daylight saving time be abolished?'
    >>> [p.strength for p in sample_propositions(3, seed=1)].count("high")
    1
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from personae.errors import ConfigError
from personae.seeds import derive_seed

Strength = Literal["low", "moderate", "high"]

#: Opinion-strength groups, weakest first.
STRENGTHS: tuple[Strength, ...] = get_args(Strength)

_COLUMNS = ("id", "strength", "proposition", "description")


class Proposition(BaseModel):
    """One debate proposition.

    Args:
        id: Stable identifier, ``"t01"`` to ``"t36"`` for the bundled set.
        strength: How strongly people tend to hold opinions on it: ``low``,
            ``moderate`` or ``high``.
        text: The yes/no proposition, e.g. ``"Should daylight saving time be abolished?"``.
        description: One or two neutral sentences of context.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    id: str = Field(min_length=1)
    strength: Strength
    text: str = Field(min_length=1)
    description: str = Field(min_length=1)


def load_propositions(path: str | os.PathLike[str] | None = None) -> tuple[Proposition, ...]:
    """The bundled propositions, or those in a CSV file of the same layout.

    The file has the columns ``id, strength, proposition, description``. The
    bundled set is read once and cached.

    Args:
        path: A CSV file to read instead of the bundled one.

    Returns:
        The propositions in file order.

    Raises:
        ConfigError: The file is missing, lacks a column, repeats an id, or a
            row is invalid; the message names the file, the line and the field.
    """
    if path is None:
        return _bundled()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read propositions file {p}: {exc.strerror or exc}") from None
    return _parse(text, str(p))


def proposition(id: str) -> Proposition:
    """The bundled proposition with this id.

    Raises:
        ConfigError: No such id; the message lists the valid ones.
    """
    for p in _bundled():
        if p.id == id:
            return p
    ids = [p.id for p in _bundled()]
    raise ConfigError(
        f"unknown proposition id {id!r}; bundled ids are {ids[0]} to {ids[-1]}: {', '.join(ids)}"
    )


def by_strength(strength: str) -> tuple[Proposition, ...]:
    """The bundled propositions of one opinion-strength group, in id order.

    Raises:
        ConfigError: ``strength`` is not ``low``, ``moderate`` or ``high``.
    """
    s = _check_strength(strength)
    return tuple(p for p in _bundled() if p.strength == s)


def sample_propositions(
    n: int,
    seed: int,
    strengths: str | Iterable[str] | None = None,
    *,
    pool: Iterable[Proposition] | None = None,
) -> list[Proposition]:
    """Draw ``n`` distinct propositions, balanced across strength groups.

    Each group contributes ``n // k`` propositions (``k`` groups), the
    remaining ones come from groups drawn at random; a group that runs out is
    made up from the others. The result is in a seeded random order, and the
    same arguments always give the same list.

    Args:
        n: How many propositions; at most as many as the groups hold.
        seed: Experiment seed; the draw uses ``derive_seed(seed, "propositions")``.
        strengths: One group or several; all three when omitted.
        pool: Propositions to draw from instead of the bundled set.

    Raises:
        ConfigError: ``n`` is negative or larger than the pool, or a strength is unknown.

    Example:
        >>> len(sample_propositions(6, seed=0, strengths=["low", "high"]))
        6
    """
    if strengths is None:
        chosen: tuple[str, ...] = STRENGTHS
    else:
        names = [strengths] if isinstance(strengths, str) else list(strengths)
        if not names:
            raise ConfigError("strengths is empty; name at least one of low, moderate, high")
        chosen = tuple(dict.fromkeys(_check_strength(s) for s in names))
    available = tuple(_bundled() if pool is None else pool)
    groups = [[p for p in available if p.strength == s] for s in chosen]
    total = sum(len(g) for g in groups)
    if not 0 <= n <= total:
        raise ConfigError(
            f"cannot draw {n} propositions: {total} available with strength " + ", ".join(chosen)
        )
    rng = np.random.default_rng(derive_seed(seed, "propositions"))
    shuffled = [[g[i] for i in rng.permutation(len(g))] for g in groups]
    # Round-robin over the groups (in a random order) keeps the counts within
    # one of each other and skips groups that are exhausted.
    order = rng.permutation(len(shuffled))
    picked: list[Proposition] = []
    depth = 0
    while len(picked) < n:
        for gi in order:
            if depth < len(shuffled[gi]) and len(picked) < n:
                picked.append(shuffled[gi][depth])
        depth += 1
    return [picked[i] for i in rng.permutation(len(picked))]


def _check_strength(strength: str) -> Strength:
    for s in STRENGTHS:
        if strength == s:
            return s
    raise ConfigError(f"unknown strength {strength!r}; use one of {', '.join(STRENGTHS)}")


@cache
def _bundled() -> tuple[Proposition, ...]:
    resource = files("personae.studies.debate") / "data" / "propositions.csv"
    return _parse(resource.read_text(encoding="utf-8"), "bundled propositions.csv")


def _parse(text: str, source: str) -> tuple[Proposition, ...]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in _COLUMNS if c not in header]
    if missing:
        raise ConfigError(
            f"{source}: missing column(s) {', '.join(missing)}; "
            f"a propositions file needs {', '.join(_COLUMNS)}"
        )
    reader.fieldnames = header
    out: list[Proposition] = []
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        try:
            p = Proposition.model_validate(
                {
                    "id": row["id"] or "",
                    "strength": (row["strength"] or "").strip(),
                    "text": row["proposition"] or "",
                    "description": row["description"] or "",
                }
            )
        except ValidationError as exc:
            err = exc.errors()[0]
            field = "proposition" if err["loc"][0] == "text" else str(err["loc"][0])
            detail = f"must be one of {', '.join(STRENGTHS)}" if field == "strength" else err["msg"]
            raise ConfigError(
                f"{source}, line {line}: {field} {row.get(field)!r} is invalid: {detail}"
            ) from None
        if p.id in seen:
            raise ConfigError(f"{source}, line {line}: id {p.id!r} repeats line {seen[p.id]}")
        seen[p.id] = line
        out.append(p)
    if not out:
        raise ConfigError(f"{source}: no propositions")
    return tuple(out)
