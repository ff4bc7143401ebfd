"""Built-in scenario: an integrative counselor and a CBT-modelled client.

After Qiu and Lan's counselor-client simulation and the PATIENT-Psi client
cognitive model (see docs/scenarios.md): the counselor moves through
exploration, insight and action stages, one question at a time in one or two
sentences; the client acts from a cognitive model it never discloses, reveals
its problem gradually in one of six conversational styles, and does not close
early. Several sessions carry memory forward as each agent's own summary.

Parameters (grid names): ``client`` (a profile from :data:`CLIENTS`),
``client.style`` (plain, upset, verbose, reserved, tangent, pleasing),
``sessions``, ``max_turns``, ``temperature`` and every other persona field as
``counselor.<field>`` / ``client.<field>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from personae.agents.persona import CognitiveModel, Demographics, Persona
from personae.engine.scenario import Opening, Scenario
from personae.engine.until import Says
from personae.engine.view import TurnView
from personae.errors import ConfigError

COUNSELOR = Persona(
    name="Dr. Rivera",
    role="counselor",
    demographics=Demographics(age=46, gender="female", occupation="licensed counselor"),
    big_five={"O": 4.2, "C": 4.3, "E": 3.4, "A": 4.6, "N": 1.6},
    background="Integrative counselor (humanistic, psychodynamic and cognitive-behavioural) "
    "with 15 years in a university counseling centre.",
    goals=(
        "understand the client's difficulty",
        "build a working alliance",
        "agree on a small, concrete next step",
    ),
    style="warm, calm and concise",
)

CLIENTS: dict[str, Persona] = {
    "maya": Persona(
        name="Maya",
        role="client",
        demographics=Demographics(
            age=20, gender="female", education="second-year undergraduate", occupation="student"
        ),
        big_five={"O": 3.6, "C": 3.9, "E": 2.4, "A": 3.8, "N": 4.3},
        background="Second-year biology student who failed a midterm and has slept badly since.",
        style="plain",
        cognitive_model=CognitiveModel(
            history="Parents expected top grades; praised only for achievement.",
            core_beliefs=("I am incompetent", "I am a failure, loser"),
            intermediate_beliefs=("If I don't get an A, I have failed completely",),
            coping_strategies=("studies late into the night", "avoids telling her parents"),
            situation="Got 54% on an organic chemistry midterm last week.",
            automatic_thoughts=("I'm not smart enough to be here", "Everyone will find out"),
            emotions=("anxious", "ashamed", "sad"),
            behavior="Skipped two lectures and stays up until 3am rereading notes.",
        ),
    ),
    "james": Persona(
        name="James",
        role="client",
        demographics=Demographics(
            age=34,
            gender="male",
            employment="employed full time",
            occupation="warehouse supervisor",
        ),
        big_five={"O": 2.8, "C": 3.2, "E": 3.1, "A": 2.9, "N": 3.9},
        background="Recently separated; drinking more in the evenings since moving out.",
        style="plain",
        cognitive_model=CognitiveModel(
            history="Father left when he was nine; learned early to keep problems to himself.",
            core_beliefs=("I am bound to be abandoned", "I am unlovable"),
            intermediate_beliefs=("If I show weakness, people leave",),
            coping_strategies=("works long shifts", "drinks to fall asleep"),
            situation="His partner asked for a break and he moved into a friend's spare room.",
            automatic_thoughts=("It's happening again", "I ruin everything"),
            emotions=("hurt", "angry", "sad"),
            behavior="Has stopped answering calls from friends and drinks most evenings.",
        ),
    ),
    "lena": Persona(
        name="Lena",
        role="client",
        demographics=Demographics(
            age=27, gender="female", employment="unemployed", education="master's degree"
        ),
        big_five={"O": 4.1, "C": 2.7, "E": 2.2, "A": 4.0, "N": 4.0},
        background="Lost her job three months ago; applications go unanswered.",
        style="plain",
        cognitive_model=CognitiveModel(
            history="Older sister was the 'successful one'; often compared unfavourably.",
            core_beliefs=("I am worthless, waste", "I am defective"),
            intermediate_beliefs=("If I can't support myself, I am a burden",),
            coping_strategies=("stays in bed", "scrolls job sites for hours without applying"),
            situation="Received a rejection email this morning for a job she really wanted.",
            automatic_thoughts=("Nobody will ever hire me", "I'm a burden to everyone"),
            emotions=("sad", "disappointed", "ashamed"),
            behavior="Cancelled plans with a friend and spent the day in bed.",
        ),
    ),
}

COUNSELOR_RULES = """Rules for this session:
- Work integratively (humanistic, psychodynamic, cognitive-behavioural) through three stages: exploration (rapport, the problem, history, goals), insight (emotions, thoughts, key relationships, coping and resources), action (summarise what changed, agree goals and a small plan).
- Speak in one or two sentences and ask at most one question at a time.
- Do not end the session early; close only in the action stage, once a next step is agreed.
- Never diagnose or mention these rules."""

CLIENT_RULES = """Rules for this session:
- You are the client talking to your counselor. Act from your background and inner world, but never list or name them; reveal deeper concerns gradually, only as trust grows.
- Reply in at most five sentences, usually one or two.
- Do not thank the counselor or say goodbye until the counselor ends the session."""

STAGES = (
    (
        0.4,
        "exploration",
        "Stage: exploration. Build rapport; ask about the problem, its history or goals.",
    ),
    (
        0.75,
        "insight",
        "Stage: insight. Explore emotions, thoughts, key relationships, coping and resources.",
    ),
    (
        1.01,
        "action",
        "Stage: action. Summarise what has changed, agree on goals and one small next step; close warmly once it is agreed.",
    ),
)


def stage(view: TurnView, max_turns: int) -> tuple[str, str]:
    """The counseling stage at this point of the session: (name, instruction)."""
    fraction = view.turn / max_turns
    for bound, name, text in STAGES:
        if fraction < bound:
            return name, text
    return STAGES[-1][1], STAGES[-1][2]


def _cue(view: TurnView, speaker: str) -> str | None:
    if view.roles.get(speaker) != "counselor":
        return None
    return stage(view, view.max_turns)[1]


def _overrides(current: Persona, before: Persona) -> dict[str, Any]:
    """What the parameters changed in the client's profile (``client.big_five.N``, ...).

    The profile a client parameter picks replaces the client; settings made on
    the client persona are carried over to it (see :func:`_with_overrides`).
    """
    changed: dict[str, Any] = {}
    for field in Persona.model_fields:
        now, then = getattr(current, field), getattr(before, field)
        if field in ("name", "style") or now == then:
            continue
        changed[field] = now
    return changed


def _with_overrides(profile: Persona, changed: Mapping[str, Any], before: Persona) -> Persona:
    """``profile`` with ``changed`` applied; Big Five and demographics key by key."""
    update = dict(changed)
    if "big_five" in update:
        ours = {k: v for k, v in update["big_five"].items() if before.big_five.get(k) != v}
        update["big_five"] = {**profile.big_five, **ours}
    if "demographics" in update and profile.demographics and before.demographics:
        now, then = update["demographics"], before.demographics
        ours = {
            f: getattr(now, f)
            for f in type(now).model_fields
            if getattr(now, f) != getattr(then, f)
        }
        update["demographics"] = profile.demographics.model_copy(update=ours)
    return profile.model_copy(update=update)


def _configure(scenario: Scenario, params: Mapping[str, Any]) -> Scenario:
    key = str(params.get("client", "maya")).lower()
    if key not in CLIENTS:
        raise ConfigError(
            f"unknown client profile {key!r} for counseling; choose from {', '.join(CLIENTS)}"
        )
    current = scenario.persona("client")
    profile = CLIENTS[key]
    client = profile.model_copy(update={"style": current.style or profile.style})
    before = next((p for p in CLIENTS.values() if p.name == current.name), None)
    if before is not None:
        client = _with_overrides(client, _overrides(current, before), before)
    agents = tuple(client if p.role == "client" else p for p in scenario.agents)
    data = {f: getattr(scenario, f) for f in Scenario.model_fields}
    data["agents"] = agents
    return Scenario.model_validate(data)


def counseling(
    *,
    client: str = "maya",
    style: str = "plain",
    sessions: int = 1,
    max_turns: int = 16,
    min_turns: int = 8,
) -> Scenario:
    """The counseling scenario.

    Args:
        client: Client profile, one of :data:`CLIENTS`.
        style: The client's conversational style.
        sessions: Sessions per episode (memory carried by summaries).
        max_turns: Utterances per session at most (the opening included).
        min_turns: A goodbye before this many utterances does not end the session.

    Example:
        >>> from personae import Experiment
        >>> from personae.studies import counseling
        >>> exp = Experiment(scenario=counseling(max_turns=10), grid={"client.style": ["reserved", "verbose"]}, replicates=4)
    """
    base = Scenario(
        name="counseling",
        agents=(COUNSELOR, CLIENTS["maya"].model_copy(update={"style": style})),
        rules={"counselor": COUNSELOR_RULES, "client": CLIENT_RULES},
        opening=Opening(
            speaker=COUNSELOR.name, text="Hello, I'm Dr. Rivera. What brings you in today?"
        ),
        until=Says(r"\b(goodbye|good bye|bye|see you)\b", min_turns=min_turns),
        max_turns=max_turns,
        sessions=sessions,
        max_tokens=80,
        temperature=0.8,
        params={"client": client},
        cue=_cue,
        configure=_configure,
    )
    return _configure(base, base.params)
