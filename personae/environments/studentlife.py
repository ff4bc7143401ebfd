"""Read (and write) the StudentLife dataset layout: a :class:`SensingSource` over a user's copy.

StudentLife (Wang et al., UbiComp 2014) followed 48 Dartmouth students through
the spring 2013 term with smartphone sensing, EMAs and pre/post surveys. It is
**not redistributed** with personae: obtain it from its authors
(https://studentlife.cs.dartmouth.edu/) and point :class:`StudentLife` at the
folder that holds ``dataset/`` (or at ``dataset`` itself). Day boundaries fall
at local midnight in the term's time zone (US/Eastern), day 0 is 2013-03-27.

Every rule that turns raw sensor episodes into daily features (the activity
burst rule, the sleep heuristic, unlock sessions, time at places) is a module
constant below and is explained in ``docs/sensing.md``.

:func:`write_studentlife` writes any source in the same layout, so the loader
can be tried on a :class:`~personae.environments.sensing.SyntheticTerm`.

Example:
    >>> from personae.environments.studentlife import stress_score
    >>> stress_score(3)  # raw level 3 is "Stressed out", the top of the monotonic scale
    5
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from personae.environments.sensing import (
    BFI_44_DOMAINS,
    BFI_44_REVERSED,
    EMA_FIELDS,
    EMA_SCHEMA,
    FEATURE_SCHEMA,
    STRESS_LABELS,
    SURVEY_SCHEMA,
    Term,
    ema_items,
    empty_frame,
    stress_score,
)
from personae.errors import ConfigError
from personae.measures.instruments import Instrument, load_instrument

__all__ = [
    "DATASET_URL",
    "EMA_FIELDS",
    "STRESS_LABELS",
    "StudentLife",
    "answer_value",
    "ema_items",
    "score_items",
    "stress_score",
    "write_studentlife",
]

#: Where the dataset comes from; it is not shipped with personae.
DATASET_URL = "https://studentlife.cs.dartmouth.edu/"
_NOT_SHIPPED = (
    "The StudentLife dataset is not redistributed with personae; obtain it from its "
    f"authors (Wang et al., UbiComp 2014) at {DATASET_URL} and pass the folder that "
    "contains dataset/ (or the dataset folder itself)."
)

#: Activity samples less than this far apart belong to one burst (a duty-cycle window).
ACTIVITY_BURST_GAP_S = 30.0
#: A burst stands for the time until the next burst, at most this long.
ACTIVITY_MAX_SPAN_S = 600.0
#: A location fix stands for the time until the next fix, at most this long.
PLACE_MAX_SPAN_S = 1200.0
#: The sleep window: from this hour the evening before to this hour on the wake day.
SLEEP_WINDOW_HOURS = (20.0, 12.0)
#: Idle episodes closer than this are one sleep episode (a glance at the phone at night).
SLEEP_MERGE_GAP_S = 600.0
#: The shortest sleep episode counted.
SLEEP_MIN_S = 3600.0
#: Longer gaps between lock episodes are missing data, not unlocked use.
UNLOCK_MAX_GAP_S = 4 * 3600.0

_EMA_KINDS = ("Stress", "Mood", "Sleep", "Social")
_STREAM_FILES = (
    "activity",
    "conversation",
    "dark",
    "phonelock",
    "phonecharge",
    "wifi_location",
    "gps",
)
_UID = re.compile(r"_(u\d+)\.(?:csv|json)$", re.IGNORECASE)


class StudentLife:
    """A user's copy of the StudentLife dataset as a :class:`SensingSource`.

    Frames are computed on first use and cached.

    Args:
        path: The folder containing ``dataset/``, or the ``dataset`` folder.
        term: Calendar and time zone; the default :class:`Term` starts on
            2013-03-27 (the first day of the StudentLife term) in America/New_York.

    Raises:
        ConfigError: ``dataset/sensing`` is not there (the message says what is
            missing and where to get the dataset).
    """

    def __init__(self, path: str | os.PathLike[str], term: Term | None = None) -> None:
        root = Path(path)
        if not root.is_dir():
            raise ConfigError(f"StudentLife folder {root} does not exist. {_NOT_SHIPPED}")
        dataset = root / "dataset" if (root / "dataset").is_dir() else root
        if not (dataset / "sensing").is_dir():
            raise ConfigError(
                f"no StudentLife layout under {root}: expected {dataset / 'sensing'} "
                f"(dataset/{{sensing,EMA,survey}}). {_NOT_SHIPPED}"
            )
        self.path = dataset
        self.term = term or Term()
        self._cache: dict[str, pl.DataFrame] = {}

    def __repr__(self) -> str:
        return f"StudentLife({str(self.path)!r})"

    # --- the interface -----------------------------------------------------------------------

    def students(self) -> list[str]:
        """Ids with at least one sensing file, sorted."""
        found: set[str] = set()
        for stream in _STREAM_FILES:
            found.update(self._files(stream))
        return sorted(found)

    def days(self) -> int:
        """Days in the term (70 by default)."""
        return self.term.n_days

    def calendar(self) -> pl.DataFrame:
        """The term calendar; see :meth:`deadlines` for each student's own deadlines."""
        return self.term.calendar()

    def features(self) -> pl.DataFrame:
        """Daily features of every student and day (:data:`~personae.environments.sensing.FEATURE_SCHEMA`)."""
        if "features" not in self._cache:
            grid = pl.DataFrame(
                {
                    "student": np.repeat(self.students(), self.days()).tolist(),
                    "day": list(range(self.days())) * len(self.students()),
                },
                schema={"student": pl.String, "day": pl.Int64},
            )
            activity = self._activity()
            parts = [activity, self._conversation(activity), self._places(), *self._episodes()]
            out = grid.with_columns(date=pl.lit(self.term.start) + pl.duration(days=pl.col("day")))
            for part in parts:
                out = out.join(part, on=["student", "day"], how="left")
            self._cache["features"] = out.select(
                [pl.col(c).cast(t) for c, t in FEATURE_SCHEMA.items()]
            )
        return self._cache["features"]

    def surveys(self) -> pl.DataFrame:
        """PHQ-9 and PSS-10 totals and BFI-44 domain means from ``dataset/survey``."""
        if "surveys" not in self._cache:
            folder = self.path / "survey"
            frames = [
                _score_survey(folder / name, instrument)
                for name, instrument in (
                    ("PHQ-9.csv", "phq-9"),
                    ("PerceivedStressScale.csv", "pss-10"),
                    ("BigFive.csv", "bfi-44"),
                )
                if (folder / name).is_file()
            ]
            self._cache["surveys"] = (
                pl.concat(frames) if frames else empty_frame(SURVEY_SCHEMA)
            ).sort("instrument", "student", "phase", "scale")
        return self._cache["surveys"]

    def ema(self) -> pl.DataFrame:
        """Stress, Mood, Sleep and Social EMA responses in the term (:data:`~personae.environments.sensing.EMA_SCHEMA`)."""
        if "ema" not in self._cache:
            rows: list[dict[str, Any]] = []
            response = self.path / "EMA" / "response"
            folders = {p.name.lower(): p for p in response.iterdir()} if response.is_dir() else {}
            for kind in _EMA_KINDS:
                folder = folders.get(kind.lower())
                if folder is None:
                    continue
                for path in sorted(folder.glob("*.json")):
                    match = _UID.search(path.name)
                    if match:
                        rows.extend(_ema_rows(path, match.group(1), kind.lower()))
            self._cache["ema"] = self._ema_frame(rows)
        return self._cache["ema"]

    def deadlines(self) -> pl.DataFrame:
        """Each student's deadlines per day from ``dataset/education/deadlines.csv`` (student, day, deadlines).

        Empty when the file is absent.
        """
        path = self.path / "education" / "deadlines.csv"
        schema = {"student": pl.String, "day": pl.Int64, "deadlines": pl.Int64}
        if not path.is_file():
            return pl.DataFrame(schema=schema)
        raw = _rename(pl.read_csv(path, infer_schema=False))
        if "uid" not in raw.columns:
            raise ConfigError(f"{path} has no uid column; its columns are {raw.columns}")
        long = raw.unpivot(index="uid", variable_name="date", value_name="deadlines")
        return (
            long.with_columns(
                student=pl.col("uid").str.strip_chars(),
                date=pl.col("date").str.to_date(strict=False),
                deadlines=pl.col("deadlines").str.strip_chars().cast(pl.Int64, strict=False),
            )
            .drop_nulls(["date"])
            .with_columns(day=(pl.col("date") - pl.lit(self.term.start)).dt.total_days())
            .filter(pl.col("day").is_between(0, self.days() - 1))
            .select(list(schema))
            .cast(schema)  # type: ignore[arg-type]
            .sort("student", "day")
        )

    # --- reading -----------------------------------------------------------------------------

    def _files(self, stream: str) -> dict[str, Path]:
        folder = self.path / "sensing" / stream
        if not folder.is_dir():
            return {}
        out = {}
        for path in sorted(folder.glob(f"{stream}_u*.csv")):
            match = _UID.search(path.name)
            if match:
                out[match.group(1)] = path
        return out

    def _read(self, stream: str, columns: Iterable[str], text: Iterable[str] = ()) -> pl.DataFrame:
        """Every student's file of one stream: ``student`` plus the columns, numeric as Float64."""
        columns, text = list(columns), set(text)
        frames = []
        for uid, path in self._files(stream).items():
            try:
                lf = pl.scan_csv(path, infer_schema=False, truncate_ragged_lines=True)
                lf = lf.rename(_normal_name)
                names = lf.collect_schema().names()
            except pl.exceptions.NoDataError:
                continue
            missing = [c for c in columns if c not in names]
            if missing:
                raise ConfigError(f"{path} has no column(s) {missing}; its columns are {names}")
            frames.append(
                lf.select(
                    pl.lit(uid).alias("student"),
                    *[
                        pl.col(c).str.strip_chars()
                        if c in text
                        else pl.col(c).str.strip_chars().cast(pl.Float64, strict=False)
                        for c in columns
                    ],
                )
            )
        schema = {"student": pl.String} | {
            c: pl.String if c in text else pl.Float64 for c in columns
        }
        if not frames:
            return pl.DataFrame(schema=schema)
        return pl.concat(frames).drop_nulls().collect()

    def _day(self, column: str) -> pl.Expr:
        local = (
            pl.from_epoch((pl.col(column) * 1000).round().cast(pl.Int64), time_unit="ms")
            .dt.replace_time_zone("UTC")
            .dt.convert_time_zone(self.term.timezone)
        )
        return (local.dt.date() - pl.lit(self.term.start)).dt.total_days()

    def _in_term(self, frame: pl.DataFrame) -> pl.DataFrame:
        return frame.filter(pl.col("day").is_between(0, self.days() - 1))

    # --- features ----------------------------------------------------------------------------

    def _activity(self) -> pl.DataFrame:
        """Minutes stationary, walking and running per day (the burst rule)."""
        samples = self._read("activity", ["timestamp", "activity_inference"]).sort(
            "student", "timestamp"
        )
        gap = pl.col("timestamp").diff().over("student")
        bursts = (
            samples.with_columns(burst=(gap.is_null() | (gap > ACTIVITY_BURST_GAP_S)).cum_sum())
            .group_by("burst")
            .agg(
                pl.col("student").first(),
                start=pl.col("timestamp").min(),
                n=pl.len(),
                **{
                    name: (pl.col("activity_inference") == code).sum()
                    for code, name in enumerate(("stationary", "walking", "running"))
                },
            )
            .sort("student", "start")
            .with_columns(
                span=(pl.col("start").shift(-1).over("student") - pl.col("start"))
                .clip(upper_bound=ACTIVITY_MAX_SPAN_S)
                .fill_null(ACTIVITY_MAX_SPAN_S),
                day=self._day("start"),
            )
        )
        share = pl.col("span") / 60 / pl.col("n")
        return self._in_term(
            bursts.group_by("student", "day").agg(
                **{
                    f"{name}_minutes": (pl.col(name) * share).sum()
                    for name in ("stationary", "walking", "running")
                }
            )
        )

    def _conversation(self, activity: pl.DataFrame) -> pl.DataFrame:
        """Conversation minutes and count per day of their start; 0 on sensed days without one."""
        talks = self._read("conversation", ["start_timestamp", "end_timestamp"])
        per_day = self._in_term(
            talks.with_columns(day=self._day("start_timestamp"))
            .group_by("student", "day")
            .agg(
                conversation_minutes=(
                    (pl.col("end_timestamp") - pl.col("start_timestamp")).clip(lower_bound=0) / 60
                ).sum(),
                conversation_count=pl.len().cast(pl.Int64),
            )
        )
        sensed = pl.concat([activity.select("student", "day"), per_day.select("student", "day")])
        return (
            sensed.unique()
            .join(per_day, on=["student", "day"], how="left")
            .with_columns(
                pl.col("conversation_minutes").fill_null(0.0),
                pl.col("conversation_count").fill_null(0),
            )
        )

    def _places(self) -> pl.DataFrame:
        """Distinct places, minutes at the most-visited place and on campus, per day."""
        wifi = self._read("wifi_location", ["time", "location"], text=["location"])
        fixes = wifi.select(
            "student",
            "time",
            place=pl.col("location")
            .str.extract(r"^(?:in|near)\[\s*([^;\]]+?)\s*[;\]]", 1)
            .fill_null(pl.col("location")),
            campus=pl.lit(True),
        )
        gps_only = sorted(set(self._files("gps")) - set(self._files("wifi_location")))
        if gps_only:
            gps = self._read("gps", ["time", "latitude", "longitude"])
            fixes = pl.concat(
                [
                    fixes,
                    gps.filter(pl.col("student").is_in(gps_only)).select(
                        "student",
                        "time",
                        place=pl.format(
                            "{},{}", pl.col("latitude").round(3), pl.col("longitude").round(3)
                        ),
                        campus=pl.lit(False),
                    ),
                ]
            )
        stays = (
            fixes.filter(pl.col("place") != "")
            .sort("student", "time")
            .with_columns(
                minutes=(pl.col("time").shift(-1).over("student") - pl.col("time"))
                .clip(upper_bound=PLACE_MAX_SPAN_S)
                .fill_null(PLACE_MAX_SPAN_S)
                / 60,
                day=self._day("time"),
            )
        )
        stays = self._in_term(stays)
        home = (
            stays.group_by("student", "place")
            .agg(pl.col("minutes").sum())
            .sort(["student", "minutes", "place"], descending=[False, True, False])
            .group_by("student", maintain_order=True)
            .agg(home=pl.col("place").first())
        )
        return (
            stays.join(home, on="student")
            .group_by("student", "day")
            .agg(
                distinct_places=pl.col("place").n_unique().cast(pl.Int64),
                home_minutes=pl.col("minutes").filter(pl.col("place") == pl.col("home")).sum(),
                campus_minutes=pl.when(pl.col("campus").all()).then(pl.col("minutes").sum()),
            )
        )

    def _episodes(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Sleep (from dark, lock and charge episodes) and unlock sessions (from lock episodes)."""
        streams = {
            s: self._read(s, ["start", "end"]).partition_by("student", as_dict=True)
            for s in ("dark", "phonelock", "phonecharge")
        }
        n = self.days()
        late, early = SLEEP_WINDOW_HOURS
        opens = np.array([self.term.epoch(d - 1, late) for d in range(n)])
        closes = np.array([self.term.epoch(d, early) for d in range(n)])
        midnights = np.array([self.term.epoch(d) for d in range(-1, n)])
        sleep_rows, sessions = [], []
        for student in self.students():
            got = {s: _intervals(frames.get((student,))) for s, frames in streams.items()}
            lock = _union(*got["phonelock"]) if (student,) in streams["phonelock"] else None
            dark = _union(
                np.concatenate([got["dark"][0], got["phonecharge"][0]]),
                np.concatenate([got["dark"][1], got["phonecharge"][1]]),
            )
            idle = dark if lock is None else _intersect(lock, dark)
            starts, ends = _union(*idle, gap=SLEEP_MERGE_GAP_S)
            if len(starts):
                cs = np.maximum(starts[None, :], opens[:, None])
                ce = np.minimum(ends[None, :], closes[:, None])
                best = np.argmax(ce - cs, axis=1)
                rows = np.arange(n)
                onset, wake = cs[rows, best], ce[rows, best]
                for d in np.flatnonzero(wake - onset >= SLEEP_MIN_S):
                    sleep_rows.append(
                        (
                            student,
                            int(d),
                            (wake[d] - onset[d]) / 60,
                            (onset[d] - midnights[d]) / 3600,
                            (wake[d] - midnights[d + 1]) / 3600,
                        )
                    )
            if lock is not None and len(lock[0]) > 1:
                gap_start, gap_end = lock[1][:-1], lock[0][1:]
                keep = (gap_end > gap_start) & (gap_end - gap_start <= UNLOCK_MAX_GAP_S)
                sessions.append(
                    pl.DataFrame(
                        {"student": student, "start": gap_start[keep], "end": gap_end[keep]},
                        schema={"student": pl.String, "start": pl.Float64, "end": pl.Float64},
                    )
                )
        sleep = pl.DataFrame(
            sleep_rows,
            schema={
                "student": pl.String,
                "day": pl.Int64,
                "sleep_minutes": pl.Float64,
                "sleep_onset_hour": pl.Float64,
                "wake_hour": pl.Float64,
            },
            orient="row",
        )
        unlock_schema = {"student": pl.String, "start": pl.Float64, "end": pl.Float64}
        unlocks = pl.concat(sessions) if sessions else pl.DataFrame(schema=unlock_schema)
        phone = self._in_term(
            unlocks.with_columns(day=self._day("start"))
            .group_by("student", "day")
            .agg(
                unlock_count=pl.len().cast(pl.Int64),
                unlock_minutes=((pl.col("end") - pl.col("start")) / 60).sum(),
            )
        )
        return sleep, phone

    def _ema_frame(self, rows: list[dict[str, Any]]) -> pl.DataFrame:
        if not rows:
            return empty_frame(EMA_SCHEMA)
        frame = pl.DataFrame(
            rows,
            schema={
                "student": pl.String,
                "resp_time": pl.Float64,
                "kind": pl.String,
                "item": pl.String,
                "value": pl.Float64,
                "raw": pl.Int64,
                "label": pl.String,
            },
        )
        local = (
            pl.from_epoch((pl.col("resp_time") * 1000).round().cast(pl.Int64), time_unit="ms")
            .dt.replace_time_zone("UTC")
            .dt.convert_time_zone(self.term.timezone)
            .dt.replace_time_zone(None)
        )
        frame = frame.with_columns(time=local, day=self._day("resp_time")).with_columns(
            hour=(pl.col("time") - pl.col("time").dt.truncate("1d")).dt.total_microseconds() / 3.6e9
        )
        return (
            self._in_term(frame)
            .select([pl.col(c).cast(t) for c, t in EMA_SCHEMA.items()])
            .sort("student", "time", "kind", "item")
        )


# --- helpers: names and episodes -------------------------------------------------------------


def _normal_name(name: str) -> str:
    """``' activity inference'`` -> ``'activity_inference'``: headers compared loosely."""
    return re.sub(r"\s+", "_", name.strip().lower())


def _rename(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.rename({c: _normal_name(c) for c in frame.columns})


def _intervals(frame: pl.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    if frame is None or frame.is_empty():
        return np.empty(0), np.empty(0)
    frame = frame.filter(pl.col("end") > pl.col("start"))
    return frame["start"].to_numpy(), frame["end"].to_numpy()


def _union(starts: np.ndarray, ends: np.ndarray, gap: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Merge intervals that overlap or lie at most ``gap`` seconds apart; sorted, disjoint."""
    if len(starts) == 0:
        return np.empty(0), np.empty(0)
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    reach = np.maximum.accumulate(e)
    new = np.ones(len(s), dtype=bool)
    new[1:] = s[1:] > reach[:-1] + gap
    first = np.flatnonzero(new)
    return s[first], np.maximum.reduceat(e, first)


def _intersect(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Intersection of two sorted, disjoint interval sets (a linear merge)."""
    (a_s, a_e), (b_s, b_e) = a, b
    out_s, out_e = [], []
    i = j = 0
    while i < len(a_s) and j < len(b_s):
        lo, hi = max(a_s[i], b_s[j]), min(a_e[i], b_e[j])
        if lo < hi:
            out_s.append(lo)
            out_e.append(hi)
        if a_e[i] < b_e[j]:
            i += 1
        else:
            j += 1
    return np.array(out_s, dtype=float), np.array(out_e, dtype=float)


# --- surveys ---------------------------------------------------------------------------------

#: BFI-44 response options as the StudentLife file spells them, 1-5.
BFI_44_OPTIONS = (
    "Disagree Strongly",
    "Disagree a little",
    "Neither agree nor disagree",
    "Agree a little",
    "Agree strongly",
)
#: Spellings seen in the StudentLife files or common elsewhere, beyond the option labels.
_VARIANTS: dict[str, dict[str, int]] = {
    "phq-9": {"more than half of the days": 2, "nearly everyday": 3},
    "pss-10": {"sometime": 2, "almost ever": 1},
    "bfi-44": {
        "strongly disagree": 1,
        "disagree": 2,
        "a little disagree": 2,
        "neutral": 3,
        "neither agree or disagree": 3,
        "agree": 4,
        "a little agree": 4,
        "strongly agree": 5,
    },
}


def _normal_answer(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", text.lower()).split())


@cache
def _answer_key(instrument: str) -> dict[str, int]:
    """Normalised answer text to value, for one instrument."""
    if instrument == "bfi-44":
        key = {_normal_answer(label): v for v, label in enumerate(BFI_44_OPTIONS, start=1)}
    else:
        key = {_normal_answer(o.label): o.value for o in load_instrument(instrument).options}
    return key | _VARIANTS[instrument]


def answer_value(instrument: str, text: str | None) -> int | None:
    """The value of a StudentLife survey answer, matched loosely; ``None`` when unrecognised.

    Case, punctuation and spacing are ignored, known variants are accepted
    ("Sometime", "Strongly agree"), a plain number in range is taken as is and
    near misses are matched by similarity (``difflib``, cutoff 0.8).

    Example:
        >>> answer_value("pss-10", " sometime "), answer_value("bfi-44", "Agree Strongly")
        (2, 5)
    """
    if text is None:
        return None
    key = _answer_key(instrument)
    norm = _normal_answer(text)
    if not norm:
        return None
    if norm in key:
        return key[norm]
    if norm.isdigit() and int(norm) in set(key.values()):
        return int(norm)
    close = difflib.get_close_matches(norm, list(key), n=1, cutoff=0.8)
    return key[close[0]] if close else None


#: Items (first columns after uid and type) read per instrument.
_ITEMS = {"phq-9": 9, "pss-10": 10, "bfi-44": 44}


def _score_survey(path: Path, instrument: str) -> pl.DataFrame:
    """Score one StudentLife survey file: the items are the columns after uid and type, in order."""
    raw = pl.read_csv(path, infer_schema=False)
    names = {_normal_name(c): c for c in raw.columns}
    if "uid" not in names or "type" not in names:
        raise ConfigError(f"{path} needs uid and type columns; its columns are {raw.columns}")
    items = [c for c in raw.columns if c not in (names["uid"], names["type"])][: _ITEMS[instrument]]
    if len(items) < _ITEMS[instrument]:
        raise ConfigError(
            f"{path} has {len(items)} item columns; {instrument} needs {_ITEMS[instrument]}"
        )
    answers = {v for c in items for v in raw[c].unique().to_list() if v is not None}
    mapping = {v: answer_value(instrument, v) for v in answers}
    values = (
        raw.select(
            [
                pl.col(c).replace_strict(mapping, default=None, return_dtype=pl.Float64)
                for c in items
            ]
        )
        .to_numpy()
        .astype(float)
    )
    scores = score_items(instrument, values)
    students = raw[names["uid"]].str.strip_chars().to_list()
    phases = raw[names["type"]].str.strip_chars().str.to_lowercase().to_list()
    rows = [
        (student, phase, instrument, scale, float(column[r]))
        for scale, column in scores.items()
        for r, (student, phase) in enumerate(zip(students, phases, strict=True))
        if not np.isnan(column[r])
    ]
    return pl.DataFrame(rows, schema=SURVEY_SCHEMA, orient="row")


def score_items(instrument: str, values: np.ndarray) -> dict[str, np.ndarray]:
    """Score item values (rows = respondents, columns = items in order; NaN = unanswered).

    PHQ-9: the sum of 9 items (0-3). PSS-10: the sum of 10 items (0-4) with
    items 4, 5, 7 and 8 reverse scored (the bundled instrument's key). A total
    with one item unanswered is prorated (mean of the answered items x the item
    count); with more it is NaN. BFI-44: per domain, the mean of its answered
    items (1-5) after reversing the reverse-keyed ones, NaN when fewer than half
    are answered.

    Returns:
        Scale name (``"total"`` or a Big Five domain) to one score per row.
    """
    values = np.array(values, dtype=float)
    if instrument == "bfi-44":
        out = {}
        for domain, items in BFI_44_DOMAINS.items():
            cols = np.column_stack(
                [6 - values[:, i - 1] if i in BFI_44_REVERSED else values[:, i - 1] for i in items]
            )
            answered = (~np.isnan(cols)).sum(axis=1)
            with np.errstate(invalid="ignore"):
                mean = np.nanmean(np.where(answered[:, None] > 0, cols, 0.0), axis=1)
            out[domain] = np.where(answered * 2 >= len(items), mean, np.nan)
        return out
    inst: Instrument = load_instrument(instrument)
    cols = np.column_stack(
        [
            inst.min_value + inst.max_value - values[:, k] if item.keyed == "-" else values[:, k]
            for k, item in enumerate(inst.items)
        ]
    )
    answered = (~np.isnan(cols)).sum(axis=1)
    with np.errstate(invalid="ignore"):
        total = np.nansum(cols, axis=1) * len(inst.items) / np.maximum(answered, 1)
    return {"total": np.where(answered >= len(inst.items) - 1, total, np.nan)}


# --- EMA -------------------------------------------------------------------------------------


def _ema_rows(path: Path, student: str, kind: str) -> list[dict[str, Any]]:
    try:
        responses = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read EMA file {path}: {exc}") from None
    if not isinstance(responses, list):
        raise ConfigError(f"EMA file {path} must hold a JSON array of responses")
    rows = []
    for response in responses:
        if not isinstance(response, dict):
            continue
        try:
            when = float(response["resp_time"])
        except (KeyError, TypeError, ValueError):
            continue
        for item, value, raw, label in ema_items(kind, response):
            rows.append(
                {
                    "student": student,
                    "resp_time": when,
                    "kind": kind,
                    "item": item,
                    "value": value,
                    "raw": raw,
                    "label": label,
                }
            )
    return rows


def write_studentlife(source: Any, path: Any, **options: Any) -> Any:
    """Write ``source`` in the StudentLife layout (see :mod:`personae.environments.studentlife_writer`)."""
    from personae.environments.studentlife_writer import write_studentlife as write

    return write(source, path, **options)
