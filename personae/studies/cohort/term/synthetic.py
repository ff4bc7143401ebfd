"""A seeded synthetic term of smartphone sensing, surveys and EMAs: a stand-in for StudentLife.

:class:`SyntheticTerm` is a :class:`~personae.studies.cohort.term.schema.SensingSource`
with StudentLife's fields, realistic distributions, personality-linked
individual differences, the known term pattern and planted relations
(:class:`Effects`) that a test can recover. Every coefficient is in
``docs/sensing.md``. To try the StudentLife loader on it, write it out with
:func:`personae.studies.cohort.term.studentlife_writer.write_studentlife`.

Example:
    >>> from personae.studies.cohort.term.synthetic import SyntheticTerm
    >>> term = SyntheticTerm(n_students=3, seed=1)
    >>> term.students(), term.days()
    (['u00', 'u01', 'u02'], 70)
    >>> term.features().height
    210
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from personae.agents.persona import BIG_FIVE, Persona
from personae.errors import ConfigError
from personae.seeds import derive_seed
from personae.studies.cohort.term.calendar import Term
from personae.studies.cohort.term.schema import (
    BFI_44_DOMAINS,
    EMA_SCHEMA,
    FEATURE_SCHEMA,
    LATENT_SCHEMA,
    STREAMS,
    SURVEY_SCHEMA,
    ema_items,
    empty_frame,
    stress_level,
)
from personae.world.population import Population

__all__ = ["DEFAULT_EMA_SHARE", "DEFAULT_MISSING", "Effects", "SyntheticTerm"]


@dataclass(frozen=True, kw_only=True)
class Effects:
    """The planted effects of :class:`SyntheticTerm`; ``z`` is a trait in SDs from 3.0 (SD 0.7).

    Args:
        load_stress: Latent stress target per unit of academic load.
        neuroticism_stress: Stress target per SD of neuroticism (baseline).
        neuroticism_load_stress: Extra stress per SD of neuroticism at full load.
        sleep_stress: Stress target per hour of sleep above 7 h in the night before the day.
        stress_mood: Mood target per unit of same-day stress.
        conversation_mood: Mood target per 30 min of conversation above the student's mean.
        load_sleep: Minutes of sleep at full load.
        neuroticism_load_sleep: Minutes of sleep per SD of neuroticism at full load.
        conscientiousness_onset: Hours of sleep onset per SD of conscientiousness.
        extraversion_conversation: Conversation minutes per SD of extraversion.
        extraversion_places: Distinct places per SD of extraversion.
        load_conversation: Relative change of conversation at full load.
        load_walking: Relative change of walking at full load.
    """

    load_stress: float = 1.5
    neuroticism_stress: float = 0.3
    neuroticism_load_stress: float = 0.6
    sleep_stress: float = -0.4
    stress_mood: float = -0.6
    conversation_mood: float = 0.3
    load_sleep: float = -60.0
    neuroticism_load_sleep: float = -20.0
    conscientiousness_onset: float = -0.35
    extraversion_conversation: float = 15.0
    extraversion_places: float = 0.6
    load_conversation: float = -0.3
    load_walking: float = -0.25


#: Share of days per kind with one EMA response.
DEFAULT_EMA_SHARE = 0.4
#: Average share of missing days per stream and student.
DEFAULT_MISSING = 0.07


class SyntheticTerm:
    """A seeded synthetic term of smartphone sensing, surveys and EMAs (a :class:`SensingSource`).

    Student ``i`` is simulated from its own generator seeded with
    ``derive_seed(seed, "sensing", i)``: the same seed gives the same term, and
    adding students keeps the first ones. The day-level model, its planted
    effects and their sizes are in ``docs/sensing.md``.

    Args:
        n_students: How many students (ids ``u00``, ``u01``, ...).
        term: The calendar; the default 10-week term when omitted.
        seed: Seed of everything.
        personas: Who the students are: their Big Five levels (1-5, missing
            domains 3.0) drive the individual differences. Drawn from the
            default :class:`~personae.world.Population` (ages 18-30) when omitted.
        missing: Average share of missing student-days per stream.
        ema_share: Share of days with a response, per EMA kind.
        effects: The planted effects.

    Raises:
        ConfigError: A count or share is out of range, or ``personas`` does not
            have ``n_students`` entries.
    """

    def __init__(
        self,
        n_students: int = 48,
        term: Term | None = None,
        seed: int = 0,
        *,
        personas: Sequence[Persona] | None = None,
        missing: float = DEFAULT_MISSING,
        ema_share: float = DEFAULT_EMA_SHARE,
        effects: Effects | None = None,
    ) -> None:
        if n_students < 1:
            raise ConfigError(f"n_students must be at least 1, got {n_students}")
        if not 0 <= missing < 0.5:
            raise ConfigError(f"missing must be in [0, 0.5), got {missing}")
        if not 0 <= ema_share <= 1:
            raise ConfigError(f"ema_share must be in [0, 1], got {ema_share}")
        if personas is None:
            personas = Population(age_range=(18, 30)).sample(
                n_students,
                seed=derive_seed(seed, "sensing", "personas"),
                role="student",
                name_prefix="Student",
            )
        if len(personas) != n_students:
            raise ConfigError(f"got {len(personas)} personas for {n_students} students")
        self.term = term or Term()
        self.seed = seed
        self.personas = tuple(personas)
        self.missing = missing
        self.ema_share = ema_share
        self.effects = effects or Effects()
        width = max(2, len(str(n_students - 1)))
        self._ids = [f"u{i:0{width}d}" for i in range(n_students)]
        self._tables = _simulate(self)

    @classmethod
    def from_personas(
        cls,
        personas: Sequence[Persona],
        term: Term | None = None,
        seed: int = 0,
        *,
        missing: float = DEFAULT_MISSING,
        ema_share: float = DEFAULT_EMA_SHARE,
        effects: Effects | None = None,
    ) -> SyntheticTerm:
        """A term for these personas, one student each, in order (options as in the class).

        Example:
            >>> people = [Persona(name="Ada", big_five={"E": 4.5}), Persona(name="Bo")]
            >>> SyntheticTerm.from_personas(people, seed=1).traits()["name"].to_list()
            ['Ada', 'Bo']
        """
        return cls(
            len(personas),
            term,
            seed,
            personas=personas,
            missing=missing,
            ema_share=ema_share,
            effects=effects,
        )

    def students(self) -> list[str]:
        """Student ids ``u00``, ``u01``, ... in persona order."""
        return list(self._ids)

    def days(self) -> int:
        """Number of days in the term."""
        return self.term.n_days

    def features(self) -> pl.DataFrame:
        """Daily features (:data:`FEATURE_SCHEMA`) with the missing days masked."""
        return self._tables["features"]

    def calendar(self) -> pl.DataFrame:
        """The term calendar (:data:`CALENDAR_SCHEMA`)."""
        return self.term.calendar()

    def surveys(self) -> pl.DataFrame:
        """Pre/post PHQ-9 and PSS-10 totals and BFI-44 domain means (:data:`SURVEY_SCHEMA`)."""
        return self._tables["surveys"]

    def ema(self) -> pl.DataFrame:
        """EMA responses (:data:`EMA_SCHEMA`), stress in StudentLife's raw levels plus a score."""
        return self._tables["ema"]

    def latent(self) -> pl.DataFrame:
        """The generator's daily latent state (:data:`LATENT_SCHEMA`): load, stress and mood.

        Stress and mood are unitless; 0 is an ordinary calm day, a unit is
        roughly one standard deviation of day-to-day variation.
        """
        return self._tables["latent"]

    def traits(self) -> pl.DataFrame:
        """Each student's persona name and Big Five levels (1-5) as simulated."""
        return self._tables["traits"]

    def to_folder(self, path: str | os.PathLike[str]) -> Path:
        """Write this term in the StudentLife folder layout under ``path/dataset``.

        The result loads with :class:`~personae.studies.cohort.term.studentlife.StudentLife`
        and gives back these daily features (to within a minute), EMAs and survey scores.

        Deprecated (keeps working until 0.4): call
        :func:`personae.studies.cohort.term.studentlife_writer.write_studentlife`,
        which writes any sensing source, with ``seed=`` for its incidental choices.

        Returns:
            The ``dataset`` folder written.
        """
        warnings.warn(
            "SyntheticTerm.to_folder(path) is deprecated and will be removed in 0.4; use "
            "personae.studies.cohort.term.studentlife_writer.write_studentlife(term, path)",
            DeprecationWarning,
            stacklevel=2,
        )
        from personae.studies.cohort.term.studentlife_writer import write_studentlife

        return write_studentlife(self, path, seed=derive_seed(self.seed, "sensing", "folder"))


