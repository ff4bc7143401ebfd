"""Personas: who an agent is, as validated, immutable data.

A persona renders to a *card*, the text at the head of the agent's system
prompt. The card is a pure function of the persona, so it is byte-identical on
every turn and the server's prefix cache is hit.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Big Five domains, accepted as letters or full names and stored as letters.
BIG_FIVE = {
    "O": "openness",
    "C": "conscientiousness",
    "E": "extraversion",
    "A": "agreeableness",
    "N": "neuroticism",
}
_BIG_FIVE_BY_NAME = {v: k for k, v in BIG_FIVE.items()}

#: The conversational styles of simulated clients (PATIENT-Psi).
CLIENT_STYLES = ("plain", "upset", "verbose", "reserved", "tangent", "pleasing")
_STYLE_TEXT = {
    "plain": "You talk in a direct, ordinary way and answer what is asked.",
    "upset": "You are frustrated and upset; you may push back, doubt that this will help, "
    "or resist suggestions.",
    "verbose": "You talk a lot, give long answers with many details, and elaborate freely.",
    "reserved": "You are guarded and say little; you give short answers and open up only "
    "slowly when you feel safe.",
    "tangent": "You drift to side topics and start telling unrelated stories before coming back.",
    "pleasing": "You want to please the counselor; you agree readily and hide disagreement.",
}

#: Core belief categories of the CBT cognitive model (Beck), by group.
CORE_BELIEFS = {
    "helpless": (
        "I am incompetent",
        "I am helpless",
        "I am powerless, weak, vulnerable",
        "I am a victim",
        "I am needy",
        "I am trapped",
        "I am out of control",
        "I am a failure, loser",
        "I am defective",
    ),
    "unlovable": (
        "I am unlovable",
        "I am unattractive",
        "I am undesirable, unwanted",
        "I am bound to be rejected",
        "I am bound to be abandoned",
        "I am bound to be alone",
    ),
    "worthless": (
        "I am worthless, waste",
        "I am immoral",
        "I am bad - dangerous, toxic, evil",
        "I don't deserve to live",
    ),
}

#: Emotions a situation in the cognitive model may carry (at most three).
EMOTIONS = (
    "anxious",
    "sad",
    "angry",
    "ashamed",
    "disappointed",
    "jealous",
    "guilty",
    "hurt",
    "suspicious",
)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Demographics(_Frozen):
    """Who a persona is on paper; every field optional."""

    age: int | None = Field(default=None, ge=0, le=120)
    gender: str | None = None
    ethnicity: str | None = None
    education: str | None = None
    employment: str | None = None
    occupation: str | None = None
    political_affiliation: str | None = None
    location: str | None = None


class CognitiveModel(_Frozen):
    """A client's CBT cognitive conceptualisation (PATIENT-Psi fields).

    The agent acts from it but never discloses it as such.
    """

    history: str = ""
    core_beliefs: tuple[str, ...] = ()
    intermediate_beliefs: tuple[str, ...] = ()
    intermediate_beliefs_depression: tuple[str, ...] = ()
    coping_strategies: tuple[str, ...] = ()
    situation: str = ""
    automatic_thoughts: tuple[str, ...] = ()
    emotions: tuple[str, ...] = ()
    behavior: str = ""

    @field_validator("emotions")
    @classmethod
    def _emotions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) > 3:
            raise ValueError(f"at most 3 emotions, got {len(value)}")
        unknown = [e for e in value if e not in EMOTIONS]
        if unknown:
            raise ValueError(f"unknown emotion(s) {unknown}; choose from {', '.join(EMOTIONS)}")
        return value


class Persona(_Frozen):
    """A person an agent plays.

    Args:
        name: Unique within a scenario; how others address the agent.
        role: The part it plays, e.g. ``"counselor"``, ``"client"``, ``"debater"``.
        demographics: Age, gender, education and the like.
        big_five: Target Big Five levels on 1-5, keyed by letter (O C E A N) or
            full name; missing domains are left unspecified.
        background: Free text: history, situation, expertise.
        goals: What the persona wants from the conversation.
        style: How it speaks. For clients one of the six conversational styles
            (plain, upset, verbose, reserved, tangent, pleasing) is expanded
            into a description; any other text is used as written.
        cognitive_model: For clients, the CBT cognitive model it acts from.
        instructions: Extra rules appended to the card.

    Raises:
        pydantic.ValidationError: A field is invalid; the message names it.

    Example:
        >>> Persona(name="Sam", role="client", big_five={"N": 4.2}, style="reserved").big_five
        {'N': 4.2}
    """

    name: str = Field(min_length=1, max_length=80)
    role: str = Field(default="participant", min_length=1)
    demographics: Demographics = Demographics()
    big_five: dict[str, float] = Field(default_factory=dict)
    background: str = ""
    goals: tuple[str, ...] = ()
    style: str = ""
    cognitive_model: CognitiveModel | None = None
    instructions: str = ""

    @field_validator("big_five", mode="before")
    @classmethod
    def _big_five(cls, value: Any) -> dict[str, float]:
        if not isinstance(value, dict):
            raise ValueError("big_five must be a mapping like {'O': 3.5, 'N': 2}")
        out: dict[str, float] = {}
        for key, level in value.items():
            k = str(key).strip()
            letter = k.upper() if k.upper() in BIG_FIVE else _BIG_FIVE_BY_NAME.get(k.lower())
            if letter is None:
                raise ValueError(
                    f"unknown Big Five domain {key!r}; use O, C, E, A, N or "
                    + ", ".join(BIG_FIVE.values())
                )
            try:
                number = float(level)
            except (TypeError, ValueError):
                raise ValueError(f"big_five[{key!r}] must be a number from 1 to 5") from None
            if not 1.0 <= number <= 5.0:
                raise ValueError(f"big_five[{key!r}] = {level} is outside 1-5")
            out[letter] = number
        return {k: out[k] for k in "OCEAN" if k in out}

    @model_validator(mode="after")
    def _name_is_clean(self) -> Persona:
        if self.name != self.name.strip() or "\n" in self.name:
            raise ValueError("name must not have surrounding spaces or line breaks")
        return self

    def card(self) -> str:
        """The persona as prompt text; the same persona always gives the same bytes."""
        lines = [f"You are {self.name}, the {self.role} in this conversation."]
        demo = self.demographics.model_dump(exclude_none=True)
        if demo:
            lines.append(
                "About you: "
                + "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in demo.items())
                + "."
            )
        if self.big_five:
            lines.append(
                "Your personality: "
                + "; ".join(_describe_trait(k, v) for k, v in self.big_five.items())
                + "."
            )
        if self.background:
            lines.append(f"Background: {self.background}")
        if self.goals:
            lines.append("Your goals: " + "; ".join(self.goals) + ".")
        style = _STYLE_TEXT.get(self.style, self.style)
        if style:
            lines.append(f"How you talk: {style}")
        if self.cognitive_model is not None:
            lines.append(_cognitive_card(self.cognitive_model))
        if self.instructions:
            lines.append(self.instructions)
        return "\n".join(lines)


def _describe_trait(letter: str, level: float) -> str:
    words = (
        (1.5, "very low"),
        (2.5, "low"),
        (3.5, "moderate"),
        (4.5, "high"),
        (5.01, "very high"),
    )
    label = next(w for bound, w in words if level < bound)
    return f"{label} {BIG_FIVE[letter]} ({level:g}/5)"


def _cognitive_card(cm: CognitiveModel) -> str:
    parts = ["Your inner world (act from it; never name or list it):"]

    def add(label: str, value: str | tuple[str, ...]) -> None:
        text = "; ".join(value) if isinstance(value, tuple) else value
        if text:
            parts.append(f"- {label}: {text}")

    add("Relevant history", cm.history)
    add("Core beliefs", cm.core_beliefs)
    add("Intermediate beliefs", cm.intermediate_beliefs)
    add("Intermediate beliefs during depression", cm.intermediate_beliefs_depression)
    add("Coping strategies", cm.coping_strategies)
    add("Current situation", cm.situation)
    add("Automatic thoughts", cm.automatic_thoughts)
    add("Emotions", cm.emotions)
    add("Behaviour", cm.behavior)
    return "\n".join(parts)
