"""Credit applications: behaviour history before the first one, volume knob, presets."""

from __future__ import annotations

from datetime import date

import numpy as np
import pyarrow.parquet as pq
import pytest

from simulator import SimConfig
from simulator.calendar import Calendar
from simulator.core import simulate_book
from simulator.loans import (
    FIRST_DRAW_DAYS,
    FIRST_MISS_P,
    MAX_FIRST_MISSED,
    MERCHANT,
    NEVER,
    PERSONAL,
    SME,
    Applications,
    draw_applications,
    ex_ante_line_pd,
    instalment_due,
    label_cutoff,
    loan_batches,
    own_draw_window_share,
)
from simulator.world import build_world
from tests.simulator.conftest import SimRun
from yidai.core.errors import YidaiError


def _applications(config: SimConfig) -> tuple[Applications, Calendar]:
    """Applications drawn on a freshly built world (behaviour aggregates left at zero)."""
    calendar = Calendar.build(config.start, config.months)
    return draw_applications(build_world(config, calendar)), calendar


def test_applications_start_after_the_behaviour_history() -> None:
    config = SimConfig.preset("tiny", seed=3, months=10, history_months=6)
    apps, calendar = _applications(config)
    assert len(apps.day) > 0
    first = int(calendar.month_starts[6])
    assert apps.day.min() >= first, "no application before six months of behaviour"
    assert apps.day.max() < calendar.n_days
    assert set(np.unique(apps.product)) == {PERSONAL, MERCHANT, SME}


def test_application_rate_scales_every_product() -> None:
    base, _ = _applications(SimConfig.preset("tiny", seed=5, application_rate=1.0))
    more, _ = _applications(SimConfig.preset("tiny", seed=5, application_rate=4.0))
    for product in (PERSONAL, MERCHANT, SME):
        ratio = (more.product == product).sum() / max((base.product == product).sum(), 1)
        assert 3.0 < ratio < 5.0, (product, ratio)
    # the bank's decision keeps its approval share whatever the volume
    assert abs(more.approved.mean() - base.approved.mean()) < 0.05


def test_demo_preset_leaves_room_for_full_windows_and_matured_cohorts() -> None:
    demo = SimConfig.preset("demo")
    assert demo.history_months >= 6, "180-day features are full at the first application"
    # at least twelve months of applications mature within a 6-month performance window, so
    # that the out-of-time split trains on more than the portfolio's launch months
    assert demo.months - demo.history_months - 6 >= 12
    calendar = Calendar.build(demo.start, demo.months)
    last_day = calendar.start.toordinal() + calendar.n_days - 1
    assert date.fromordinal(last_day) == date(2026, 9, 30), "dashboards and docs use this end"
    # a shorter period on the command line keeps room for applications
    short = SimConfig.preset("demo", months=5)
    assert short.history_months == 3
    tiny = SimConfig.preset("tiny")
    assert (tiny.history_months, tiny.application_rate) == (1, 1.0)


def test_bad_application_knobs_are_clear_errors() -> None:
    with pytest.raises(YidaiError, match="history_months"):
        SimConfig.preset("tiny", months=6, history_months=5)
    with pytest.raises(YidaiError, match="history_months"):
        SimConfig.preset("tiny", history_months=0)
    with pytest.raises(YidaiError, match="application_rate"):
        SimConfig.preset("tiny", application_rate=0.0)


def test_a_line_true_pd_knows_the_past_and_path_pd_the_future() -> None:
    """Issue 18, the oracle: a line's ``true_pd`` is its PD as known at the decision (the
    state through the decision's month, the law of what may follow), so a change to the
    states after that month leaves it as it was, and a change in it moves it; ``path_pd`` (the
    hazards of the path that came) knows the future.  Both agree on the level of defaults."""
    config = SimConfig.preset("tiny", seed=11, months=18, history_months=6, application_rate=3)
    calendar = Calendar.build(config.start, config.months)
    world = build_world(config, calendar)
    apps = draw_applications(world)
    lines = np.isin(apps.product, (MERCHANT, SME)) & (apps.account >= 0)
    assert lines.sum() > 300
    assert not np.array_equal(apps.true_pd[lines], apps.path_pd[lines])
    # the ex-ante PD is the path PD's expectation: the same level over many applications
    ratio = apps.true_pd[lines].mean() / apps.path_pd[lines].mean()
    assert 0.8 < ratio < 1.25, ratio
    # personal loans have no path: their own draw is made from the PD at the decision
    personal = apps.product == PERSONAL
    np.testing.assert_array_equal(apps.true_pd[personal], apps.path_pd[personal])

    merchants = world.merchants
    who = np.arange(merchants.n)
    month_k = np.full(merchants.n, 10)
    shares = np.ones((merchants.n, config.performance_months + 1))

    def ex_ante() -> np.ndarray:
        return ex_ante_line_pd(
            merchants, who, month_k, shares, -5.0, 1.4, calendar.month_starts, config.months,
            np.random.default_rng(0),
        )  # fmt: skip

    known = ex_ante()
    merchants.z_eff[:, 11:] -= 1.5  # a hit in the months after the decision's
    np.testing.assert_array_equal(ex_ante(), known)
    merchants.z_eff[:, 10] -= 1.5  # the decision's month: its state is in effect, and priced
    assert (ex_ante() > known).all()


