"""Writing a sensing source in the StudentLife folder layout.

:func:`write_studentlife` turns any :class:`~personae.studies.cohort.term.schema.SensingSource`
(e.g. the synthetic term) into files laid out like the published dataset, so
the loader in :mod:`personae.studies.cohort.term.studentlife` can be tried end to
end without the real data. It writes every stream the loader reads: activity
and audio inferences, conversations, dark, lock and charge episodes, WiFi
locations, surveys and EMAs. The rules themselves are checked on hand-made
folders (``tests/unit/test_studentlife_rules.py``), not only through this writer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from personae.measures.instruments import load_instrument
from personae.studies.cohort.term.calendar import Term
from personae.studies.cohort.term.schema import (
    BFI_44_DOMAINS,
    BFI_44_REVERSED,
    FEATURE_SCHEMA,
    SensingSource,
)
from personae.studies.cohort.term.studentlife import ACTIVITY_MAX_SPAN_S, PLACE_MAX_SPAN_S
from personae.studies.cohort.term.studentlife_reports import BFI_44_OPTIONS

__all__ = ["write_studentlife"]

_PLACES = (
    "library",
    "dining-hall",
    "gym",
    "lecture-hall",
    "science-center",
    "computer-lab",
    "student-center",
    "cafe",
    "arts-center",
    "bookstore",
    "health-center",
    "field-house",
)
_README = """Synthetic data written by personae (personae.studies.cohort.term.studentlife_writer.
write_studentlife, e.g. from a personae.studies.cohort.term.synthetic.SyntheticTerm). This is NOT the StudentLife dataset: it only copies its folder layout so
that personae.studies.cohort.term.studentlife.StudentLife can read it. The real dataset is at
https://studentlife.cs.dartmouth.edu/ (Wang et al., UbiComp 2014).
"""


def write_studentlife(
    source: SensingSource,
    path: str | os.PathLike[str],
    *,
    term: Term | None = None,
    seed: int = 0,
) -> Path:
    """Write a sensing source in the StudentLife layout under ``path/dataset``.

    Daily features become raw data that
    :class:`~personae.studies.cohort.term.studentlife.StudentLife` turns back into the
    same features: activity samples at most 10 minutes apart, conversations
    spread over 09:00-23:00 with audio inferences all day (silence at night,
    voice in conversations, noise otherwise) on days with conversation data, a
    dark, charging and locked night from sleep onset to wake, unlock sessions
    between wake and the next onset, and campus WiFi fixes every 20 minutes at a
    home place and others. Survey totals become item answers that score back to
    them (items drawn with ``seed``); EMAs are written with their raw codes.

    Args:
        source: What to write (a :class:`~personae.studies.cohort.term.synthetic.SyntheticTerm`,
            a :class:`~personae.studies.cohort.term.studentlife.StudentLife` copy, or any source).
        path: The folder to create ``dataset`` in.
        term: The calendar; the source's own ``term`` attribute when it has one.
        seed: Seed for the incidental choices (place names, item answers, episode lengths).

    Returns:
        The ``dataset`` folder.
    """
    term = term or getattr(source, "term", None) or Term(n_days=source.days())
    dataset = Path(path) / "dataset"
    streams = ("activity", "audio", "conversation", "dark", "phonelock", "phonecharge")
    for folder in (*streams, "wifi_location"):
        (dataset / "sensing" / folder).mkdir(parents=True, exist_ok=True)
    (dataset / "README_SYNTHETIC.txt").write_text(_README, "utf-8")
    midnights = np.array([term.epoch(d) for d in range(-1, term.n_days + 1)])
    features = source.features()
    for i, student in enumerate(source.students()):
        rng = np.random.default_rng([seed, i])
        rows = features.filter(pl.col("student") == student).sort("day")
        f = {
            c: np.full(term.n_days, np.nan)
            for c in FEATURE_SCHEMA
            if c not in ("student", "day", "date")
        }
        days = rows["day"].to_numpy()
        for c in f:
            f[c][days] = rows[c].cast(pl.Float64).fill_null(np.nan).to_numpy()
        _write_student(dataset / "sensing", student, f, midnights, rng)
    _write_surveys(dataset / "survey", source.surveys(), seed)
    _write_ema(dataset / "EMA" / "response", source.ema(), term)
    return dataset


def _write_csv(path: Path, columns: dict[str, Any]) -> None:
    pl.DataFrame(columns).write_csv(path)


def _samples(
    segments: list[tuple[Any, float]], step: float, *, even: bool = False
) -> tuple[list[float], list[Any]]:
    """Sample times (seconds after midnight) and labels so that each sample stands for its share.

    Back from the end (``even=False``): one sample at each segment start, then
    every ``step`` seconds counted back from its end, so the last one spans
    exactly ``step`` whatever follows (a gap without fixes). Even
    (``even=True``): ``ceil(length / step)`` samples evenly spaced, never close
    enough together to be merged into one activity burst.
    """
    times: list[float] = []
    labels: list[Any] = []
    t = 0.0
    for label, length in segments:
        end = t + length
        if length > 0 and label is not None:
            if even:
                k = int(np.ceil(length / step))
                points = (t + length * np.arange(k) / k).tolist()
            else:
                points = [t, *np.arange(end - step, t, -step)[::-1].tolist()]
            times += points
            labels += [label] * len(points)
        t = end
    return times, labels


def _write_student(
    folder: Path,
    student: str,
    f: dict[str, np.ndarray],
    midnights: np.ndarray,
    rng: np.random.Generator,
) -> None:
    n = len(f["sleep_minutes"])
    act_t: list[float] = []
    act_c: list[int] = []
    audio_t: list[np.ndarray] = [np.empty(0)]
    audio_c: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
    talk_s: list[float] = []
    talk_e: list[float] = []
    dark_s: list[float] = []
    dark_e: list[float] = []
    unlock_s: list[float] = []
    unlock_e: list[float] = []
    wifi_t: list[float] = []
    wifi_p: list[str] = []
    home_name = f"dorm-{student}"
    for d in range(n):
        midnight = midnights[d + 1]
        onset, wake = f["sleep_onset_hour"][d], f["wake_hour"][d]
        if not np.isnan(onset) and not np.isnan(wake):
            dark_s.append(midnights[d] + onset * 3600)
            dark_e.append(midnight + wake * 3600)
        stationary, walking = f["stationary_minutes"][d], f["walking_minutes"][d]
        if not np.isnan(stationary):
            running = np.nan_to_num(f["running_minutes"][d])
            walking = np.nan_to_num(walking)
            # The day ends with at least a minute of "unknown": its last sample may stand for
            # more than its time when the next day has no data, and unknown is not counted.
            unknown = 1440 - stationary - walking - running
            if unknown < 1:
                stationary, unknown = stationary + unknown - 1, 1.0
            segments: list[tuple[Any, float]] = [(0, stationary / 6 * 60), (2, running * 60)]
            for _ in range(4):
                segments += [(0, stationary / 6 * 60), (1, walking / 4 * 60)]
            segments += [(0, stationary / 6 * 60), (3, unknown * 60)]
            times, classes = _samples(segments, ACTIVITY_MAX_SPAN_S, even=True)
            act_t += [midnight + x for x in times]
            act_c += classes
        count, minutes = f["conversation_count"][d], f["conversation_minutes"][d]
        if not np.isnan(count):
            starts, lengths = np.empty(0), np.empty(0)
            if count > 0:
                starts, lengths = _spread(rng, int(count), minutes * 60, 9 * 3600, 23 * 3600)
            talk_s += (midnight + starts).tolist()
            talk_e += (midnight + starts + lengths).tolist()
            # The nights ending on this day and the next, in hours after this midnight.
            nights = [
                (f["sleep_onset_hour"][k] + 24.0 * (k - 1 - d), f["wake_hour"][k] + 24.0 * (k - d))
                for k in (d, d + 1)
                if k < n
            ]
            audio_times, audio_codes = _audio_day(nights, starts, starts + lengths)
            audio_t.append(midnight + audio_times)
            audio_c.append(audio_codes)
        count, minutes = f["unlock_count"][d], f["unlock_minutes"][d]
        if not np.isnan(count) and count > 0:
            first = wake if not np.isnan(wake) else 8.0
            following = f["sleep_onset_hour"][d + 1] if d + 1 < n else np.nan
            last = min(24.0, following) if not np.isnan(following) else 24.0
            starts, lengths = _spread(rng, int(count), minutes * 60, first * 3600, last * 3600)
            unlock_s += (midnight + starts).tolist()
            unlock_e += (midnight + starts + lengths).tolist()
        k = f["distinct_places"][d]
        if not np.isnan(k):
            home = f["home_minutes"][d]
            campus = f["campus_minutes"][d] if not np.isnan(f["campus_minutes"][d]) else 1440.0
            others = rng.choice(_PLACES, size=max(0, int(k) - 1), replace=False).tolist()
            share = np.full(len(others), 30.0)
            if others:
                rest = max(0.0, campus - home - 30.0 * len(others))
                share += rest * rng.dirichlet(np.full(len(others), 3.0))
            # The day ends at home for at least one fix interval (see _samples).
            morning = (wake if not np.isnan(wake) else 8.5) * 60 + 30
            first_home = max(0.0, min(home - PLACE_MAX_SPAN_S / 60, morning))
            segments = [(home_name, first_home * 60), (None, (1440 - campus) * 60)]
            segments += [(p, m * 60) for p, m in zip(others, share, strict=True)]
            segments.append((home_name, (home - first_home) * 60))
            times, places = _samples(segments, PLACE_MAX_SPAN_S)
            wifi_t += [midnight + x for x in times]
            wifi_p += [f"in[{p}]" for p in places]
    # Lock episodes fill the time between unlock sessions (and before the first, after the last).
    order = np.argsort(unlock_s)
    u_s, u_e = np.array(unlock_s)[order], np.array(unlock_e)[order]
    lock_s = np.concatenate([[midnights[0] - 86400.0], u_e])
    lock_e = np.concatenate([u_s, [midnights[-1] + 86400.0]])
    seconds = np.round
    _write_csv(
        folder / "activity" / f"activity_{student}.csv",
        {"timestamp": seconds(act_t).astype(np.int64), " activity inference": act_c},
    )
    _write_csv(
        folder / "audio" / f"audio_{student}.csv",
        {
            "timestamp": seconds(np.concatenate(audio_t)).astype(np.int64),
            " audio inference": np.concatenate(audio_c),
        },
    )
    _write_csv(
        folder / "conversation" / f"conversation_{student}.csv",
        {
            "start_timestamp": seconds(talk_s).astype(np.int64),
            " end_timestamp": seconds(talk_e).astype(np.int64),
        },
    )
    for name in ("dark", "phonecharge"):
        _write_csv(
            folder / name / f"{name}_{student}.csv",
            {"start": seconds(dark_s).astype(np.int64), "end": seconds(dark_e).astype(np.int64)},
        )
    _write_csv(
        folder / "phonelock" / f"phonelock_{student}.csv",
        {"start": seconds(lock_s).astype(np.int64), "end": seconds(lock_e).astype(np.int64)},
    )
    _write_csv(
        folder / "wifi_location" / f"wifi_location_{student}.csv",
        {"time": seconds(wifi_t).astype(np.int64), "location": wifi_p},
    )


def _audio_day(
    nights: list[tuple[float, float]], talk_starts: np.ndarray, talk_ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A day's audio inferences: noise, silence at night, voice in conversations.

    Each stretch of one class gets ``ceil(length / 10 min)`` evenly spaced samples
    (as activity does, see :func:`_samples`), so silence starts and ends with the night.

    Args:
        nights: (onset, wake) in hours after this day's midnight; NaN where unknown.
        talk_starts: Conversation starts, seconds after midnight.
        talk_ends: Conversation ends.

    Returns:
        Sample times (seconds after midnight) and audio inference codes.
    """
    quiet = np.array([(a, b) for a, b in nights if not (np.isnan(a) or np.isnan(b))]) * 3600
    quiet = quiet.reshape(-1, 2)
    talks = np.column_stack([talk_starts, talk_ends])
    bounds = np.concatenate([[0.0, 86400.0], quiet.ravel(), talks.ravel()])
    cuts = np.unique(np.clip(bounds, 0.0, 86400.0))
    mids = (cuts[:-1] + cuts[1:])[:, None] / 2

    def inside(intervals: np.ndarray) -> np.ndarray:
        return ((intervals[:, 0] <= mids) & (mids < intervals[:, 1])).any(axis=1)

    codes = np.where(inside(talks), 1, np.where(inside(quiet), 0, 2))
    lengths = np.diff(cuts)
    k = np.ceil(lengths / ACTIVITY_MAX_SPAN_S).astype(int)
    index = np.arange(k.sum()) - np.repeat(np.cumsum(k) - k, k)
    times = np.repeat(cuts[:-1], k) + np.repeat(lengths / k, k) * index
    return times, np.repeat(codes, k)


