"""Built-in scenario: a cohort of students through a term (``personae run student-cohort``).

Small defaults that finish in minutes on the CPU server: 12 students, 14
days, synthetic sensing, an EMA every day, PHQ-9, PSS-10 and a 30-item IPIP
short form (one item per facet), each in one request, before and after the
term. The full StudentLife-sized term is one parameter away:
``--set n_students=48 --set days=70``; a user's own StudentLife copy:
``--set sensing=/path/to/studentlife``.

Parameters (grid names): ``n_students``, ``days``, ``sensing`` (``synthetic``
or a folder), ``graph`` (peer network kind), ``conversations`` (peer
conversations per student per day), ``ema_rate``, ``journal`` (the LLM journal
step), ``media`` (chance a student sees a social-media post on a day, 0 for
none), ``intervention`` (``none``, ``extra_sleep``, ``fewer_deadlines``,
``more_social``: half the cohort treated from mid-term), ``questionnaires``
(``full`` adds the whole IPIP-NEO-120, ``short`` the default, ``none``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from personae.engine.probes import Probe
from personae.errors import ConfigError
from personae.studies.cohort.scenario import Cohort, Sensing, students
from personae.world.networks import Network

INTERVENTIONS = ("none", "extra_sleep", "fewer_deadlines", "more_social")

#: One item per facet of the IPIP-NEO-120: items 1-30 cover the 30 facets once.
SHORT_IPIP = tuple(str(i) for i in range(1, 31))


def _interventions(kind: str, days: int) -> tuple[Any, ...]:
    from personae.studies.cohort.term.interventions import Intervention

    if kind not in INTERVENTIONS:
        raise ConfigError(f"intervention must be one of {', '.join(INTERVENTIONS)}, got {kind!r}")
    if kind == "none":
        return ()
    amounts = {"extra_sleep": 60.0, "fewer_deadlines": 0.5, "more_social": 45.0}
    return (
        Intervention.model_validate(
            {
                "name": kind,
                "kind": kind,
                "amount": amounts[kind],
                "start_day": days // 2,
                "share": 0.5,
            }
        ),
    )


def _feed(rate: float) -> Any:
    from personae.studies.cohort.term.media import Feed

    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"media is a daily chance between 0 and 1, got {rate}")
    return Feed(rate=rate) if rate > 0 else None


def _probes(kind: str) -> tuple[Probe, ...]:
    if kind == "none":
        return ()
    items = None if kind == "full" else SHORT_IPIP
    return (
        Probe("phq-9", who="student", at=["start", "end"], batch_size=9, name="phq-9"),
        Probe("pss-10", who="student", at=["start", "end"], batch_size=10, name="pss-10"),
        Probe(
            "ipip-neo-120",
            who="student",
            at=["start", "end"],
            items=items,
            batch_size=30 if items else 20,
            name="ipip",
        ),
    )


def _configure(scenario: Any, params: Mapping[str, Any]) -> Any:
    n = int(params["n_students"])
    if n < 2:
        raise ConfigError(f"a cohort needs n_students >= 2, got {n}")
    days = int(params["days"])
    source = str(params["sensing"])
    sensing = Sensing() if source == "synthetic" else Sensing(source="studentlife", path=source)
    kind = str(params["graph"])
    network = Network.model_validate(
        {"kind": kind, "k": max(2, min(4, n - 1)), "p": 0.1, "m": min(2, n - 1)}
    )
    if str(params["questionnaires"]) not in ("full", "short", "none"):
        raise ConfigError("questionnaires must be full, short or none")
    return Cohort.model_validate(
        {
            **dict(scenario),
            "agents": students(n),
            "days": days,
            "sensing": sensing,
            "network": network,
            "conversations": float(params["conversations"]),
            "ema_rate": float(params["ema_rate"]),
            "journal": bool(params["journal"]),
            "feed": _feed(float(params["media"])),
            "interventions": _interventions(str(params["intervention"]), days),
            "probes": _probes(str(params["questionnaires"])),
        }
    )


def _randomize(scenario: Any, seed: int) -> Any:
    from personae.world.population import Population

    if scenario.sensing.source == "studentlife":
        return scenario.model_copy(
            update={"agents": studentlife_personas(scenario.sensing.path, len(scenario.agents))}
        )
    drawn = Population(age_range=(18, 30)).sample(
        len(scenario.agents), seed, role="student", name_prefix=None
    )
    return scenario.model_copy(update={"agents": tuple(drawn)})


def _check(scenario: Any) -> None:
    """Refuse, before any episode, a StudentLife folder the episodes could not read."""
    if scenario.sensing.source != "studentlife":
        return
    from personae.studies.cohort.term.studentlife import StudentLife

    found = len(StudentLife(str(scenario.sensing.path)).students())
    if found < len(scenario.agents):
        raise ConfigError(
            f"the StudentLife copy at {scenario.sensing.path} has {found} students, "
            f"asked for {len(scenario.agents)}"
        )


def studentlife_personas(path: str | None, n: int) -> tuple[Any, ...]:
    """The first ``n`` StudentLife students as personas, Big Five from their pre-term BFI-44."""
    import polars as pl

    from personae.agents.persona import Persona
    from personae.studies.cohort.term.studentlife import StudentLife

    source = StudentLife(str(path))
    bfi = source.surveys().filter((pl.col("instrument") == "bfi-44") & (pl.col("phase") == "pre"))
    letters = {
        "openness": "O",
        "conscientiousness": "C",
        "extraversion": "E",
        "agreeableness": "A",
        "neuroticism": "N",
    }
    traits: dict[str, dict[str, float]] = {}
    for row in bfi.iter_rows(named=True):
        if row["scale"] in letters and row["value"] is not None:
            traits.setdefault(row["student"], {})[letters[row["scale"]]] = float(row["value"])
    ids = source.students()[:n]
    if len(ids) < n:
        raise ConfigError(f"the StudentLife copy at {path} has {len(ids)} students, asked for {n}")
    return tuple(Persona(name=uid, role="student", big_five=traits.get(uid, {})) for uid in ids)


def student_cohort(
    *,
    n_students: int = 12,
    days: int = 14,
    sensing: str = "synthetic",
    graph: str = "small_world",
    conversations: float = 0.3,
    ema_rate: float = 1.0,
    journal: bool = False,
    media: float = 0.0,
    intervention: str = "none",
    questionnaires: str = "short",
) -> Cohort:
    """The student cohort scenario (see the module docstring)."""
    base = Cohort(
        name="student-cohort",
        agents=students(max(n_students, 2)),
        max_tokens=40,  # a line or two of small talk; each reply is on the day's critical path
        temperature=0.8,
        memory_window=10,
        params={
            "n_students": n_students,
            "days": days,
            "sensing": sensing,
            "graph": graph,
            "conversations": conversations,
            "ema_rate": ema_rate,
            "journal": journal,
            "media": media,
            "intervention": intervention,
            "questionnaires": questionnaires,
        },
        rules={
            "student": "You are a university student in the middle of a term. Answer and talk "
            "as yourself, briefly, in plain words."
        },
        configure=_configure,
        randomize=_randomize,
        check=_check,
    )
    return _configure(base, base.params)
