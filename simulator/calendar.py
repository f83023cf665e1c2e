"""The simulated period: days, months, and seasonality (Double-11, Spring Festival, 618)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

# Lunar new year (Spring Festival) dates; the dip and the pre-festival surge follow them.
SPRING_FESTIVAL = {
    2024: date(2024, 2, 10),
    2025: date(2025, 1, 29),
    2026: date(2026, 2, 17),
    2027: date(2027, 2, 6),
    2028: date(2028, 1, 26),
    2029: date(2029, 2, 13),
}
US_PER_DAY = 86_400_000_000
US_PER_SECOND = 1_000_000


def _epoch_day(d: date) -> int:
    return (d - date(1970, 1, 1)).days


@dataclass(frozen=True)
class Calendar:
    """Day indices 0..n_days-1 from ``start``; per-day seasonal weights per activity."""

    start: date
    n_days: int
    epoch_day0: int
    month_starts: np.ndarray  # day index of each month's first day, plus n_days at the end
    pos_weight: np.ndarray  # card spending at POS
    mall_weight: np.ndarray  # online mall orders
    biz_weight: np.ndarray  # business activity (SME flows, merchants' other-bank cards)

    @classmethod
    def build(cls, start: date, months: int) -> Calendar:
        """The calendar of ``months`` months from ``start`` (the first of a month)."""
        starts = []
        y, m = start.year, start.month
        for _ in range(months + 1):
            starts.append(_epoch_day(date(y, m, 1)) - _epoch_day(start))
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        month_starts = np.array(starts, dtype=np.int64)
        month_starts[0] = 0
        n_days = int(month_starts[-1])
        epoch0 = _epoch_day(start)
        days = np.arange(n_days)
        dow = (epoch0 + days + 3) % 7  # Monday = 0
        weekend = dow >= 5
        pos = 1.0 + 0.18 * weekend
        mall = 1.0 + 0.10 * weekend
        biz = 1.0 - 0.45 * weekend

        def idx(d: date) -> int:
            return _epoch_day(d) - epoch0

        def span(a: int, b: int) -> slice:
            return slice(max(a, 0), max(min(b, n_days), 0))

        for year in range(start.year, start.year + months // 12 + 2):
            d11 = idx(date(year, 11, 11))
            mall[span(d11 - 10, d11)] *= 1.8
            mall[span(d11, d11 + 1)] *= 8.0
            mall[span(d11 + 1, d11 + 3)] *= 1.6
            pos[span(d11, d11 + 1)] *= 1.5
            d618 = idx(date(year, 6, 18))
            mall[span(d618 - 3, d618)] *= 1.4
            mall[span(d618, d618 + 1)] *= 3.0
            festival = SPRING_FESTIVAL.get(year)
            if festival is not None:
                f = idx(festival)
                pos[span(f - 21, f - 1)] *= 1.25  # new-year shopping
                pos[span(f - 1, f + 7)] *= 0.45  # shops closed, people travel home
                pos[span(f + 7, f + 15)] *= 0.8
                mall[span(f - 10, f + 8)] *= 0.5  # logistics stop
                biz[span(f - 3, f + 11)] *= 0.3
        return cls(
            start=start,
            n_days=n_days,
            epoch_day0=epoch0,
            month_starts=month_starts,
            pos_weight=pos,
            mall_weight=mall,
            biz_weight=biz,
        )

    @property
    def months(self) -> int:
        return len(self.month_starts) - 1

    def month_days(self, month: int) -> slice:
        """The day indices of ``month`` (0-based)."""
        return slice(int(self.month_starts[month]), int(self.month_starts[month + 1]))

    def month_of(self, day: np.ndarray) -> np.ndarray:
        """The 0-based month of each day index."""
        return np.searchsorted(self.month_starts, day, side="right") - 1

    def month_end_days(self) -> np.ndarray:
        """Day index of each month's last day."""
        return self.month_starts[1:] - 1

    def sample_days(
        self, rng: np.random.Generator, weight: np.ndarray, month: int, n: int
    ) -> np.ndarray:
        """``n`` day indices within ``month``, drawn proportionally to ``weight``."""
        sl = self.month_days(month)
        cum = np.cumsum(weight[sl])
        pick = np.searchsorted(cum, rng.random(n) * cum[-1], side="right")
        return (sl.start + np.minimum(pick, sl.stop - sl.start - 1)).astype(np.int64)

    def to_us(self, day: np.ndarray, seconds: np.ndarray | float = 0.0) -> np.ndarray:
        """Epoch microseconds of day index plus seconds into the day."""
        return (self.epoch_day0 + np.asarray(day, dtype=np.int64)) * US_PER_DAY + (
            np.asarray(seconds) * US_PER_SECOND
        ).astype(np.int64)

    def day_of_us(self, us: np.ndarray) -> np.ndarray:
        """Day index of epoch microseconds."""
        return np.floor_divide(us, US_PER_DAY) - self.epoch_day0

    def date_of(self, day: int) -> date:
        """The calendar date of a day index."""
        return date.fromordinal(self.start.toordinal() + int(day))


HOUR_PROFILE = np.array(
    [0, 0, 0, 0, 0, 0, 0.4, 1.0, 1.6, 1.8, 2.0, 2.4, 3.2, 2.6, 2.0, 1.9, 2.0, 2.4, 3.0, 3.2, 2.8,
     2.2, 1.5, 0.8],
    dtype=np.float64,
)  # fmt: skip


def seconds_of_day(rng: np.random.Generator, night: np.ndarray) -> np.ndarray:
    """Seconds into the day: night rows in 00:00-05:59, the others by a daytime profile."""
    n = len(night)
    cum = np.cumsum(HOUR_PROFILE)
    day_hour = np.searchsorted(cum, rng.random(n) * cum[-1], side="right")
    night_hour = rng.integers(0, 6, n)
    hour = np.where(night, night_hour, day_hour)
    return hour * 3600 + rng.integers(0, 3600, n)
