"""Read (and write) the StudentLife dataset layout: a :class:`SensingSource` over a user's copy.

StudentLife (Wang et al., UbiComp 2014) followed 48 Dartmouth students through
the spring 2013 term with smartphone sensing, EMAs and pre/post surveys. It is
**not redistributed** with personae: obtain it from its authors
(https://studentlife.cs.dartmouth.edu/) and point :class:`StudentLife` at the
folder that holds ``dataset/`` (or at ``dataset`` itself). Day boundaries fall
at local midnight in the term's time zone (US/Eastern), day 0 is 2013-03-27.

Every rule that turns raw sensor data into daily features (the activity and
audio burst rule, conversations over audio coverage, unlock sessions, time at
places) is a module constant below and is explained in ``docs/sensing.md``; the
sleep detector (after Chen et al.'s Best Effort Sleep model) is
:class:`~personae.studies.cohort.term.studentlife_sleep.SleepDetector`.

:func:`~personae.studies.cohort.term.studentlife_writer.write_studentlife` writes
any source in the same layout, so the loader can be tried on a
:class:`~personae.studies.cohort.term.synthetic.SyntheticTerm`.

StudentLife's answer codes (``STRESS_LABELS``, ``EMA_FIELDS``, ``stress_score``,
``ema_items``) live in :mod:`personae.studies.cohort.term.schema`; this module's
names for them keep working until 0.4.

Example:
    >>> from personae.studies.cohort.term.studentlife import StudentLife
    >>> StudentLife("/path/to/studentlife").students()[:2]  # doctest: +SKIP
    ['u00', 'u01']
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import polars as pl

from personae.errors import ConfigError
from personae.moved import moved_names
from personae.studies.cohort.term.calendar import Term
from personae.studies.cohort.term.schema import (
    FEATURE_SCHEMA,
    SURVEY_SCHEMA,
    empty_frame,
)
from personae.studies.cohort.term.studentlife_reports import (
    BFI_44_OPTIONS,
    answer_value,
    header_key,
    read_ema,
    score_items,
    score_survey,
)
from personae.studies.cohort.term.studentlife_sleep import (
    SLEEP_MERGE_GAP_S,
    SLEEP_MIN_S,
    SLEEP_SIGNALS,
    SLEEP_THRESHOLD,
    SLEEP_WEIGHTS,
    SLEEP_WINDOW_HOURS,
    Signal,
    SleepDetector,
    episode_signal,
    merge_intervals,
    share_signal,
)

__all__ = [
    "ACTIVITY_BURST_GAP_S",
    "ACTIVITY_CLASSES",
    "ACTIVITY_MAX_SPAN_S",
    "AUDIO_CLASSES",
    "BFI_44_OPTIONS",
    "DATASET_URL",
    "PLACE_MAX_SPAN_S",
    "SLEEP_MERGE_GAP_S",
    "SLEEP_MIN_S",
    "SLEEP_SIGNALS",
    "SLEEP_THRESHOLD",
    "SLEEP_WEIGHTS",
    "SLEEP_WINDOW_HOURS",
    "UNLOCK_MAX_GAP_S",
    "SleepDetector",
    "StudentLife",
    "answer_value",
    "score_items",
]

#: Where the dataset comes from; it is not shipped with personae.
DATASET_URL = "https://studentlife.cs.dartmouth.edu/"
_NOT_SHIPPED = (
    "The StudentLife dataset is not redistributed with personae; obtain it from its "
    f"authors (Wang et al., UbiComp 2014) at {DATASET_URL} and pass the folder that "
    "contains dataset/ (or the dataset folder itself)."
)

#: Activity (and audio) samples less than this far apart belong to one burst (a duty-cycle window).
ACTIVITY_BURST_GAP_S = 30.0
#: A burst stands for the time until the next burst, at most this long.
ACTIVITY_MAX_SPAN_S = 600.0
#: Activity inference codes 0, 1, 2 (3 is unknown, not counted).
ACTIVITY_CLASSES = ("stationary", "walking", "running")
#: Audio inference codes 0, 1, 2 (3 is unknown, not counted).
AUDIO_CLASSES = ("silence", "voice", "noise")
#: A location fix stands for the time until the next fix, at most this long.
PLACE_MAX_SPAN_S = 1200.0
#: Longer gaps between lock episodes are missing data, not unlocked use.
UNLOCK_MAX_GAP_S = 4 * 3600.0

_STREAM_FILES = (
    "activity",
    "audio",
    "conversation",
    "dark",
    "phonelock",
    "phonecharge",
    "wifi_location",
    "gps",
)
_UID = re.compile(r"_(u\d+)\.(?:csv|json)$", re.IGNORECASE)
#: Sleep hints read from episode files: hint name -> stream.
_EPISODE_HINTS = {"dark": "dark", "locked": "phonelock", "charging": "phonecharge"}


class StudentLife:
    """A user's copy of the StudentLife dataset as a :class:`SensingSource`.

    Frames are computed on first use and cached.

    Args:
        path: The folder containing ``dataset/``, or the ``dataset`` folder.
        term: Calendar and time zone; the default :class:`Term` starts on
            2013-03-27 (the first day of the StudentLife term) in America/New_York.
        sleep: The sleep rule (hint weights, threshold, night window); the
            default :class:`~personae.studies.cohort.term.studentlife_sleep.SleepDetector`
            weighs its five hints equally.

    Raises:
        ConfigError: ``dataset/sensing`` is not there (the message says what is
            missing and where to get the dataset).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        term: Term | None = None,
        *,
        sleep: SleepDetector | None = None,
    ) -> None:
        root = Path(path).expanduser()
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
        self.sleep = sleep or SleepDetector()
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
        """Daily features of every student and day (:data:`~personae.studies.cohort.term.schema.FEATURE_SCHEMA`)."""
        if "features" not in self._cache:
            grid = pl.DataFrame(
                {
                    "student": np.repeat(self.students(), self.days()).tolist(),
                    "day": list(range(self.days())) * len(self.students()),
                },
                schema={"student": pl.String, "day": pl.Int64},
            )
            activity = self._bursts("activity", "activity_inference", ACTIVITY_CLASSES)
            audio = self._bursts("audio", "audio_inference", AUDIO_CLASSES)
            parts = [
                self._activity(activity),
                self._conversation(audio),
                self._places(),
                self._sleep(activity, audio),
                self._unlocks(),
            ]
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
                score_survey(folder / name, instrument)
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
        """Stress, Mood, Sleep and Social EMA responses in the term (:data:`~personae.studies.cohort.term.schema.EMA_SCHEMA`)."""
        if "ema" not in self._cache:
            self._cache["ema"] = read_ema(self.path / "EMA" / "response", self.term)
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

    def _scan(
        self, stream: str, columns: Iterable[str], text: Iterable[str] = ()
    ) -> list[pl.LazyFrame]:
        """Each student's file of one stream, lazily: ``student`` plus the columns, numeric as Float64."""
        columns, text = list(columns), set(text)
        frames = []
        for uid, path in self._files(stream).items():
            try:
                lf = pl.scan_csv(path, infer_schema=False, truncate_ragged_lines=True)
                lf = lf.rename(header_key)
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
                ).drop_nulls()
            )
        return frames

    def _read(self, stream: str, columns: Iterable[str], text: Iterable[str] = ()) -> pl.DataFrame:
        """Every student's file of one stream: ``student`` plus the columns, numeric as Float64."""
        columns, text = list(columns), set(text)
        schema = {"student": pl.String} | {
            c: pl.String if c in text else pl.Float64 for c in columns
        }
        frames = self._scan(stream, columns, text) or [pl.LazyFrame(schema=schema)]
        return pl.concat(frames).collect()

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

    def _bursts(self, stream: str, column: str, classes: tuple[str, ...]) -> pl.DataFrame:
        """Duty-cycle bursts of an inference stream (the burst rule), one student file at a time.

        Returns:
            One row per burst: student, start, span (the seconds it stands for),
            day, n (samples) and the number of samples of each class (codes 0, 1, ...).
        """

        def bursts(samples: pl.LazyFrame) -> pl.LazyFrame:
            gap = pl.col("timestamp").diff()
            return (
                samples.sort("timestamp")
                .with_columns(burst=(gap.is_null() | (gap > ACTIVITY_BURST_GAP_S)).cum_sum())
                .group_by("burst")
                .agg(
                    pl.col("student").first(),
                    start=pl.col("timestamp").min(),
                    n=pl.len(),
                    **{name: (pl.col(column) == code).sum() for code, name in enumerate(classes)},
                )
                .sort("start")
                .with_columns(
                    span=(pl.col("start").shift(-1) - pl.col("start"))
                    .clip(upper_bound=ACTIVITY_MAX_SPAN_S)
                    .fill_null(ACTIVITY_MAX_SPAN_S),
                    day=self._day("start"),
                )
                .drop("burst")
            )

        empty = pl.LazyFrame(
            schema={"student": pl.String, "timestamp": pl.Float64, column: pl.Float64}
        )
        files = self._scan(stream, ["timestamp", column]) or [empty]
        return pl.concat([bursts(lf) for lf in files]).collect()

    def _activity(self, bursts: pl.DataFrame) -> pl.DataFrame:
        """Minutes stationary, walking and running per day: burst time shared among the classes."""
        share = pl.col("span") / 60 / pl.col("n")
        return self._in_term(
            bursts.group_by("student", "day").agg(
                **{f"{name}_minutes": (pl.col(name) * share).sum() for name in ACTIVITY_CLASSES}
            )
        )

    def _conversation(self, audio: pl.DataFrame) -> pl.DataFrame:
        """Conversation minutes and count per day of their start.

        0 on a day with audio inferences but no conversation; null on a day with neither.
        """
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
        covered = pl.concat([audio.select("student", "day"), per_day.select("student", "day")])
        return (
            self._in_term(covered.unique())
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

    def _hints(self, activity: pl.DataFrame, audio: pl.DataFrame) -> dict[str, dict[str, Signal]]:
        """Each student's sleep hints: episode streams and the stationary and silent shares."""
        lo = self.term.epoch(-1, self.sleep.window_hours[0])
        hi = self.term.epoch(self.days() - 1, self.sleep.window_hours[1])
        hints: dict[str, dict[str, Signal]] = {}
        for hint, stream in _EPISODE_HINTS.items():
            frames = self._read(stream, ["start", "end"]).partition_by("student", as_dict=True)
            # A student with the file is observed all term: the file lists episodes only.
            for student in self._files(stream):
                starts, ends = _intervals(frames.get((student,)))
                hints.setdefault(student, {})[hint] = episode_signal(starts, ends, lo, hi)
        for hint, bursts, classes in (
            ("stationary", activity, ACTIVITY_CLASSES),
            ("silence", audio, AUDIO_CLASSES),
        ):
            known = pl.sum_horizontal(classes)
            shares = bursts.select(
                "student",
                "start",
                end=pl.col("start") + pl.col("span"),
                share=pl.when(known > 0).then(pl.col(classes[0]) / known),
            )
            for (student,), part in shares.partition_by("student", as_dict=True).items():
                hints.setdefault(str(student), {})[hint] = share_signal(
                    part["start"].to_numpy(),
                    part["end"].to_numpy(),
                    part["share"].fill_null(np.nan).to_numpy(),
                )
        return hints

    def _sleep(self, activity: pl.DataFrame, audio: pl.DataFrame) -> pl.DataFrame:
        """Each day's night (the one ending that day) from the sleep detector."""
        n = self.days()
        evening, morning = self.sleep.window_hours
        opens = np.array([self.term.epoch(d - 1, evening) for d in range(n)])
        closes = np.array([self.term.epoch(d, morning) for d in range(n)])
        midnights = np.array([self.term.epoch(d) for d in range(-1, n)])
        schema = {
            "student": pl.String,
            "day": pl.Int64,
            "sleep_minutes": pl.Float64,
            "sleep_onset_hour": pl.Float64,
            "wake_hour": pl.Float64,
        }
        nights = [pl.DataFrame(schema=schema)]
        for student, hints in sorted(self._hints(activity, audio).items()):
            onset, wake = self.sleep.nights(hints, opens, closes)
            values = {
                "day": np.arange(n),
                "sleep_minutes": (wake - onset) / 60,
                "sleep_onset_hour": (onset - midnights[:-1]) / 3600,
                "wake_hour": (wake - midnights[1:]) / 3600,
            }
            found = ~np.isnan(onset)
            data = {"student": student} | {k: v[found] for k, v in values.items()}
            nights.append(pl.DataFrame(data, schema=schema))
        return pl.concat(nights)

    def _unlocks(self) -> pl.DataFrame:
        """Unlock sessions per day: the gaps between consecutive lock episodes."""
        locks = self._read("phonelock", ["start", "end"]).partition_by("student", as_dict=True)
        schema = {"student": pl.String, "start": pl.Float64, "end": pl.Float64}
        sessions = [pl.DataFrame(schema=schema)]
        for (student,), frame in locks.items():
            lock_start, lock_end = merge_intervals(*_intervals(frame))
            gap_start, gap_end = lock_end[:-1], lock_start[1:]
            keep = gap_end - gap_start <= UNLOCK_MAX_GAP_S
            sessions.append(
                pl.DataFrame(
                    {"student": student, "start": gap_start[keep], "end": gap_end[keep]},
                    schema=schema,
                )
            )
        return self._in_term(
            pl.concat(sessions)
            .with_columns(day=self._day("start"))
            .group_by("student", "day")
            .agg(
                unlock_count=pl.len().cast(pl.Int64),
                unlock_minutes=((pl.col("end") - pl.col("start")) / 60).sum(),
            )
        )


# --- helpers: names and episodes -------------------------------------------------------------


def _rename(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.rename({c: header_key(c) for c in frame.columns})


def _intervals(frame: pl.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    if frame is None or frame.is_empty():
        return np.empty(0), np.empty(0)
    frame = frame.filter(pl.col("end") > pl.col("start"))
    return frame["start"].to_numpy(), frame["end"].to_numpy()


# Names from before the split, kept until 0.4: StudentLife's codes now live in term.schema,
# and the writer in term.studentlife_writer. The writer is reached lazily so that the loader
# and the writer (which reads the loader's constants) import one way only.
_TERM = "personae.studies.cohort.term"
__getattr__ = moved_names(
    __name__,
    {
        "EMA_FIELDS": f"{_TERM}.schema",
        "STRESS_LABELS": f"{_TERM}.schema",
        "ema_items": f"{_TERM}.schema",
        "stress_score": f"{_TERM}.schema",
        "write_studentlife": f"{_TERM}.studentlife_writer",
    },
)
