"""A student's mental state and the daily rule that moves it from sensing, calendar and peers.

:class:`MentalState` is five numbers: ``stress``, ``mood`` (valence),
``energy`` and ``connectedness`` on 0-100, and ``sleep_debt`` in hours.
:class:`StateRule` updates it once per day from that day's sensing features,
the calendar (deadlines, exams), the student's Big Five and the valences of
today's peer conversations. Every coefficient is a field with a default, so a
rule is data: it can be calibrated, swept in a grid and stored with the
experiment. The full formula, with the reasoning behind each term, is in
``docs/cohort.md``; in short, each 0-100 variable relaxes toward a
trait-dependent baseline and is pushed by the day's effects::

    debt'   = clip((1 - debt_decay) * debt + shortfall - sleep_recovery * surplus, 0, max_sleep_debt)
    x'      = clip(x + relaxation * (baseline_x(traits) - x) + effects_x(day), 0, 100)

:func:`simulate` runs the rule over a whole term for a cohort without any
model: for tests, for calibration against StudentLife, and as the no-LLM
baseline of the cohort scenario.

Example:
    >>> rule = StateRule()
    >>> traits = {"O": 3, "C": 3, "E": 3, "A": 3, "N": 3}
    >>> start = rule.initial_state(traits)
    >>> after = rule.step(start, {"sleep_minutes": 240}, {}, traits)
    >>> after.sleep_debt, round(after.stress - start.stress, 2)
    (3.5, 1.75)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from personae.agents.persona import BIG_FIVE
from personae.errors import ConfigError

if TYPE_CHECKING:
    from personae.studies.cohort.term.interventions import Intervention

#: The state variables, in the order of :func:`simulate`'s columns.
STATE_VARIABLES = ("stress", "mood", "energy", "sleep_debt", "connectedness")
#: The range of each 0-100 variable.
SCALE = (0.0, 100.0)
#: Sensing features the rule reads (minutes and counts per day); the others are ignored.
RULE_FEATURES = (
    "sleep_minutes",
    "conversation_minutes",
    "conversation_count",
    "walking_minutes",
    "running_minutes",
)
#: Trait level used for a Big Five domain a student's traits do not give (the 1-5 midpoint).
TRAIT_MIDPOINT = 3.0

MissingPolicy = Literal["carry", "reference"]


@dataclass(frozen=True, kw_only=True)
class MentalState:
    """One student's mental state at the end of a day.

    Attributes:
        stress: 0 (none) to 100 (overwhelmed).
        mood: Valence, 0 (very negative) to 100 (very positive); 50 is neutral.
        energy: 0 (exhausted) to 100 (fully rested and energetic).
        sleep_debt: Accumulated sleep shortfall in hours, >= 0.
        connectedness: Felt social connection, 0 (isolated) to 100 (closely connected).

    Raises:
        ConfigError: A value is out of its range or not finite.
    """

    stress: float
    mood: float
    energy: float
    sleep_debt: float
    connectedness: float

    def __post_init__(self) -> None:
        for name in STATE_VARIABLES:
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ConfigError(f"MentalState.{name} must be a finite number, got {value!r}")
            low, high = (0.0, math.inf) if name == "sleep_debt" else SCALE
            if not low <= value <= high:
                raise ConfigError(f"MentalState.{name} = {value} is outside [{low}, {high}]")

    def as_dict(self) -> dict[str, float]:
        """The five variables by name, e.g. to write as ``states`` rows."""
        return {k: float(v) for k, v in asdict(self).items()}


class StateRule(BaseModel):
    """The daily update of a student's :class:`MentalState`; every coefficient is a field.

    Traits are Big Five levels on 1-5 (keys ``O C E A N`` or the domain names);
    a domain not given counts as 3. ``c_X = X - 3`` is a trait centred on the
    midpoint. Missing features (key absent, ``None`` or NaN) count as the
    reference value, i.e. a typical day with no effect beyond relaxation; use
    :func:`fill_features` first to carry a student's last observed value forward
    instead (what :func:`simulate` does).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    # --- dynamics
    relaxation: float = Field(default=0.3, ge=0.0, le=1.0)
    """Share of the gap to the trait baseline closed each day (0 = no pull, 1 = reset daily)."""
    # --- sleep
    sleep_need_hours: float = Field(default=7.5, gt=0.0)
    """Sleep needed per night; less adds to the sleep debt, more repays it."""
    sleep_recovery: float = Field(default=0.5, ge=0.0)
    """Hours of debt repaid per hour slept beyond the need."""
    debt_decay: float = Field(default=0.1, ge=0.0, le=1.0)
    """Share of the previous debt forgotten each day (adaptation; bounds chronic debt)."""
    max_sleep_debt: float = Field(default=40.0, gt=0.0)
    """Upper bound of the sleep debt in hours."""
    # --- references: a typical day, also the value of a missing feature
    reference_conversation_minutes: float = Field(default=120.0, ge=0.0)
    """Conversation minutes of a typical day; more lifts mood, less lowers it."""
    reference_conversation_count: float = Field(default=8.0, ge=0.0)
    """Conversations of a typical day; more raises connectedness, fewer lets it decay."""
    reference_active_minutes: float = Field(default=60.0, ge=0.0)
    """Walking plus running minutes of a typical day."""
    max_deviation_hours: float = Field(default=4.0, gt=0.0)
    """Sleep, conversation and activity deviations are clipped to +- this many hours."""
    max_deviation_count: float = Field(default=10.0, gt=0.0)
    """Conversation-count deviations from the reference are clipped to +- this many."""
    # --- baselines (the level each variable relaxes toward)
    stress_baseline: float = Field(default=35.0, ge=0.0, le=100.0)
    """Stress baseline of a student with every trait at 3."""
    stress_per_neuroticism: float = 7.0
    """Baseline stress per point of neuroticism above 3."""
    mood_baseline: float = Field(default=60.0, ge=0.0, le=100.0)
    """Mood baseline of a student with every trait at 3."""
    mood_per_extraversion: float = 3.0
    """Baseline mood per point of extraversion above 3."""
    mood_per_neuroticism: float = 5.0
    """Baseline mood lost per point of neuroticism above 3."""
    energy_baseline: float = Field(default=60.0, ge=0.0, le=100.0)
    """Energy baseline of a student with every trait at 3."""
    energy_per_extraversion: float = 3.0
    """Baseline energy per point of extraversion above 3."""
    connectedness_baseline: float = Field(default=50.0, ge=0.0, le=100.0)
    """Connectedness baseline of a student with every trait at 3."""
    connectedness_per_extraversion: float = 8.0
    """Baseline connectedness per point of extraversion above 3."""
    connectedness_per_agreeableness: float = 3.0
    """Baseline connectedness per point of agreeableness above 3."""
    # --- stress effects
    neuroticism_reactivity: float = Field(default=0.25, ge=0.0)
    """Stressors are multiplied by max(0, 1 + this * c_N): 1.5 at N = 5, 0.5 at N = 1."""
    stress_per_deadline: float = 4.0
    """Stress added per deadline today (before the neuroticism multiplier)."""
    stress_per_exam: float = 10.0
    """Stress added on an exam day (before the neuroticism multiplier)."""
    stress_per_sleep_debt_hour: float = 0.5
    """Stress added per hour of sleep debt (after tonight's update)."""
    stress_per_active_hour: float = 2.0
    """Stress removed per hour of walking and running above the reference."""
    # --- mood effects
    mood_per_conversation_hour: float = 2.0
    """Mood added per conversation hour above the reference."""
    mood_per_interaction: float = 4.0
    """Mood added per unit of peer-conversation valence (summed over today's conversations)."""
    mood_per_stress: float = 0.15
    """Mood lost per point of today's stress above its baseline (gained below it)."""
    mood_per_sleep_debt_hour: float = 0.2
    """Mood lost per hour of sleep debt."""
    # --- energy effects
    energy_per_sleep_hour: float = 2.0
    """Energy gained per hour slept above the need last night (lost below it)."""
    energy_per_sleep_debt_hour: float = 0.5
    """Energy lost per hour of sleep debt."""
    energy_per_active_hour: float = 2.0
    """Energy gained per hour of walking and running above the reference."""
    # --- connectedness effects
    connectedness_per_conversation: float = 0.5
    """Connectedness gained per conversation above the reference count (lost below it)."""
    connectedness_per_interaction: float = 4.0
    """Connectedness gained per unit of peer-conversation valence (summed)."""

    def baseline(self, traits: Mapping[str, float]) -> MentalState:
        """The state each variable relaxes toward, with no sleep debt.

        ``stress = stress_baseline + stress_per_neuroticism * c_N``, ``mood =
        mood_baseline + mood_per_extraversion * c_E - mood_per_neuroticism *
        c_N``, ``energy = energy_baseline + energy_per_extraversion * c_E``,
        ``connectedness = connectedness_baseline + connectedness_per_extraversion
        * c_E + connectedness_per_agreeableness * c_A``, each clipped to 0-100.

        Raises:
            ConfigError: A trait key is not a Big Five domain or a level is outside 1-5.
        """
        c = _centred(traits)
        return MentalState(
            stress=_clip(self.stress_baseline + self.stress_per_neuroticism * c["N"]),
            mood=_clip(
                self.mood_baseline
                + self.mood_per_extraversion * c["E"]
                - self.mood_per_neuroticism * c["N"]
            ),
            energy=_clip(self.energy_baseline + self.energy_per_extraversion * c["E"]),
            sleep_debt=0.0,
            connectedness=_clip(
                self.connectedness_baseline
                + self.connectedness_per_extraversion * c["E"]
                + self.connectedness_per_agreeableness * c["A"]
            ),
        )

    def initial_state(self, traits: Mapping[str, float]) -> MentalState:
        """The state on the morning of day 0: the trait baseline, no sleep debt."""
        return self.baseline(traits)

    def step(
        self,
        state: MentalState,
        features_row: Mapping[str, Any],
        events: Mapping[str, Any],
        traits: Mapping[str, float],
        interactions: Sequence[float] = (),
    ) -> MentalState:
        """One day's update.

        In order (each line uses the values computed above it; ``Δ`` is a
        deviation from the reference, in hours or conversations, clipped):

        1. ``shortfall = max(0, need - sleep_h)``, ``surplus = max(0, sleep_h - need)``;
           ``debt' = clip((1 - debt_decay) * debt + shortfall - sleep_recovery * surplus,
           0, max_sleep_debt)``.
        2. ``reactivity = max(0, 1 + neuroticism_reactivity * c_N)``;
           ``stress' = stress + relaxation * (B_stress - stress) + reactivity *
           (stress_per_deadline * deadlines + stress_per_exam * exam + events["stress"])
           + stress_per_sleep_debt_hour * debt' - stress_per_active_hour * Δactive``.
        3. ``mood' = mood + relaxation * (B_mood - mood) + mood_per_conversation_hour *
           Δconversation + mood_per_interaction * Σvalence - mood_per_stress *
           (stress' - B_stress) - mood_per_sleep_debt_hour * debt' + events["mood"]``.
        4. ``energy' = energy + relaxation * (B_energy - energy) + energy_per_sleep_hour *
           Δsleep - energy_per_sleep_debt_hour * debt' + energy_per_active_hour * Δactive
           + events["energy"]``.
        5. ``connectedness' = connectedness + relaxation * (B_conn - connectedness) +
           connectedness_per_conversation * Δcount + connectedness_per_interaction *
           Σvalence + events["connectedness"]``.

        Each 0-100 result is clipped to 0-100.

        Args:
            state: Yesterday's state (or :meth:`initial_state`).
            features_row: Today's sensing features (``sleep_minutes``,
                ``conversation_minutes``, ``conversation_count``,
                ``walking_minutes``, ``running_minutes``; other keys are
                ignored). A missing value counts as the reference (no effect);
                walking and running each count as half ``reference_active_minutes``.
            events: Today's calendar and events: ``deadlines`` (count),
                ``exam`` (bool), and optional extra points ``stress`` (scaled
                by neuroticism like any stressor), ``mood``, ``energy``,
                ``connectedness``. Other keys (``date``, ``week``) are ignored.
            traits: Big Five levels on 1-5.
            interactions: Valence of each of today's peer conversations, -1 to 1.

        Returns:
            Today's state.

        Raises:
            ConfigError: A trait is out of range or a valence outside -1..1.
        """
        c = _centred(traits)
        base = self.baseline(traits)
        valence = _valence(interactions)
        need = self.sleep_need_hours
        sleep_h = _number(features_row.get("sleep_minutes"), need * 60.0) / 60.0
        sleep_dev = sleep_h - need
        hours = self.max_deviation_hours
        conversation = _bounded(
            _number(features_row.get("conversation_minutes"), self.reference_conversation_minutes)
            - self.reference_conversation_minutes,
            hours * 60.0,
        )
        count = _bounded(
            _number(features_row.get("conversation_count"), self.reference_conversation_count)
            - self.reference_conversation_count,
            self.max_deviation_count,
        )
        active = _active_minutes(features_row, self.reference_active_minutes)
        active_dev = _bounded(active - self.reference_active_minutes, hours * 60.0) / 60.0
        conversation_dev = conversation / 60.0

        debt = min(
            self.max_sleep_debt,
            max(
                0.0,
                (1.0 - self.debt_decay) * state.sleep_debt
                + max(0.0, -sleep_dev)
                - self.sleep_recovery * max(0.0, sleep_dev),
            ),
        )
        reactivity = max(0.0, 1.0 + self.neuroticism_reactivity * c["N"])
        stressors = (
            self.stress_per_deadline * _number(events.get("deadlines"), 0.0)
            + self.stress_per_exam * (1.0 if _flag(events.get("exam")) else 0.0)
            + _number(events.get("stress"), 0.0)
        )
        stress = _clip(
            state.stress
            + self.relaxation * (base.stress - state.stress)
            + reactivity * stressors
            + self.stress_per_sleep_debt_hour * debt
            - self.stress_per_active_hour * active_dev
        )
        mood = _clip(
            state.mood
            + self.relaxation * (base.mood - state.mood)
            + self.mood_per_conversation_hour * conversation_dev
            + self.mood_per_interaction * valence
            - self.mood_per_stress * (stress - base.stress)
            - self.mood_per_sleep_debt_hour * debt
            + _number(events.get("mood"), 0.0)
        )
        energy = _clip(
            state.energy
            + self.relaxation * (base.energy - state.energy)
            + self.energy_per_sleep_hour * _bounded(sleep_dev, hours)
            - self.energy_per_sleep_debt_hour * debt
            + self.energy_per_active_hour * active_dev
            + _number(events.get("energy"), 0.0)
        )
        connectedness = _clip(
            state.connectedness
            + self.relaxation * (base.connectedness - state.connectedness)
            + self.connectedness_per_conversation * count
            + self.connectedness_per_interaction * valence
            + _number(events.get("connectedness"), 0.0)
        )
        return MentalState(
            stress=stress, mood=mood, energy=energy, sleep_debt=debt, connectedness=connectedness
        )


