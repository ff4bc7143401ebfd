"""Sleep from phone sensing: a best-effort sleep detector after Chen et al. (2013).

StudentLife (Wang et al., UbiComp 2014) infers sleep with the Best Effort Sleep
(BES) model of Chen et al., "Unobtrusive sleep monitoring using smartphones"
(PervasiveHealth 2013): soft hints that the student is asleep, namely the phone
in the dark, the phone locked, the phone charging, the student stationary
(activity inference) and the surroundings silent (audio inference), combined
linearly. BES (as we read it) regresses a night's sleep duration on how long
each hint held; this module keeps its hints and its linear combination but
applies them moment by moment, so that a night also has an onset and a wake time:

1. Each hint is a :class:`Signal`: a value in [0, 1] on the stretches of time
   where it was observed (1 inside a dark, lock or charge episode, 0 between
   them; the share of stationary or silent samples in an activity or audio burst).
2. The sleep likelihood is the weighted mean of the hints observed at each
   moment (:attr:`SleepDetector.weights`; unobserved hints drop out of the mean).
   It is constant between consecutive changes of any hint, so it is evaluated
   on those elementary stretches: the same as a per-epoch score at any epoch
   length, without rounding onset and wake to an epoch.
3. Asleep is a likelihood above :attr:`SleepDetector.threshold`; asleep
   stretches at most :attr:`~SleepDetector.merge_gap_s` apart are one episode.
4. Each day's night is the longest episode inside its window, 18:00 the evening
   before to 18:00 on the day (not cut at noon: 04:00 to 13:00 is a 9-hour
   night), if it lasts at least :attr:`~SleepDetector.min_s`.

The default weights are equal, not the published ones (see ``docs/sensing.md``).

Example:
    >>> import numpy as np
    >>> hour = 3600.0
    >>> dark = episode_signal(np.array([1 * hour]), np.array([8 * hour]), 0.0, 24 * hour)
    >>> locked = episode_signal(np.array([0.5 * hour]), np.array([9 * hour]), 0.0, 24 * hour)
    >>> onset, wake = SleepDetector().nights(
    ...     {"dark": dark, "locked": locked}, np.array([0.0]), np.array([24 * hour])
    ... )
    >>> float(onset[0] / hour), float(wake[0] / hour)
    (1.0, 8.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

from personae.errors import ConfigError

__all__ = [
    "SLEEP_MERGE_GAP_S",
    "SLEEP_MIN_S",
    "SLEEP_SIGNALS",
    "SLEEP_THRESHOLD",
    "SLEEP_WEIGHTS",
    "SLEEP_WINDOW_HOURS",
    "Signal",
    "SleepDetector",
    "episode_signal",
    "merge_intervals",
    "share_signal",
]

#: The hints of sleep, after Chen et al. (2013): phone in the dark, locked, charging;
#: the student stationary (activity inference 0); the surroundings silent (audio inference 0).
SLEEP_SIGNALS = ("dark", "locked", "charging", "stationary", "silence")
#: Weight of each hint in the sleep likelihood: equal (not the published regression).
SLEEP_WEIGHTS: Mapping[str, float] = MappingProxyType({name: 1.0 for name in SLEEP_SIGNALS})
#: Asleep when the likelihood (weighted mean of the observed hints) is above this.
SLEEP_THRESHOLD = 0.5
#: The night's window: from this hour the evening before to this hour on the wake day.
SLEEP_WINDOW_HOURS = (18.0, 18.0)
#: Asleep stretches closer than this are one episode (a glance at the phone at night).
SLEEP_MERGE_GAP_S = 600.0
#: The shortest episode counted as a night.
SLEEP_MIN_S = 3600.0


class Signal(NamedTuple):
    """A piecewise-constant hint: ``value`` on ``[start, end)``, unobserved elsewhere.

    The stretches are sorted and disjoint; times are Unix seconds, values in [0, 1].
    """

    start: np.ndarray
    end: np.ndarray
    value: np.ndarray


def _empty() -> Signal:
    return Signal(np.empty(0), np.empty(0), np.empty(0))


def merge_intervals(
    starts: np.ndarray, ends: np.ndarray, gap: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Merge intervals that overlap or lie at most ``gap`` seconds apart.

    Returns:
        Sorted, disjoint starts and ends.

    Example:
        >>> s, e = merge_intervals(np.array([0.0, 5.0, 30.0]), np.array([10.0, 12.0, 40.0]), gap=20)
        >>> s.tolist(), e.tolist()
        ([0.0], [40.0])
    """
    starts, ends = np.asarray(starts, dtype=float), np.asarray(ends, dtype=float)
    keep = ends > starts
    starts, ends = starts[keep], ends[keep]
    if len(starts) == 0:
        return np.empty(0), np.empty(0)
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    reach = np.maximum.accumulate(e)
    new = np.ones(len(s), dtype=bool)
    new[1:] = s[1:] > reach[:-1] + gap
    first = np.flatnonzero(new)
    return s[first], np.maximum.reduceat(e, first)