def _spread(
    rng: np.random.Generator, count: int, total: float, start: float, end: float
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` episodes of ``total`` seconds in all, one per equal slot of [start, end)."""
    slot = max(1.0, (end - start) / count)
    lengths = total * rng.dirichlet(np.full(count, 4.0))
    if lengths.max() > 0.9 * slot:
        lengths = np.full(count, min(total / count, 0.9 * slot))
    return start + slot * np.arange(count), lengths


_PSS_SPELLING = ("Never", "Almost never", "Sometime", "Fairly often", "Very often")
_DIFFICULTY = ((4, "Not difficult at all"), (9, "Somewhat difficult"), (19, "Very difficult"))


def _allocate(rng: np.random.Generator, total: int, n: int, cap: int) -> np.ndarray:
    """``n`` item scores in 0..cap summing to ``total`` (clipped to what fits), spread at random."""
    scores = np.zeros(n, dtype=int)
    for _ in range(int(np.clip(total, 0, n * cap))):
        open_items = np.flatnonzero(scores < cap)
        scores[rng.choice(open_items)] += 1
    return scores


def _write_surveys(folder: Path, surveys: pl.DataFrame, seed: int) -> None:
    if surveys.is_empty():
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 7])
    phq, pss = load_instrument("phq-9"), load_instrument("pss-10")
    tables: dict[str, list[list[str]]] = {"phq-9": [], "pss-10": [], "bfi-44": []}
    keys = surveys.select("student", "phase").unique(maintain_order=True).sort("student", "phase")
    for student, phase in keys.iter_rows():
        got = {
            (i, s): v
            for i, s, v in surveys.filter(
                (pl.col("student") == student) & (pl.col("phase") == phase)
            )
            .select("instrument", "scale", "value")
            .iter_rows()
        }
        if ("phq-9", "total") in got:
            total = round(got["phq-9", "total"])
            items = _allocate(rng, total, 9, 3)
            difficulty = next((t for hi, t in _DIFFICULTY if total <= hi), "Extremely difficult")
            answers = [phq.options[v].label for v in items]
            tables["phq-9"].append([student, phase, *answers, difficulty])
        if ("pss-10", "total") in got:
            keyed = _allocate(rng, round(got["pss-10", "total"]), 10, 4)
            answered = [
                4 - v if item.keyed == "-" else v for v, item in zip(keyed, pss.items, strict=True)
            ]
            tables["pss-10"].append([student, phase, *[_PSS_SPELLING[v] for v in answered]])
        if all(("bfi-44", d) in got for d in BFI_44_DOMAINS):
            values = [0] * 44
            for domain, numbers in BFI_44_DOMAINS.items():
                above = round(got["bfi-44", domain] * len(numbers)) - len(numbers)
                scores = 1 + _allocate(rng, above, len(numbers), 4)
                for item, score in zip(numbers, scores.tolist(), strict=True):
                    values[item - 1] = 6 - score if item in BFI_44_REVERSED else score
            tables["bfi-44"].append([student, phase, *[BFI_44_OPTIONS[v - 1] for v in values]])
    headers = {
        "phq-9": [i.text for i in phq.items] + ["Response"],
        "pss-10": [
            f"In the last month, how often have you {i.text[0].lower()}{i.text[1:]}?"
            for i in pss.items
        ],
        "bfi-44": [f"I see myself as someone who... (item {k})" for k in range(1, 45)],
    }
    files = {"phq-9": "PHQ-9.csv", "pss-10": "PerceivedStressScale.csv", "bfi-44": "BigFive.csv"}
    for instrument, rows in tables.items():
        if rows:
            columns = ["uid", "type", *headers[instrument]]
            pl.DataFrame(rows, schema=columns, orient="row").write_csv(folder / files[instrument])


def _write_ema(folder: Path, ema: pl.DataFrame, term: Term) -> None:
    rows = ema.filter(pl.col("raw").is_not_null()).with_columns(
        resp_time=pl.col("time")
        .dt.replace_time_zone(term.timezone, ambiguous="earliest")
        .dt.epoch("s")
    )
    for (student, kind), group in rows.group_by("student", "kind"):
        responses: dict[int, dict[str, Any]] = {}
        for when, item, raw in (
            group.sort("resp_time").select("resp_time", "item", "raw").iter_rows()
        ):
            responses.setdefault(when, {"resp_time": when})[item] = str(raw)
        name = str(kind).capitalize()
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / f"{name}_{student}.json").write_text(
            json.dumps(list(responses.values())), "utf-8"
        )
