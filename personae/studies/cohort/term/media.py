"""Social-media exposure: posts a student sees on a given day, and what they do to its state.

A :class:`Feed` draws, per student and day, whether the student sees a post
(``rate``) and which kind. Each kind carries a short text (with ``{peer}``, a
neighbour in the peer network when there is one, else "a classmate") and
effects in state points that enter the daily rule as events (see
:class:`~personae.studies.cohort.term.mental_state.StateRule`: extra ``stress``,
``mood``, ``energy`` and ``connectedness`` points of the day). The text goes
into the student's diary, so the model sees what the student saw.

The default kinds follow the literature on passive social-media use: upward
social comparison lowers mood and self-evaluation (Vogel et al., 2014,
Psychology of Popular Media Culture 3(4)); supportive contact online adds to
connectedness; reading about others' academic stress adds stress. Their sizes
are assumptions, small next to a deadline (4 stress points) or an exam (10),
and every one is a field to change.

Example::

    from personae.studies.cohort.term.media import Feed
    exposures = Feed(rate=0.3).draw(["Ann", "Ben"], days=14, seed=1)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from personae.seeds import derive_seed

#: The state variables a post can move (points on the 0-100 scales).
EFFECTS = ("stress", "mood", "energy", "connectedness")


class Post(BaseModel):
    """One kind of post: what the student reads and how it moves the state.

    Args:
        kind: A short name (stored in ``states.text`` with the post).
        text: What the student sees; ``{peer}`` is replaced by a neighbour's name.
        weight: Relative chance of this kind among the feed's posts.
        stress, mood, energy, connectedness: Points added that day.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str
    text: str
    weight: float = Field(default=1.0, gt=0.0)
    stress: float = 0.0
    mood: float = 0.0
    energy: float = 0.0
    connectedness: float = 0.0

    def effects(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in EFFECTS}


DEFAULT_POSTS: tuple[Post, ...] = (
    Post(
        kind="comparison",
        text="{peer} posted photos from a great weekend you were not part of.",
        weight=2.0,
        mood=-3.0,
        connectedness=-2.0,
    ),
    Post(
        kind="achievement",
        text="{peer} posted that they already finished this week's assignments.",
        weight=1.0,
        stress=3.0,
        mood=-1.0,
    ),
    Post(
        kind="support",
        text="{peer} commented something kind on your post.",
        weight=1.5,
        mood=3.0,
        connectedness=3.0,
    ),
    Post(
        kind="academic_stress",
        text="A class group chat is full of people panicking about the next deadline.",
        weight=1.5,
        stress=4.0,
        energy=-1.0,
    ),
    Post(
        kind="light",
        text="You scrolled through funny videos for a while.",
        weight=2.0,
        mood=1.0,
        energy=-1.0,
    ),
)

#: Columns of :meth:`Feed.draw`.
EXPOSURE_SCHEMA: dict[str, Any] = {
    "student": pl.String,
    "day": pl.Int64,
    "kind": pl.String,
    "text": pl.String,
    **{name: pl.Float64 for name in EFFECTS},
}


class Feed(BaseModel):
    """Who sees which post on which day, drawn from a seed.

    Args:
        rate: Chance a student sees a post on a given day (0 turns the feed off).
        posts: The kinds of post, drawn by ``weight``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    rate: float = Field(default=0.3, ge=0.0, le=1.0)
    posts: tuple[Post, ...] = Field(default=DEFAULT_POSTS, min_length=1)

    def draw(
        self,
        students: Sequence[str],
        days: int,
        seed: int,
        neighbours: Callable[[str], Sequence[str]] | None = None,
    ) -> pl.DataFrame:
        """One row per exposure (see :data:`EXPOSURE_SCHEMA`), the same for the same seed.

        Each student has its own stream, so adding a student leaves the others'
        exposures unchanged. ``neighbours(student)`` names the peers whose
        posts it may see.
        """
        rows: list[dict[str, Any]] = []
        weights = [p.weight for p in self.posts]
        for student in students:
            rng = random.Random(derive_seed(seed, "feed", student))
            peers = list(neighbours(student)) if neighbours else []
            for day in range(days):
                # Every day draws the same three numbers, seen or not, so a higher
                # rate adds exposures without changing the posts of the others.
                seen = rng.random() < self.rate
                post = rng.choices(self.posts, weights=weights)[0]
                peer = rng.choice(peers) if peers else "A classmate"
                if not seen:
                    continue
                text = post.text.replace("{peer}", peer)
                rows.append(
                    {"student": student, "day": day, "kind": post.kind, "text": text}
                    | post.effects()
                )
        return pl.DataFrame(rows, schema=EXPOSURE_SCHEMA)


def add_exposures(
    events: Mapping[tuple[str, int], Mapping[str, Any]], exposures: pl.DataFrame
) -> dict[tuple[str, int], dict[str, Any]]:
    """The day's events with each exposure's effects added and its text under ``post``."""
    out = {key: dict(value) for key, value in events.items()}
    for row in exposures.iter_rows(named=True):
        key = (row["student"], int(row["day"]))
        day = out.setdefault(key, {})
        for name in EFFECTS:
            day[name] = float(day.get(name) or 0.0) + float(row[name])
        day["post"] = row["text"]
    return out