def episode_signal(starts: np.ndarray, ends: np.ndarray, lo: float, hi: float) -> Signal:
    """A hint from episodes (dark, lock, charge): 1 inside them, 0 between, observed on ``[lo, hi)``.

    The episode files list episodes only, so a stretch without one reads as the
    state not holding, for as long as the stream is taken to be observed.
    """
    s, e = merge_intervals(starts, ends)
    s, e = np.clip(s, lo, hi), np.clip(e, lo, hi)
    bounds = np.concatenate([[lo], np.column_stack([s, e]).ravel(), [hi]])
    values = np.tile([0.0, 1.0], len(s) + 1)[:-1]
    keep = bounds[1:] > bounds[:-1]
    return Signal(bounds[:-1][keep], bounds[1:][keep], values[keep])


def share_signal(starts: np.ndarray, ends: np.ndarray, shares: np.ndarray) -> Signal:
    """A hint from inference bursts: each burst's share of the class on the time it stands for.

    Bursts with a missing share (no classified sample) are unobserved; overlaps
    are cut at the next burst's start.
    """
    starts, ends = np.asarray(starts, dtype=float), np.asarray(ends, dtype=float)
    shares = np.asarray(shares, dtype=float)
    order = np.argsort(starts, kind="stable")
    starts, ends, shares = starts[order], ends[order], shares[order]
    ends = np.minimum(ends, np.append(starts[1:], np.inf))
    keep = (ends > starts) & np.isfinite(shares)
    return Signal(starts[keep], ends[keep], np.clip(shares[keep], 0.0, 1.0))