def _levels(persona: Persona) -> np.ndarray:
    return np.array([persona.big_five.get(letter, 3.0) for letter in BIG_FIVE])


def _simulate(st: SyntheticTerm) -> dict[str, pl.DataFrame]:
    term, fx = st.term, st.effects
    n = term.n_days
    load = term.load()
    dates = [term.date_of(d) for d in range(n)]
    weekend = np.array([x.weekday() >= 5 for x in dates])  # Saturday and Sunday mornings
    columns: dict[str, list[np.ndarray]] = {
        c: [] for c in FEATURE_SCHEMA if c not in ("student", "date")
    }
    latent: dict[str, list[np.ndarray]] = {"stress": [], "mood": []}
    ema_rows: list[dict[str, object]] = []
    survey_rows: list[tuple[str, str, str, str, float]] = []
    for i, (sid, persona) in enumerate(zip(st._ids, st.personas, strict=True)):
        rng = np.random.default_rng(derive_seed(st.seed, "sensing", i))
        levels = _levels(persona)
        _, z_c, z_e, _, z_n = (levels - 3.0) / 0.7
        # Person-level baselines: fixed draw order so each uses the same random numbers.
        base = rng.standard_normal(14)
        sleep_base = 435 + 10 * z_c + 30 * base[0]
        onset_base = 24.6 + fx.conscientiousness_onset * z_c + 0.35 * base[1]
        onset_sd = max(0.25, 0.6 - 0.15 * z_c + 0.08 * base[2])
        conv_base = max(30.0, 90 + fx.extraversion_conversation * z_e + 12 * base[3])
        count_base = max(5.0, 17 + 3 * z_e + 2 * base[4])
        walk_base = max(30.0, 80 + 5 * z_e + 10 * base[5])
        run_p = float(np.clip(0.12 + 0.05 * z_c + 0.05 * base[6], 0.01, 0.4))
        places_base = 5.3 + fx.extraversion_places * z_e + 0.4 * base[7]
        unlock_base = 80 + 8 * z_n + 12 * base[8]
        unlock_min_base = max(60.0, 180 + 10 * z_n + 35 * base[9])
        stress_base = fx.neuroticism_stress * z_n + 0.3 * base[10]
        mood_base = 0.25 * z_e - 0.35 * z_n + 0.3 * base[11]
        miss_p = st.missing * rng.uniform(0.5, 1.5, len(STREAMS))
        # Behaviour per day.
        noise = rng.standard_normal((12, n))
        sleep = sleep_base + (fx.load_sleep + fx.neuroticism_load_sleep * z_n) * load
        sleep = np.clip(sleep + 45 * weekend + 45 * noise[0], 180, 720)
        onset = np.clip(onset_base + 0.6 * load + 0.5 * weekend + onset_sd * noise[1], 21.5, 28.5)
        sleep = np.minimum(sleep, (35.9 - onset) * 60)  # wake by 11:54
        wake = onset + sleep / 60 - 24
        conv = np.clip(conv_base * (1 + fx.load_conversation * load) + 18 * noise[2], 5, 400)
        count = np.clip(np.round(count_base * np.sqrt(conv / conv_base) + 2 * noise[3]), 1, 60)
        walk = np.clip(walk_base * (1 + fx.load_walking * load) + 15 * noise[4], 5, 240)
        runs = rng.random(n) < run_p * (1 - 0.5 * load)
        run = np.where(runs, rng.uniform(15, 45, n), 0.0)
        unknown = rng.uniform(20, 80, n)
        stationary = 1440 - walk - run - unknown
        places = np.clip(np.round(places_base - load + 0.8 * noise[5]), 3, 8)
        off = np.clip(90 + 40 * noise[6], 0, 240)
        home = np.clip(sleep + 300 + 60 * noise[7], 480, None)
        home = np.minimum(home, 1440 - off - 30 * (places - 1))
        campus = 1440 - off
        unlocks = np.clip(np.round(unlock_base * (1 + 0.2 * load) + 10 * noise[8]), 20, 200)
        unlock_min = np.clip(unlock_min_base * (1 + 0.1 * load) + 30 * noise[9], 20, 400)
        # Latent stress and mood: AR(1) towards a target set by load, traits, sleep, conversation.
        stress, mood = np.empty(n), np.empty(n)
        s_prev, m_prev = stress_base, mood_base
        eps = rng.standard_normal((2, n))
        for d in range(n):
            target = (
                stress_base
                + (fx.load_stress + fx.neuroticism_load_stress * z_n) * load[d]
                + fx.sleep_stress * (sleep[d] / 60 - 7)
            )
            stress[d] = s_prev = 0.4 * s_prev + 0.6 * target + 0.45 * eps[0, d]
            target = (
                mood_base
                + fx.stress_mood * stress[d]
                + fx.conversation_mood * (conv[d] - conv_base) / 30
            )
            mood[d] = m_prev = 0.3 * m_prev + 0.7 * target + 0.4 * eps[1, d]
        # Observations: mask missing days per stream.
        observed = {
            "sleep_minutes": sleep,
            "sleep_onset_hour": onset,
            "wake_hour": wake,
            "conversation_minutes": conv,
            "conversation_count": count,
            "stationary_minutes": stationary,
            "walking_minutes": walk,
            "running_minutes": run,
            "distinct_places": places,
            "home_minutes": home,
            "campus_minutes": campus,
            "unlock_count": unlocks,
            "unlock_minutes": unlock_min,
        }
        masks = {s: rng.random(n) < p for s, p in zip(STREAMS, miss_p, strict=True)}
        for stream, cols in STREAMS.items():
            for col in cols:
                values = np.round(observed[col], 4 if col.endswith("hour") else 2)
                columns[col].append(np.where(masks[stream], np.nan, values))
        columns["day"].append(np.arange(n))
        latent["stress"].append(stress)
        latent["mood"].append(mood)
        ema_rows.extend(_ema(rng, sid, term, st.ema_share, stress, mood, sleep, count))
        survey_rows.extend(_surveys(rng, sid, levels, z_n, stress, mood))
    return _frames(st, columns, latent, ema_rows, survey_rows, load)


