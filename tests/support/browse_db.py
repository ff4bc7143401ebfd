"""A small real personae database made with the fakes, for the browse and export tests.

Two client styles x two replicates of a short counseling-like dialogue, with a
GAD-7 administered to the client at the start and the end (measurements and
scores), a ``mood`` state every two utterances, one truncated and one empty
reply in each ``verbose`` episode, and a third style, ``broken``, whose model
calls fail, so its episodes are ``failed``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from personae import Experiment, FunctionModel, Opening, Persona, Probe, Scenario
from personae.errors import ModelError
from personae.llm.base import Completion

OPENING = "Hi Sam, what brings you in today?"


CLIENT = (
    "Work has been piling up and I can't sleep.",
    "Mostly at night. I lie awake going over everything I didn't finish.",
    "I guess I could try writing a list before bed.",
)
COUNSELOR = (
    "That sounds exhausting. When do you notice it most?",
    "What might help you set some of it down in the evening?",
)
CUT = (
    "Work has been piling up, and honestly it started months ago when my manager left "
    "and nobody took over her projects, so I"
)


def reply(messages, call):
    """The fake model: questionnaire answers from the seed, a short scripted dialogue."""
    system = messages[0]["content"]
    if call.sampling.response_format is not None:  # a questionnaire item
        return str(1 + (call.seed or 0) % 4)
    if "broken" in system:
        raise ModelError("the fake server is down for the broken style")
    n = len(messages)  # the system prompt and the conversation so far
    if system.startswith("You are Sam"):
        if "talk a lot" in system and n == 2:  # the verbose client's first reply runs out
            return Completion(
                text=CUT,
                model="fake-model",
                finish_reason="length",
                completion_tokens=32,
                latency_ms=12.5,
                seed=call.seed,
            )
        return CLIENT[(n - 2) // 2 % len(CLIENT)]
    if n == 3 and CUT in messages[-1]["content"]:
        return ""  # the counselor has nothing to say to it
    return COUNSELOR[(n - 3) // 2 % len(COUNSELOR)]


async def mood(episode, point):
    episode.record_state("Sam", "mood", float(point.step % 5), source="probe")


def scenario() -> Scenario:
    return Scenario(
        name="browse-demo",
        agents=(
            Persona(name="Lee", role="counselor", big_five={"A": 4.5}),
            Persona(name="Sam", role="client", big_five={"N": 4.2}, style="plain"),
        ),
        opening=Opening(speaker="Lee", text=OPENING),
        max_turns=6,
        probes=(
            Probe("gad-7", who="Sam", at=["start", "end"]),
            Probe(mood, every=2, name="mood"),
        ),
    )


def make_db(path: Path) -> Path:
    """Run the small experiment into ``path`` and return it."""
    experiment = Experiment(
        scenario=scenario(),
        grid={"client.style": ["plain", "verbose", "broken"]},
        replicates=2,
        seed=11,
        name="browse-demo",
    )
    asyncio.run(experiment.arun(path, FunctionModel(reply)))
    return path