def initial_state(traits: Mapping[str, float], rule: StateRule | None = None) -> MentalState:
    """The starting state of a student: ``rule``'s trait baseline (default rule), no sleep debt."""
    return (rule or StateRule()).initial_state(traits)


def fill_features(
    features: pl.DataFrame, missing: MissingPolicy = "carry", rule: StateRule | None = None
) -> pl.DataFrame:
    """Fill missing sensing values of the features the rule reads, per student.

    Args:
        features: Daily features with ``student``, ``day`` and any of
            :data:`RULE_FEATURES` (nulls where missing).
        missing: ``"carry"``: a missing day takes the student's last observed
            value, and the days before the first observation take the rule's
            reference (``sleep_need_hours``, ``reference_*``); ``"reference"``:
            every missing day takes the reference.
        rule: Whose reference values to use (default :class:`StateRule`).

    Returns:
        The frame sorted by student and day, the rule's features filled and
        cast to float; other columns unchanged.
    """
    if missing not in ("carry", "reference"):
        raise ConfigError(f"missing must be 'carry' or 'reference', got {missing!r}")
    rule = rule or StateRule()
    references = _references(rule)
    out = features.sort("student", "day")
    filled = []
    for name in RULE_FEATURES:
        if name not in out.columns:
            continue
        column = pl.col(name).cast(pl.Float64).fill_nan(None)
        if missing == "carry":
            column = column.forward_fill().over("student")
        filled.append(column.fill_null(references[name]).alias(name))
    return out.with_columns(filled)