def _frames(
    st: SyntheticTerm,
    columns: dict[str, list[np.ndarray]],
    latent: dict[str, list[np.ndarray]],
    ema_rows: list[dict[str, object]],
    survey_rows: list[tuple[str, str, str, str, float]],
    load: np.ndarray,
) -> dict[str, pl.DataFrame]:
    n = st.term.n_days
    students = np.repeat(st._ids, n).tolist()
    dates = [st.term.date_of(d) for d in range(n)] * len(st._ids)
    data: dict[str, object] = {"student": students, "date": dates}
    data |= {c: np.concatenate(v) for c, v in columns.items()}
    features = (
        pl.DataFrame(data)
        .with_columns(pl.col(pl.Float64).fill_nan(None))
        .select([pl.col(c).cast(t) for c, t in FEATURE_SCHEMA.items()])
    )
    latent_frame = pl.DataFrame(
        {
            "student": students,
            "day": np.tile(np.arange(n), len(st._ids)),
            "load": np.tile(load, len(st._ids)),
            "stress": np.concatenate(latent["stress"]),
            "mood": np.concatenate(latent["mood"]),
        },
        schema=LATENT_SCHEMA,
    )
    ema = (pl.DataFrame(ema_rows, schema=EMA_SCHEMA) if ema_rows else empty_frame(EMA_SCHEMA)).sort(
        "student", "time", "kind", "item"
    )
    surveys = pl.DataFrame(survey_rows, schema=SURVEY_SCHEMA, orient="row").sort(
        "instrument", "student", "phase", "scale"
    )
    traits = pl.DataFrame(
        {"student": st._ids, "name": [p.name for p in st.personas]}
        | {
            name: [float(_levels(p)[k]) for p in st.personas]
            for k, name in enumerate(BIG_FIVE.values())
        }
    )
    return {
        "features": features,
        "latent": latent_frame,
        "ema": ema,
        "surveys": surveys,
        "traits": traits,
    }