def test_simulate_book_draws_the_applications_that_simulate_writes(clean_year_run: SimRun) -> None:
    """The in-memory book (events simulated and dropped) is the written truth, row for row:
    the behaviour aggregates that the bank's historic decisions read are filled the same way."""
    world, apps = simulate_book(clean_year_run.config)
    truth = pq.read_table(clean_year_run.truth / "applications.parquet").to_pandas()
    assert len(apps.product) == len(truth) > 0
    np.testing.assert_array_equal(apps.true_pd, truth["true_pd"].to_numpy())
    np.testing.assert_array_equal(apps.defaulted, truth["defaulted"].to_numpy())
    np.testing.assert_array_equal(apps.approved, truth["decision"].to_numpy() == "approved")
    # the decisions read behaviour: a world without events would decide differently
    bare = draw_applications(build_world(world.config, world.calendar))
    assert not np.array_equal(bare.approved, apps.approved)


def test_the_truth_window_ends_where_the_label_sql_ends_it_on_any_day() -> None:
    """Issue 18: the truth's last first-miss day is the label's (DuckDB's ``+ INTERVAL 6
    MONTH`` less 90 days: month ends clamp), so every decision has the same 91-94 days of
    exposure, whatever its day of the month."""
    import duckdb  # deferred: only this test compares with the label's SQL

    calendar = Calendar.build(date(2024, 10, 1), 24)
    day = np.arange(calendar.n_days)
    cutoff = label_cutoff(calendar, day, 6)
    assert set(np.unique(cutoff - day)) <= {91, 92, 93, 94}
    dates = [calendar.date_of(int(d)) for d in day]
    sql = duckdb.sql(
        "SELECT CAST(d + INTERVAL 6 MONTH - INTERVAL 90 DAY AS DATE) AS cut "
        "FROM (SELECT unnest($dates) AS d)",
        params={"dates": dates},
    ).fetchall()
    assert [calendar.date_of(int(c)) for c in cutoff] == [row[0] for row in sql]


def test_a_personal_defaulter_first_misses_the_instalment_its_truth_names() -> None:
    """The first instalment a personal defaulter leaves unpaid (what the tape and so the label
    see) falls due on the day its truth names, so the label window holds exactly the truth's
    defaults.  (The truth counted 30-day months from the decision while the instalments fall
    due from the first drawdown, up to 5 days later: 11 % of the truth's defaults fell after
    the label's window.)"""
    config = SimConfig.preset(
        "tiny", seed=5, defect_rate=0.0, application_rate=4.0, n_customers=4000
    )
    world, apps = simulate_book(config)
    repayments = next(b for b in loan_batches(world, apps) if b.source == "loan_repayments")
    calendar = world.calendar
    due = (repayments.cols["due_date"] - calendar.to_us(np.array([0]))[0]) // 86_400_000_000
    unpaid = repayments.nulls["paid_at"]
    first_unpaid = np.full(len(apps.product), NEVER)
    np.minimum.at(first_unpaid, repayments.cols["account_id"][unpaid] - 1, due[unpaid])
    defaulters = np.flatnonzero(
        (apps.product == PERSONAL) & apps.approved & (apps.arrears < calendar.n_days)
    )
    assert len(defaulters) > 50
    np.testing.assert_array_equal(first_unpaid[defaulters], apps.arrears[defaulters])


def test_a_personal_true_pd_is_the_chance_its_first_miss_falls_in_the_window() -> None:
    """``own_draw_window_share`` (a personal PD's factor to its truth) is the chance, under
    the simulator's draws, that the first missed instalment falls due within the days given."""
    rng = np.random.default_rng(0)
    n = 400_000
    delay = rng.integers(0, FIRST_DRAW_DAYS, n)
    number = np.minimum(rng.geometric(FIRST_MISS_P, n), MAX_FIRST_MISSED)
    due = instalment_due(delay, number)
    days = np.array([0, 30, 61, 91, 92, 93, 94, 200, 400])
    share = own_draw_window_share(days)
    observed = (due[None, :] <= days[:, None]).mean(axis=1)
    np.testing.assert_allclose(share, observed, atol=0.004)
    # the label's 91-94 days hold the third instalment only if the drawdown came soon enough
    assert share[3] < share[6] < 1 - (1 - FIRST_MISS_P) ** 3
