import pytest
from pydantic import ValidationError

from personae import CognitiveModel, Persona


def test_big_five_accepts_letters_and_names_and_orders_them():
    p = Persona(name="A", big_five={"neuroticism": 2, "O": 4.5})
    assert p.big_five == {"O": 4.5, "N": 2.0}


@pytest.mark.parametrize(
    ("big_five", "fragment"),
    [({"N": 7}, "outside 1-5"), ({"X": 3}, "unknown Big Five domain"), ({"N": "high"}, "number")],
)
def test_invalid_big_five_names_the_problem(big_five, fragment):
    with pytest.raises(ValidationError) as info:
        Persona(name="A", big_five=big_five)
    assert fragment in str(info.value)
    assert "big_five" in str(info.value)


def test_unknown_field_is_refused():
    with pytest.raises(ValidationError, match="favourite_colour"):
        Persona(name="A", favourite_colour="blue")


def test_cognitive_model_limits_emotions():
    with pytest.raises(ValidationError, match="at most 3 emotions"):
        CognitiveModel(emotions=("sad", "angry", "hurt", "guilty"))
    with pytest.raises(ValidationError, match="unknown emotion"):
        CognitiveModel(emotions=("bored",))


def test_card_is_deterministic_and_carries_persona():
    cm = CognitiveModel(core_beliefs=("I am helpless",), emotions=("sad",))
    p = Persona(
        name="Sam", role="client", big_five={"N": 4.2}, style="reserved", cognitive_model=cm
    )
    card = p.card()
    assert card == Persona.model_validate(p.model_dump()).card()
    assert "You are Sam, the client" in card
    assert "high neuroticism" in card
    assert "short answers" in card  # the reserved style is expanded
    assert "I am helpless" in card


def test_agent_clean_cuts_stage_directions_name_prefixes_and_other_speakers():
    from personae import Agent, FunctionModel

    agent = Agent(Persona(name="Lee"), FunctionModel.echo())
    raw = "(Stage: insight. Explore emotions.) Lee: How did that feel?\nSam: It felt bad."
    assert agent.clean(raw, ["Sam"]) == "How did that feel?"
    assert agent.clean("[smiles] Go on.", ["Sam"]) == "Go on."
    assert agent.clean("   ", ["Sam"]) == ""  # stored empty and flagged, never "..."
    # Another participant's label in front of the reply is removed, not the reply.
    assert agent.clean_reply("Sam: I think so too.", ["Sam"]) == ("I think so too.", ["Sam:"])
    assert agent.clean_reply("(nods)", ["Sam"]) == ("", ["(nods)"])