def simulate(
    rule: StateRule,
    features: pl.DataFrame,
    calendar: pl.DataFrame,
    traits_by_student: Mapping[str, Mapping[str, float]],
    interactions_by_student_day: Mapping[tuple[str, int], Sequence[float]] | None = None,
    interventions: Sequence[Intervention] = (),
    *,
    seed: int = 0,
    assignment: pl.DataFrame | None = None,
    missing: MissingPolicy = "carry",
) -> pl.DataFrame:
    """Run the rule over a whole term for every student, without any model.

    The term is prepared as the cohort scenario prepares it
    (:func:`~personae.studies.cohort.term.prepare.prepare_term`): days are those
    of the calendar (and any later days in ``features``); every student of
    ``traits_by_student`` is simulated, a student-day without a features row
    counting as all missing. Missing features are filled by :func:`fill_features`
    with ``missing`` *before* interventions apply (an intervention changes what
    was measured, it does not invent a measurement).

    Args:
        rule: The update rule.
        features: Daily features (``student``, ``day``, the sensing columns).
        calendar: ``day``, ``deadlines``, ``exam`` (other columns are passed
            to the rule as events too, e.g. ``stress``).
        traits_by_student: Big Five (1-5) per student.
        interactions_by_student_day: Valences of peer conversations per
            ``(student, day)``.
        interventions: Applied with :func:`personae.studies.cohort.term.interventions.apply`.
        seed: Seed of the treated-group draw when ``assignment`` is not given.
        assignment: A frame from :func:`personae.studies.cohort.term.interventions.assign`.
        missing: How missing features are filled (see :func:`fill_features`).

    Returns:
        One row per student and day, the state at the end of that day:
        ``student``, ``day``, ``stress``, ``mood``, ``energy``, ``sleep_debt``,
        ``connectedness``.
    """
    from personae.studies.cohort.term.prepare import prepare_term

    term = prepare_term(
        rule,
        features,
        calendar,
        traits_by_student,
        interventions,
        seed=seed,
        assignment=assignment,
        missing=missing,
    )
    interactions = interactions_by_student_day or {}
    rows: list[dict[str, Any]] = []
    for student in term.students:
        state = term.initial_state(student)
        for day in term.days:
            state = term.step(state, student, day, interactions.get((student, day), ()))
            rows.append({"student": student, "day": day, **state.as_dict()})
    schema: dict[str, Any] = {"student": pl.String, "day": pl.Int64} | dict.fromkeys(
        STATE_VARIABLES, pl.Float64
    )
    return pl.DataFrame(rows, schema=schema)


