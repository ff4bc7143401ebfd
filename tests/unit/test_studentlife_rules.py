"""The StudentLife rules on hand-made folders with known answers (not written by the writer).

Raw files are laid out as in the published dataset: ``dataset/sensing/<stream>/
<stream>_uXX.csv``, Unix-second timestamps, the published headers (``timestamp,
audio inference``, ``start_timestamp, end_timestamp``, ``start,end``). Activity
and audio inferences come in duty-cycle bursts of three samples 2 s apart, one
burst every 5 minutes, so each block of a class covers exactly its hours.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from personae.environments.sensing import Term
from personae.environments.studentlife import SleepDetector, StudentLife
from personae.environments.studentlife_sleep import episode_signal, share_signal
from personae.errors import ConfigError

TERM = Term(n_days=4)
STATIONARY, WALKING = 0, 1
SILENCE, VOICE, NOISE, UNKNOWN = 0, 1, 2, 3


def ts(day: int, hour: float) -> int:
    """Unix time ``hour`` hours after local midnight of ``day`` (hours past 24 run into the next day)."""
    return round(TERM.epoch(day, hour))


def write(path: Path, header: str, rows: Sequence[tuple[object, ...]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))


def inferences(blocks: list[tuple[int, float, float, int]]) -> list[tuple[int, int]]:
    """Bursts of one class per block ``(day, from_hour, to_hour, code)``, every 5 minutes."""
    rows = []
    for day, start, end, code in blocks:
        for t in range(ts(day, start), ts(day, end), 300):
            rows += [(t + 2 * k, code) for k in range(3)]
    return rows


def sensing(
    root: Path, stream: str, student: str, header: str, rows: Sequence[tuple[object, ...]]
) -> None:
    write(root / "dataset" / "sensing" / stream / f"{stream}_{student}.csv", header, rows)


def row(frame: pl.DataFrame, student: str, day: int) -> dict[str, object]:
    return frame.filter((pl.col("student") == student) & (pl.col("day") == day)).row(0, named=True)


# --- conversation: the conversation stream over audio coverage -------------------------------


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    root = tmp_path_factory.mktemp("conversation")
    audio, conversation = "timestamp, audio inference", "start_timestamp, end_timestamp"
    # u10: audio on days 0, 1 and 3 (a gap on day 2).
    sensing(
        root,
        "audio",
        "u10",
        audio,
        inferences([(0, 9, 12, NOISE), (1, 9, 10, SILENCE), (3, 20, 23, VOICE)]),
    )
    sensing(
        root,
        "conversation",
        "u10",
        conversation,
        [
            (ts(0, 10), ts(0, 10.25)),  # 15 min
            (ts(0, 14), ts(0, 14.75)),  # 45 min, after the audio stops: still counted
            (ts(3, 23.5), ts(3, 24.5)),  # across midnight: 60 min on the day it starts
        ],
    )
    # u11: conversations but no audio file: the detected conversation shows the day was sensed.
    sensing(root, "conversation", "u11", conversation, [(ts(1, 9), ts(1, 9 + 20 / 60))])
    # u12: only unknown audio on day 0 (the microphone ran), activity alone on day 1.
    sensing(root, "audio", "u12", audio, inferences([(0, 12, 13, UNKNOWN)]))
    sensing(root, "activity", "u12", "timestamp, activity inference", inferences([(1, 8, 9, 0)]))
    return StudentLife(root, term=TERM).features()


def test_conversation_minutes_and_count_per_start_day(talk: pl.DataFrame):
    day0, day3 = row(talk, "u10", 0), row(talk, "u10", 3)
    assert (day0["conversation_count"], day0["conversation_minutes"]) == (2, pytest.approx(60.0))
    assert (day3["conversation_count"], day3["conversation_minutes"]) == (1, pytest.approx(60.0))
    u11 = row(talk, "u11", 1)
    assert (u11["conversation_count"], u11["conversation_minutes"]) == (1, pytest.approx(20.0))


def test_audio_without_conversation_is_zero(talk: pl.DataFrame):
    silent = row(talk, "u10", 1)
    assert (silent["conversation_count"], silent["conversation_minutes"]) == (0, 0.0)
    assert row(talk, "u12", 0)["conversation_count"] == 0  # unknown inferences are coverage too


def test_no_audio_and_no_conversation_is_missing(talk: pl.DataFrame):
    for student, day in [("u10", 2), ("u11", 0), ("u11", 2), ("u11", 3), ("u12", 2), ("u12", 3)]:
        r = row(talk, student, day)
        assert (r["conversation_count"], r["conversation_minutes"]) == (None, None), (student, day)
    # Activity data do not make a day's conversation observed.
    assert row(talk, "u12", 1)["stationary_minutes"] == pytest.approx(65.0)  # last burst: 10 min
    assert row(talk, "u12", 1)["conversation_count"] is None


# --- sleep: the detector's hints, threshold and window -----------------------------------------


@pytest.fixture(scope="module")
def night_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sleep")
    activity, audio, episodes = (
        "timestamp, activity inference",
        "timestamp, audio inference",
        "start,end",
    )
    # u20: all five hints; asleep 04:00-13:00 on day 1, a night that runs past noon.
    sensing(
        root,
        "activity",
        "u20",
        activity,
        inferences([(0, 18, 28, WALKING), (0, 28, 37, STATIONARY), (0, 37, 40, WALKING)]),
    )
    sensing(
        root,
        "audio",
        "u20",
        audio,
        inferences([(0, 18, 28, NOISE), (0, 28, 37, SILENCE), (0, 37, 40, VOICE)]),
    )
    sensing(root, "dark", "u20", episodes, [(ts(1, 4), ts(1, 13))])
    sensing(root, "phonelock", "u20", episodes, [(ts(1, 2), ts(1, 13))])
    sensing(root, "phonecharge", "u20", episodes, [(ts(1, 5), ts(1, 11))])
    # u21: night to day 1 dark and locked but walking in noise (2 of 5 hints: awake);
    # night to day 2 in a lit room, locked, stationary and silent (3 of 5: asleep 23:00-07:00).
    sensing(
        root,
        "activity",
        "u21",
        activity,
        inferences(
            [
                (0, 22, 28, WALKING),
                (1, 22, 23, WALKING),
                (1, 23, 31, STATIONARY),
                (1, 31, 32, WALKING),
            ]
        ),
    )
    sensing(
        root,
        "audio",
        "u21",
        audio,
        inferences(
            [(0, 22, 28, NOISE), (1, 22, 23, NOISE), (1, 23, 31, SILENCE), (1, 31, 32, NOISE)]
        ),
    )
    sensing(root, "dark", "u21", episodes, [(ts(0, 23), ts(1, 3))])
    sensing(root, "phonelock", "u21", episodes, [(ts(0, 23), ts(1, 3)), (ts(1, 23), ts(2, 7))])
    sensing(root, "phonecharge", "u21", episodes, [])  # the file is there: never charging
    # u22: dark and lock only (the other hints drop out of the mean).
    sensing(
        root,
        "dark",
        "u22",
        episodes,
        [
            (ts(0, 3), ts(0, 3 + 50 / 60)),  # day 0: 50 minutes, too short
            (ts(0, 23.5), ts(1, 7)),  # day 1
            (ts(1, 23), ts(2, 6)),  # day 2
            (ts(3, 2), ts(3, 2 + 50 / 60)),  # day 3: 50 minutes at night ...
            (ts(3, 14), ts(3, 16)),  # ... and a two-hour nap
        ],
    )
    sensing(
        root,
        "phonelock",
        "u22",
        episodes,
        [
            (ts(0, 3), ts(0, 3 + 50 / 60)),
            (ts(0, 23), ts(1, 2)),
            (ts(1, 2 + 5 / 60), ts(1, 7.5)),  # a 5-minute glance at 02:00: merged
            (ts(1, 22), ts(2, 1)),
            (ts(2, 1.5), ts(2, 8)),  # awake 01:00-01:30: two episodes, the later is longer
            (ts(3, 2), ts(3, 2 + 50 / 60)),
            (ts(3, 13.5), ts(3, 16.5)),
        ],
    )
    return root


@pytest.fixture(scope="module")
def nights(night_folder: Path) -> pl.DataFrame:
    return StudentLife(night_folder, term=TERM).features()


def sleep_of(frame: pl.DataFrame, student: str, day: int) -> tuple[object, object, object]:
    r = row(frame, student, day)
    return r["sleep_onset_hour"], r["wake_hour"], r["sleep_minutes"]


def test_a_night_past_noon_is_not_cut(nights: pl.DataFrame):
    assert sleep_of(nights, "u20", 1) == pytest.approx((28.0, 13.0, 540.0))  # 04:00 to 13:00
    for day in (0, 2, 3):
        assert sleep_of(nights, "u20", day) == (None, None, None)


def test_most_of_the_weighted_hints_must_agree(nights: pl.DataFrame):
    assert sleep_of(nights, "u21", 1) == (None, None, None)  # dark and locked, but walking in noise
    assert sleep_of(nights, "u21", 2) == pytest.approx(
        (23.0, 7.0, 480.0)
    )  # lit but still and silent


def test_missing_hints_drop_out_and_short_gaps_merge(nights: pl.DataFrame):
    assert sleep_of(nights, "u22", 0) == (None, None, None)  # under an hour
    assert sleep_of(nights, "u22", 1) == pytest.approx((23.5, 7.0, 450.0))  # the glance is merged
    assert sleep_of(nights, "u22", 2) == pytest.approx((25.5, 6.0, 270.0))  # the longer episode
    # The window runs 18:00 to 18:00: a day whose night is too short reports its nap.
    assert sleep_of(nights, "u22", 3) == pytest.approx((38.0, 16.0, 120.0))


def test_weights_and_window_are_parameters(night_folder: Path):
    lock_and_dark = SleepDetector(weights={"dark": 1.0, "locked": 1.0})
    f = StudentLife(night_folder, term=TERM, sleep=lock_and_dark).features()
    assert sleep_of(f, "u21", 1) == pytest.approx((23.0, 3.0, 240.0))
    assert sleep_of(f, "u21", 2) == (None, None, None)  # locked alone is half: not above it
    noon = SleepDetector(window_hours=(20.0, 12.0))
    f = StudentLife(night_folder, term=TERM, sleep=noon).features()
    assert sleep_of(f, "u20", 1) == pytest.approx((28.0, 12.0, 480.0))  # cut at noon


def test_the_likelihood_is_the_weighted_mean_of_observed_hints():
    dark = episode_signal(np.array([0.0]), np.array([10.0]), 0.0, 20.0)
    locked = episode_signal(np.array([0.0]), np.array([5.0]), 0.0, 20.0)
    silence = share_signal(np.array([0.0, 12.0]), np.array([10.0, 14.0]), np.array([0.5, np.nan]))
    like = SleepDetector().likelihood({"dark": dark, "locked": locked, "silence": silence})
    assert like.start.tolist() == [0.0, 5.0, 10.0]
    assert like.end.tolist() == [5.0, 10.0, 20.0]
    assert like.value == pytest.approx([2.5 / 3, 1.5 / 3, 0.0])
    weighted = SleepDetector(weights={"dark": 3.0, "silence": 1.0}).likelihood(
        {"dark": dark, "locked": locked, "silence": silence}
    )
    assert weighted.start.tolist() == [0.0, 10.0]  # an unweighted hint does not split
    assert weighted.value == pytest.approx([3.5 / 4, 0.0])
    assert len(SleepDetector().likelihood({}).start) == 0


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"weights": {"light": 1.0}}, "weights"),
        ({"weights": {"dark": -1.0}}, "weights"),
        ({"weights": {"dark": 0.0}}, "weights"),
        ({"threshold": 1.0}, "threshold"),
        ({"window_hours": (18.0, 20.0)}, "window_hours"),
        ({"min_s": -1.0}, "min_s"),
    ],
)
def test_detector_settings_are_validated(options: dict[str, object], field: str):
    with pytest.raises(ConfigError, match=field):
        SleepDetector(**options)  # type: ignore[arg-type]