@dataclass(frozen=True, kw_only=True)
class SleepDetector:
    """The sleep rule: weighted hints, a threshold, and the longest episode of each night.

    Args:
        weights: Weight of each hint (names in :data:`SLEEP_SIGNALS`; missing
            names weigh 0). Only the ratios matter.
        threshold: Asleep where the weighted mean of the observed hints is above this.
        window_hours: ``(evening, day)``: a day's night is looked for from
            ``evening`` o'clock the day before to ``day`` o'clock on the day.
            Windows of consecutive days must not overlap (``day <= evening``).
        merge_gap_s: Asleep stretches at most this far apart are one episode.
        min_s: The shortest episode that counts as a night.

    Raises:
        ConfigError: An unknown hint, a negative or all-zero weight, a threshold
            outside [0, 1), overlapping or empty windows, or a negative duration.

    Example:
        >>> SleepDetector(weights={"dark": 2, "locked": 1}).weights["dark"]
        2.0
    """

    weights: Mapping[str, float] = field(default_factory=lambda: dict(SLEEP_WEIGHTS))
    threshold: float = SLEEP_THRESHOLD
    window_hours: tuple[float, float] = SLEEP_WINDOW_HOURS
    merge_gap_s: float = SLEEP_MERGE_GAP_S
    min_s: float = SLEEP_MIN_S

    def __post_init__(self) -> None:
        unknown = sorted(set(self.weights) - set(SLEEP_SIGNALS))
        if unknown:
            raise ConfigError(
                f"SleepDetector.weights names unknown hints {unknown}; the hints are {SLEEP_SIGNALS}"
            )
        weights = {name: float(w) for name, w in self.weights.items()}
        if any(not np.isfinite(w) or w < 0 for w in weights.values()) or not any(
            w > 0 for w in weights.values()
        ):
            raise ConfigError(
                f"SleepDetector.weights must be finite, non-negative and not all 0, got {weights}"
            )
        object.__setattr__(self, "weights", weights)
        if not 0.0 <= self.threshold < 1.0:
            raise ConfigError(f"SleepDetector.threshold must be in [0, 1), got {self.threshold}")
        evening, day = self.window_hours
        if not (0.0 <= evening < 24.0 and evening - 24.0 < day <= evening):
            raise ConfigError(
                "SleepDetector.window_hours (evening, day) must have 0 <= evening < 24 and "
                f"evening - 24 < day <= evening (one window a day, no overlap), got {self.window_hours}"
            )
        if self.merge_gap_s < 0 or self.min_s < 0:
            raise ConfigError(
                "SleepDetector.merge_gap_s and min_s must not be negative, "
                f"got {self.merge_gap_s} and {self.min_s}"
            )

    def likelihood(self, signals: Mapping[str, Signal]) -> Signal:
        """The sleep likelihood: the weighted mean of the hints observed at each moment.

        Args:
            signals: Hint name to its signal; hints without weight are ignored.

        Returns:
            The likelihood on every stretch where at least one weighted hint is observed.
        """
        used = [(self.weights[n], s) for n, s in signals.items() if self.weights.get(n, 0.0) > 0]
        used = [(w, s) for w, s in used if len(s.start)]
        if not used:
            return _empty()
        points = np.unique(np.concatenate([np.concatenate([s.start, s.end]) for _, s in used]))
        if len(points) < 2:
            return _empty()
        mids = (points[:-1] + points[1:]) / 2
        num, den = np.zeros(len(mids)), np.zeros(len(mids))
        for weight, signal in used:
            k = np.clip(np.searchsorted(signal.start, mids, side="right") - 1, 0, None)
            inside = (signal.start[k] <= mids) & (mids < signal.end[k])
            num += weight * np.where(inside, signal.value[k], 0.0)
            den += weight * inside
        seen = den > 0
        return Signal(points[:-1][seen], points[1:][seen], num[seen] / den[seen])

    def episodes(self, signals: Mapping[str, Signal]) -> tuple[np.ndarray, np.ndarray]:
        """Sleep episodes: stretches with the likelihood above the threshold, merged across short gaps."""
        like = self.likelihood(signals)
        asleep = like.value > self.threshold
        return merge_intervals(like.start[asleep], like.end[asleep], gap=self.merge_gap_s)

    def nights(
        self, signals: Mapping[str, Signal], opens: np.ndarray, closes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Onset and wake of each window's night: its longest episode, clipped to the window.

        Args:
            signals: Hint name to its signal.
            opens: Unix time each window opens (one per day).
            closes: Unix time each window closes.

        Returns:
            Onset and wake times per window; NaN where no episode of at least
            :attr:`min_s` lies in the window.
        """
        opens, closes = np.asarray(opens, dtype=float), np.asarray(closes, dtype=float)
        onset, wake = np.full(len(opens), np.nan), np.full(len(opens), np.nan)
        starts, ends = self.episodes(signals)
        near = (ends > opens.min(initial=np.inf)) & (starts < closes.max(initial=-np.inf))
        starts, ends = starts[near], ends[near]
        if len(starts) == 0:
            return onset, wake
        cs = np.maximum(starts[None, :], opens[:, None])
        ce = np.minimum(ends[None, :], closes[:, None])
        best = np.argmax(ce - cs, axis=1)
        rows = np.arange(len(opens))
        found = ce[rows, best] - cs[rows, best] >= max(self.min_s, 1e-9)
        onset[found], wake[found] = cs[rows, best][found], ce[rows, best][found]
        return onset, wake