# --- pieces -------------------------------------------------------------------------------------


def _references(rule: StateRule) -> dict[str, float]:
    return {
        "sleep_minutes": rule.sleep_need_hours * 60.0,
        "conversation_minutes": rule.reference_conversation_minutes,
        "conversation_count": rule.reference_conversation_count,
        # Half the active reference each, so two missing columns sum to the reference.
        "walking_minutes": rule.reference_active_minutes / 2,
        "running_minutes": rule.reference_active_minutes / 2,
    }


def _centred(traits: Mapping[str, float]) -> dict[str, float]:
    """Big Five levels minus 3, by letter; missing domains count as 3."""
    letters = {v: k for k, v in BIG_FIVE.items()}
    out = dict.fromkeys(BIG_FIVE, 0.0)
    for key, level in traits.items():
        letter = key.upper() if key.upper() in BIG_FIVE else letters.get(key.lower())
        if letter is None:
            raise ConfigError(f"trait {key!r} is not a Big Five domain (O C E A N)")
        if level is None:
            continue
        value = float(level)
        if not 1.0 <= value <= 5.0:
            raise ConfigError(f"trait {key} = {level} is outside 1-5")
        out[letter] = value - TRAIT_MIDPOINT
    return out


def _valence(interactions: Sequence[float]) -> float:
    total = 0.0
    for value in interactions:
        v = float(value)
        if not -1.0 <= v <= 1.0:
            raise ConfigError(f"interaction valence {value} is outside -1..1")
        total += v
    return total


def _active_minutes(row: Mapping[str, Any], reference: float) -> float:
    """Walking plus running minutes; a missing one counts as half the reference."""
    half = reference / 2
    return _number(row.get("walking_minutes"), half) + _number(row.get("running_minutes"), half)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value: Any, default: float) -> float:
    return default if _missing(value) else float(value)


def _flag(value: Any) -> bool:
    return False if _missing(value) else bool(value)


def _bounded(value: float, limit: float) -> float:
    return max(-limit, min(limit, value))


def _clip(value: float) -> float:
    return max(SCALE[0], min(SCALE[1], value))
