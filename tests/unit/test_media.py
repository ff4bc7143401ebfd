"""Social-media exposure: the drawn feed, its effects on the day's events, and the cohort."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError
from test_cohort import run, small, states

from personae.environments.media import DEFAULT_POSTS, EFFECTS, Feed, Post, add_exposures


def test_feed_is_reproducible_by_seed_and_near_its_rate():
    students = [f"s{i}" for i in range(40)]
    feed = Feed(rate=0.3)
    first = feed.draw(students, days=50, seed=3)
    assert first.equals(feed.draw(students, days=50, seed=3))
    assert not first.equals(feed.draw(students, days=50, seed=4))
    share = first.height / (40 * 50)
    assert 0.25 < share < 0.35
    assert set(first["kind"].unique()) == {p.kind for p in DEFAULT_POSTS}
    assert first["day"].min() >= 0 and first["day"].max() < 50
    assert Feed(rate=0.0).draw(students, days=50, seed=3).height == 0


def test_a_students_feed_does_not_depend_on_who_else_is_in_the_cohort():
    feed = Feed(rate=0.5)
    alone = feed.draw(["Ann"], days=30, seed=1)
    together = feed.draw(["Ben", "Ann", "Cy"], days=30, seed=1)
    assert together.filter(together["student"] == "Ann").equals(alone)


def test_posts_name_a_neighbour_and_carry_their_effects():
    post = Post(kind="k", text="{peer} waved.", mood=2.0, stress=-1.0)
    feed = Feed(rate=1.0, posts=(post,))
    rows = feed.draw(["Ann"], days=3, seed=1, neighbours=lambda s: ["Bo"])
    assert rows["text"].to_list() == ["Bo waved."] * 3
    assert rows.row(0, named=True)["mood"] == 2.0 and rows.row(0, named=True)["stress"] == -1.0
    lonely = feed.draw(["Ann"], days=1, seed=1)
    assert lonely["text"].to_list() == ["A classmate waved."]


def test_add_exposures_adds_points_to_the_days_events_and_keeps_the_rest():
    post = Post(kind="k", text="t", stress=4.0, connectedness=-2.0)
    exposures = Feed(rate=1.0, posts=(post,)).draw(["Ann"], days=2, seed=1)
    events = {("Ann", 0): {"deadlines": 2, "stress": 1.0}, ("Ben", 0): {"deadlines": 1}}
    out = add_exposures(events, exposures)
    assert out["Ann", 0] == {"deadlines": 2, "stress": 5.0, "mood": 0.0, "energy": 0.0,
                             "connectedness": -2.0, "post": "t"}  # fmt: skip
    assert out["Ann", 1]["stress"] == 4.0 and out["Ben", 0] == {"deadlines": 1}
    assert events["Ann", 0] == {"deadlines": 2, "stress": 1.0}  # the input is not changed
    assert set(EFFECTS) <= set(out["Ann", 1])


def test_bad_feed_settings_are_refused():
    with pytest.raises(ValidationError):
        Feed(rate=1.5)
    with pytest.raises(ValidationError):
        Feed(posts=())
    with pytest.raises(ValidationError):
        Post(kind="k", text="t", weight=0)


def test_cohort_with_a_feed_records_posts_puts_them_in_the_diary_and_moves_the_state():
    stressful = Post(kind="panic", text="{peer} says the exam is impossible.", stress=15.0)
    plain = small(days=4)
    fed = plain.model_copy(update={"feed": Feed(rate=1.0, posts=(stressful,))})
    base, _, _ = asyncio.run(run(plain))
    episode, _, model = asyncio.run(run(fed))
    media = states(episode, "media", "media")
    assert len(media) == 4 * 4 and all(r["text"].startswith("panic: ") for r in media)
    assert any("Online: " in m["content"] for c in model.calls for m in c.messages)
    before = {(r["agent_id"], r["t"]): r["value"] for r in states(base, "stress", "rule")}
    after = {(r["agent_id"], r["t"]): r["value"] for r in states(episode, "stress", "rule")}
    assert before.keys() == after.keys()
    assert sum(after.values()) > sum(before.values())

    # Nothing else about the day changes: the same sensing features.
    def sleep(e):
        return [(r["agent_id"], r["t"], r["value"]) for r in states(e, "feature:sleep_minutes")]

    assert sleep(base) == sleep(episode)


def test_builtin_media_parameter():
    from personae.errors import ConfigError
    from personae.scenarios.builtin.cohort import student_cohort

    assert student_cohort().feed is None
    assert student_cohort(media=0.2).feed.rate == 0.2
    with pytest.raises(ConfigError, match="media"):
        student_cohort(media=2.0)
