"""Cleaning a model reply: cut replies end at a sentence, nothing of the reply is lost."""

import pytest

from personae import FunctionModel, Persona
from personae.agents.agent import Agent


@pytest.fixture
def ana() -> Agent:
    return Agent(Persona(name="Ana"), FunctionModel.echo())


@pytest.mark.parametrize(
    ("raw", "kept", "removed"),
    [
        ("I feel tired. School is hard and I", "I feel tired.", ["School is hard and I"]),
        ('He said "stop." Then we', 'He said "stop."', ["Then we"]),
        ("Really? Yes! And then", "Really? Yes!", ["And then"]),
        ("no sentence ends here", "no sentence ends here", []),  # kept whole
        ("It costs 3.5 dollars and", "It costs 3.5 dollars and", []),  # 3.5 is no sentence end
        ("Done.", "Done.", []),
    ],
)
def test_a_cut_reply_ends_at_its_last_sentence(ana, raw, kept, removed):
    assert ana.clean_reply(raw, ["Bob"], cut=True) == (kept, removed)


def test_a_reply_that_ended_is_not_trimmed(ana):
    raw = "I feel tired. School is hard and I"
    assert ana.clean_reply(raw, ["Bob"]) == (raw, [])


def test_quotes_around_the_whole_reply_go_but_inner_quotes_stay(ana):
    assert ana.clean_reply('"Hello there."', []) == ("Hello there.", [])
    assert ana.clean_reply('"A" and "B"', []) == ('"A" and "B"', [])
