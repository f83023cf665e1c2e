"""The simulated population: relationship start days (newcomers over the whole period)."""

from __future__ import annotations

import numpy as np

from simulator import SimConfig
from simulator.calendar import Calendar
from simulator.world import build_world


def test_newcomers_join_at_the_same_pace_until_the_last_day() -> None:
    """Customers, merchants and SMEs joining during the period do so uniformly over all of
    it: the last 90 days get their share of newcomers (a cut-off before the end made the
    population age in the last months, and the monitoring saw tenure drift)."""
    config = SimConfig.preset("demo", seed=3)
    calendar = Calendar.build(config.start, config.months)
    world = build_world(config, calendar)
    n_days = calendar.n_days
    joined = np.concatenate(
        [
            world.customers.opened_day,
            world.merchants.onboarded_day,
            world.smes.onboarded_day,
        ]
    )
    joined = joined[joined >= 0]
    assert joined.max() < n_days
    assert len(joined) > 1_000
    last_90 = float((joined >= n_days - 90).mean())
    assert 0.7 * 90 / n_days < last_90 < 1.3 * 90 / n_days, last_90
    # the same pace each quarter: no quarter below 70 % or above 130 % of the mean
    quarters = np.bincount(joined * 8 // n_days, minlength=8)
    assert quarters.min() > 0.7 * quarters.mean(), quarters
    assert quarters.max() < 1.3 * quarters.mean(), quarters