def _ema(
    rng: np.random.Generator,
    sid: str,
    term: Term,
    share: float,
    stress: np.ndarray,
    mood: np.ndarray,
    sleep: np.ndarray,
    count: np.ndarray,
) -> list[dict[str, object]]:
    """One response per kind on a random ``share`` of days, read off the latent state."""
    n = term.n_days
    asked = rng.random((4, n)) < share
    hours = np.round(rng.uniform(10, 23, (4, n)), 4)
    noise = rng.standard_normal((8, n))
    uniform = rng.random((2, n))
    rows: list[dict[str, object]] = []
    for d in range(n):
        responses: list[tuple[int, str, dict[str, int]]] = []
        if asked[0, d]:
            score = np.clip(np.round(2.2 + 1.1 * stress[d] + 0.5 * noise[0, d]), 1, 5)
            responses.append((0, "stress", {"level": stress_level(int(score))}))
        if asked[1, d]:
            m = mood[d]
            happy = uniform[0, d] < 1 / (1 + np.exp(-(1.5 * m + 0.8)))
            sad = uniform[1, d] < 1 / (1 + np.exp(1.5 * m + 0.8))
            answer = {"happyornot": 1 if happy else 2, "sadornot": 1 if sad else 2}
            if happy:
                answer["happy"] = int(np.clip(np.round(2 + m + 0.6 * noise[1, d]), 1, 4))
            if sad:
                answer["sad"] = int(np.clip(np.round(2 - m + 0.6 * noise[2, d]), 1, 4))
            responses.append((1, "mood", answer))
        if asked[2, d]:
            hrs = sleep[d] / 60 + 0.4 * noise[3, d]
            short = sleep[d] / 60 - 7
            rate = np.round(2.2 - 0.5 * short + 0.3 * stress[d] + 0.5 * noise[4, d])
            trouble = np.round(1.3 - 0.4 * short + 0.5 * noise[5, d])
            answer = {
                "hour": 1 if hrs < 3.25 else int(np.clip(np.round((hrs - 3.5) / 0.5) + 2, 2, 19)),
                "rate": int(np.clip(rate, 1, 4)),
                "social": int(np.clip(trouble, 1, 4)),
            }
            responses.append((2, "sleep", answer))
        if asked[3, d]:
            contacts = count[max(d - 1, 0)] * np.exp(0.3 * noise[6, d])  # "yesterday"
            code = int(np.searchsorted([5, 10, 20, 50, 100], contacts, side="right")) + 1
            responses.append((3, "social", {"number": code}))
        for k, kind, answer in responses:
            hour = float(hours[k, d])
            when = datetime.combine(term.date_of(d), time()) + timedelta(hours=hour)
            for item, value, raw, label in ema_items(kind, answer):
                rows.append(
                    {
                        "student": sid,
                        "day": d,
                        "time": when,
                        "hour": hour,
                        "kind": kind,
                        "item": item,
                        "value": value,
                        "raw": raw,
                        "label": label,
                    }
                )
    return rows


#: Items per BFI-44 domain: domain means move in steps of 1/items.
_BFI_ITEMS = {domain: len(items) for domain, items in BFI_44_DOMAINS.items()}


def _surveys(
    rng: np.random.Generator,
    sid: str,
    levels: np.ndarray,
    z_n: float,
    stress: np.ndarray,
    mood: np.ndarray,
) -> list[tuple[str, str, str, str, float]]:
    """Pre (first 14 days) and post (last 28 days) PHQ-9, PSS-10 and BFI-44 from traits and latents."""
    rows = []
    windows = {"pre": slice(0, 14), "post": slice(max(0, len(stress) - 28), None)}
    noise = rng.standard_normal((2, 2))
    bfi_noise = rng.standard_normal((2, 5))
    for p, (phase, window) in enumerate(windows.items()):
        phq = np.clip(np.round(4 + 2.0 * z_n - 3.0 * mood[window].mean() + 2 * noise[p, 0]), 0, 27)
        pss = np.clip(
            np.round(14 + 2.0 * z_n + 3.5 * stress[window].mean() + 3 * noise[p, 1]), 0, 40
        )
        rows.append((sid, phase, "phq-9", "total", float(phq)))
        rows.append((sid, phase, "pss-10", "total", float(pss)))
        for k, domain in enumerate(BIG_FIVE.values()):
            items = _BFI_ITEMS[domain]
            score = np.clip(levels[k] + 0.2 * bfi_noise[p, k], 1, 5)
            rows.append(
                (sid, phase, "bfi-44", domain, round(float(np.round(score * items) / items), 4))
            )
    return rows
