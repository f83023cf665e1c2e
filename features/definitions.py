"""Every feature, declared once, and the versioned feature sets built from them.

Windows are in whole days ending with the as-of day: a profile as of day D covers events with
``ts < D + 1 day``.  A decision at time t reads the profile as of the day before t's day (the
snapshot published at the previous close) plus request-time features of t itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from features.declarations import Feature, FeatureSet
from yidai.core import catalogue
from yidai.core.errors import YidaiError

if TYPE_CHECKING:
    from features.request import RequestBatch


def _agg(
    name: str,
    source: str,
    expr: str,
    description: str,
    *,
    monotone: int = 0,
    reason: str,
    fill: float | None = 0.0,
) -> Feature:
    entity, window = name.split("_")[0], name.rsplit("_", 1)[1]
    return Feature(
        name=name,
        entity=entity,
        source=source,
        window=window,
        description=description,
        kind="agg",
        expr=expr,
        monotone=monotone,
        reason_group=reason,
        fill=fill,
    )


def _sql(
    name: str,
    source: str,
    template: str,
    description: str,
    *,
    monotone: int = 0,
    reason: str,
    windowed: str = "",
) -> Feature:
    entity, window = name.split("_")[0], name.rsplit("_", 1)[1]
    return Feature(
        name=name,
        entity=entity,
        source=source,
        window=window,
        description=description,
        kind="sql",
        expr=template,
        monotone=monotone,
        reason_group=reason,
        fill=None,
        windowed=windowed,
    )


def _req(
    name: str,
    compute: object,
    description: str,
    *,
    entity: str | None = None,
    monotone: int = 0,
    reason: str,
) -> Feature:
    window = name.rsplit("_", 1)[1]
    return Feature(
        name=name,
        entity=entity or name.split("_")[0],
        source="request",
        window=window,
        description=description,
        kind="request",
        expr=description,
        compute=compute,  # type: ignore[arg-type]
        monotone=monotone,
        reason_group=reason,
        fill=None,
    )


def _cv(col: str, days: int) -> str:
    """Coefficient of variation of a daily measure over ``days`` days (absent days = 0)."""
    mean = f"(sum({col}) / {days})"
    return f"sqrt(greatest(sum({col} * {col}) / {days} - {mean} * {mean}, 0)) / nullif({mean}, 0)"


def _trend(col: str, recent: int, window: int) -> str:
    """Recent ``recent`` days against the rest of the window, per day."""
    early = window - recent
    last = f"sum({col}) FILTER (WHERE day > as_of - {recent})"
    return f"({last} / {recent}) / nullif((sum({col}) - {last}) / {early}, 0)"


def _latest_ratio(num: str, den: str) -> str:
    return f"arg_max({num} / nullif({den}, 0), day)"


_TENURE = "date_diff('day', min(day), as_of)"

# Share of the largest dimension value (card, counterparty) in the window's amount.
_TOP_SHARE = """
SELECT entity_id, as_of, max(a) / nullif(sum(a), 0) AS value FROM (
  SELECT k.entity_id, k.as_of, d.{dim} AS dim, sum(d.{measure}) AS a
  FROM {keys} k JOIN {source} d ON d.entity_id = k.entity_id
   AND d.day <= k.as_of AND d.day > k.as_of - {days}
  GROUP BY ALL) GROUP BY ALL
"""
# Coefficient of variation of net turnover over six 30-day months.
_MONTHLY_CV_OF_T = (
    "sqrt(greatest(sum(t * t) / 6 - (sum(t) / 6) * (sum(t) / 6), 0)) / nullif(sum(t) / 6, 0)"
)
_MONTHLY_CV = """
SELECT entity_id, as_of,
       {_MONTHLY_CV_OF_T}
         AS value FROM (
  SELECT k.entity_id, k.as_of, m.m, coalesce(sum(d.net), 0) AS t
  FROM {keys} k CROSS JOIN range(6) m(m)
  LEFT JOIN {source} d ON d.entity_id = k.entity_id
   AND d.day <= k.as_of - CAST(30 * m.m AS INTEGER)
   AND d.day > k.as_of - CAST(30 * (m.m + 1) AS INTEGER)
  GROUP BY ALL) GROUP BY ALL
""".replace("{_MONTHLY_CV_OF_T}", _MONTHLY_CV_OF_T)
# 1 - (own last-30-day turnover trend / the whole market's trend on the same day): the decline
# that the season (Spring Festival dip, Double-11 peak) does not explain.
_SEASONAL_DECLINE = """
WITH days AS (SELECT DISTINCT as_of FROM {keys}),
market AS (
  SELECT a.as_of,
         (sum(d.net) FILTER (WHERE d.day > a.as_of - 30) / 30) /
         nullif(sum(d.net) FILTER (WHERE d.day <= a.as_of - 30) / 60, 0) AS r
  FROM days a JOIN {source} d ON d.day <= a.as_of AND d.day > a.as_of - 90 GROUP BY ALL),
own AS (
  SELECT k.entity_id, k.as_of,
         (sum(d.net) FILTER (WHERE d.day > k.as_of - 30) / 30) /
         nullif(sum(d.net) FILTER (WHERE d.day <= k.as_of - 30) / 60, 0) AS r
  FROM {keys} k JOIN {source} d ON d.entity_id = k.entity_id
   AND d.day <= k.as_of AND d.day > k.as_of - 90 GROUP BY ALL)
SELECT own.entity_id, own.as_of, 1 - own.r / nullif(market.r, 0) AS value
FROM own JOIN market USING (as_of)
"""

# ---- The same three queries for many as-of days at once (history, training sets).  A range
# join of keys with daily rows costs keys x window rows; these read each daily row a bounded
# number of times (window functions over the entity's daily rows, evaluated at the key days).
# tests/features/test_features_windowed.py proves them equal to the templates above.
_DAY_NUMBER = "date_diff('day', DATE '1970-01-01', {col})"


def _keyed_windows(rows: str, partition: str, windows: dict[str, tuple[int, int]]) -> str:
    """``rows`` (with ``as_of``) plus one row per distinct key, and the named RANGE windows
    (``name: (from_days_back, to_days_back)``) over the day number, per ``partition``."""
    order = _DAY_NUMBER.format(col="as_of")
    part = f"PARTITION BY {partition} " if partition else ""
    frames = ", ".join(
        f"{name} AS ({part}ORDER BY {order} RANGE BETWEEN {lo} PRECEDING AND "
        f"{'CURRENT ROW' if hi == 0 else f'{hi} PRECEDING'})"
        for name, (lo, hi) in windows.items()
    )
    keys = f"SELECT DISTINCT {partition + ', ' if partition else ''}as_of FROM {{keys}}"
    return (
        f"(SELECT *, false AS __key FROM ({rows}) UNION ALL BY NAME "
        f"SELECT *, true AS __key FROM ({keys})) WINDOW {frames}"
    )


_MONTH_SUMS = ", ".join(f"coalesce(sum(net) OVER m{m}, 0)" for m in range(6))
_MONTH_ROWS = _keyed_windows(
    "SELECT entity_id, day AS as_of, net FROM {source}",
    "entity_id",
    {f"m{m}": (30 * m + 29, 30 * m) for m in range(6)},
)
_MONTHLY_CV_WINDOWED = f"""
SELECT entity_id, as_of, {_MONTHLY_CV_OF_T} AS value FROM (
  SELECT entity_id, as_of, unnest(months) AS t FROM (
    SELECT entity_id, as_of, [{_MONTH_SUMS}] AS months FROM {_MONTH_ROWS} QUALIFY __key))
GROUP BY ALL
"""
_SEASONAL_R = "(sum(net) OVER r30 / 30) / nullif(sum(net) OVER r60 / 60, 0)"
_SEASONAL_WINDOWS = {"r30": (29, 0), "r60": (89, 30)}
_MARKET_ROWS = _keyed_windows(
    "SELECT day AS as_of, sum(net) AS net FROM {source} GROUP BY ALL", "", _SEASONAL_WINDOWS
)
_OWN_ROWS = _keyed_windows(
    "SELECT entity_id, day AS as_of, net FROM {source}", "entity_id", _SEASONAL_WINDOWS
)
_SEASONAL_DECLINE_WINDOWED = f"""
WITH market AS (SELECT as_of, {_SEASONAL_R} AS r FROM {_MARKET_ROWS} QUALIFY __key),
own AS (SELECT entity_id, as_of, {_SEASONAL_R} AS r FROM {_OWN_ROWS} QUALIFY __key)
SELECT own.entity_id, own.as_of, 1 - own.r / nullif(market.r, 0) AS value
FROM own JOIN market USING (as_of)
"""


def _top_share_windowed(dim: str, measure: str, days: int) -> str:
    """The largest ``dim``'s share of ``measure`` over ``days`` days, for every key at once.

    A (entity, dim) pair with a single row (most cards at a merchant) contributes its amount
    while that row is in the window: the sliding max of the per-day max of such amounts.
    The other pairs' window sums are step functions of the day that change only on their
    activity days and ``days`` later: one segment [s, e) per step.  The max over the segments
    covering a day is found with dyadic blocks (each segment is covered by at most two
    aligned blocks of each size 2^j; a day looks up its one block per size), so the cost is
    rows x log(days), not rows x days.  The top share is the larger of the two maxima over
    the window's total.
    """
    levels = days.bit_length()
    dn = _DAY_NUMBER.format(col="day")
    window = f"RANGE BETWEEN {days - 1} PRECEDING AND CURRENT ROW"
    return f"""
WITH d AS (
  SELECT entity_id, {dim} AS dim, {dn} AS dn, {measure} AS a,
         count(*) OVER (PARTITION BY entity_id, {dim}) AS n
  FROM {{source}}),
daily AS (
  SELECT entity_id, dn, max(a) FILTER (WHERE n = 1) AS single, sum(a) AS total
  FROM d GROUP BY ALL),
k AS (SELECT DISTINCT entity_id, as_of, {_DAY_NUMBER.format(col="as_of")} AS dn FROM {{keys}}),
by_day AS (
  SELECT entity_id, as_of, max(single) OVER w AS single, sum(total) OVER w AS total
  FROM (SELECT entity_id, dn, single, total, false AS __key FROM daily UNION ALL BY NAME
        SELECT entity_id, dn, as_of, true AS __key FROM k)
  WINDOW w AS (PARTITION BY entity_id ORDER BY dn {window})
  QUALIFY __key),
r AS (SELECT entity_id, dim, dn, a FROM d WHERE n > 1),
steps AS (
  SELECT DISTINCT entity_id, dim, dn, sum(a) OVER w AS a, count(a) OVER w AS n
  FROM (SELECT entity_id, dim, dn, a FROM r
        UNION ALL SELECT entity_id, dim, dn + {days}, NULL FROM r)
  WINDOW w AS (PARTITION BY entity_id, dim ORDER BY dn {window})),
seg AS (
  SELECT entity_id, dn AS s, lead(dn) OVER (PARTITION BY entity_id, dim ORDER BY dn) AS e, a, n
  FROM steps),
blocks AS (
  SELECT entity_id, j, b, max(a) AS a FROM (
    SELECT entity_id, j, unnest([(s + (1 << j) - 1) >> j, (e >> j) - 1]) AS b, a
    FROM seg CROSS JOIN range({levels}) t(j)
    WHERE n > 0 AND (s + (1 << j) - 1) >> j <= (e >> j) - 1)
  GROUP BY ALL),
kb AS (SELECT entity_id, as_of, j, dn >> j AS b FROM k CROSS JOIN range({levels}) t(j)),
top AS (
  SELECT kb.entity_id, kb.as_of, max(x.a) AS a
  FROM kb JOIN blocks x ON x.entity_id = kb.entity_id AND x.j = kb.j AND x.b = kb.b
  GROUP BY ALL)
SELECT by_day.entity_id, by_day.as_of, greatest(by_day.single, top.a) / nullif(by_day.total, 0)
       AS value
FROM by_day LEFT JOIN top USING (entity_id, as_of)
"""


# ----------------------------------------------------------------- request-time functions
def _customer_requested_to_spend(b: RequestBatch) -> np.ndarray:
    monthly = b.profile("customer_spend_amount_90d") / 3.0
    return b.number("requested_amount") / np.maximum(np.nan_to_num(monthly), 100.0)


def _merchant_requested_to_turnover(b: RequestBatch) -> np.ndarray:
    monthly = b.profile("merchant_net_turnover_90d") / 3.0
    return b.number("requested_amount") / np.maximum(np.nan_to_num(monthly), 100.0)


def _sme_requested_to_inflow(b: RequestBatch) -> np.ndarray:
    monthly = b.profile("sme_inflow_amount_90d") / 3.0
    return b.number("requested_amount") / np.maximum(np.nan_to_num(monthly), 100.0)


def _velocity_count_1h(b: RequestBatch) -> np.ndarray:
    return b.velocity(hours=1)[0]


def _velocity_amount_1h(b: RequestBatch) -> np.ndarray:
    return b.velocity(hours=1)[1]


def _velocity_count_24h(b: RequestBatch) -> np.ndarray:
    return b.velocity(hours=24)[0]


def _velocity_amount_24h(b: RequestBatch) -> np.ndarray:
    return b.velocity(hours=24)[1]


def _amount_to_avg(b: RequestBatch) -> np.ndarray:
    avg = b.profile("payer_avg_amount_30d")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(avg > 0, b.number("amount") / avg, np.nan)


def _new_counterpart(b: RequestBatch) -> np.ndarray:
    return b.is_new("counterpart_id")


def _new_device(b: RequestBatch) -> np.ndarray:
    return b.is_new("device_id")


def _new_channel(b: RequestBatch) -> np.ndarray:
    return b.is_new("channel")


AMOUNT_TIERS = (200.0, 1000.0, 5000.0, 20000.0)


def _amount_tier(b: RequestBatch) -> np.ndarray:
    return np.searchsorted(np.asarray(AMOUNT_TIERS), b.number("amount"), side="right").astype(
        np.float64
    )


def _amount_log(b: RequestBatch) -> np.ndarray:
    return np.log1p(b.number("amount"))


def _hour(b: RequestBatch) -> np.ndarray:
    return b.hour()


def _night(b: RequestBatch) -> np.ndarray:
    return (b.hour() < 6).astype(np.float64)


def _is_pos(b: RequestBatch) -> np.ndarray:
    return b.equals("event_type", ("pos",))


def _risky_mcc(b: RequestBatch) -> np.ndarray:
    from yidai.core.contracts import RISKY_MCCS

    return b.equals("mcc", RISKY_MCCS)


def _card_not_present(b: RequestBatch) -> np.ndarray:
    return b.equals("entry_mode", ("manual", "magstripe"))


def _is_transfer(b: RequestBatch) -> np.ndarray:
    return b.equals("payment_type", ("transfer_out",))


# payment_fraud_v2 (issue 18): the signal fraud leaves against the payer's own history.
_US_PER_HOUR = 3_600_000_000
_US_PER_DAY = 24 * _US_PER_HOUR


def _amount_ratio(b: RequestBatch, column: str) -> np.ndarray:
    base = b.profile(column)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(base > 0, b.number("amount") / base, np.nan)


def _amount_to_avg_7d(b: RequestBatch) -> np.ndarray:
    return _amount_ratio(b, "payer_avg_amount_7d")


def _amount_to_median_7d(b: RequestBatch) -> np.ndarray:
    return _amount_ratio(b, "payer_median_amount_7d")


def _amount_to_median_30d(b: RequestBatch) -> np.ndarray:
    return _amount_ratio(b, "payer_median_amount_30d")


def _amount_zscore_30d(b: RequestBatch) -> np.ndarray:
    sd = b.profile("payer_amount_sd_30d")
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (b.number("amount") - b.profile("payer_avg_amount_30d")) / sd
    return np.where(sd > 0, z, np.nan)


def _hours_since_previous(b: RequestBatch) -> np.ndarray:
    """Hours since the payer's previous event: the latest of its events of the 24 hours
    before (recent), else its last event before the previous close (profile); NaN if none
    in 30 days."""
    t = b.ts_us()
    previous = b.previous_ts(hours=24)
    since_close = (t % _US_PER_DAY) / _US_PER_HOUR
    from_profile = b.profile("payer_last_event_age_30d") + since_close
    with np.errstate(invalid="ignore"):
        return np.where(previous >= 0, (t - previous) / _US_PER_HOUR, from_profile)


def _weekend(b: RequestBatch) -> np.ndarray:
    day = b.ts_us() // _US_PER_DAY  # 1970-01-01 was a Thursday: Saturday is 2, Sunday 3
    return np.isin(day % 7, (2, 3)).astype(np.float64)


_MEDIAN = """
SELECT k.entity_id, k.as_of, median(CAST(d.amount AS DOUBLE)) AS value
FROM {keys} k JOIN {source} d ON d.entity_id = k.entity_id
 AND d.day <= k.as_of AND d.day > k.as_of - {days}
GROUP BY ALL
"""


def _median_windowed(days: int) -> str:
    """:data:`_MEDIAN` for every key at once: a median over a RANGE window of day numbers."""
    dn = _DAY_NUMBER.format(col="day")
    return f"""
SELECT entity_id, as_of, median(CAST(amount AS DOUBLE)) OVER w AS value FROM (
  SELECT entity_id, {dn} AS dn, amount, false AS __key FROM {{source}}
  UNION ALL BY NAME
  SELECT DISTINCT entity_id, as_of, {_DAY_NUMBER.format(col="as_of")} AS dn, true AS __key
  FROM {{keys}})
WINDOW w AS (PARTITION BY entity_id ORDER BY dn
             RANGE BETWEEN {days - 1} PRECEDING AND CURRENT ROW)
QUALIFY __key
"""


#: Hours from the payer's last event to the previous close (the end of the as-of day).
_LAST_EVENT_AGE = (
    "(date_diff('day', max(day), as_of) * 86400 + 86400 - arg_max(last_second, day)) / 3600.0"
)
_SD = (
    "sqrt(greatest(sum(amount_sq) - sum(amount) * sum(amount) / nullif(sum(txn_n), 0), 0)"
    " / nullif(sum(txn_n) - 1, 0))"
)

# ----------------------------------------------------------------- personal consumer credit
PERSONAL = (
    _agg("customer_spend_amount_30d", "customer_pos", "sum(spend)",
         "Approved POS card spending (CNY) over 30 days.", reason="spending_level", monotone=-1),
    _agg("customer_spend_amount_90d", "customer_pos", "sum(spend)",
         "Approved POS card spending (CNY) over 90 days.", reason="spending_level", monotone=-1),
    _agg("customer_spend_amount_180d", "customer_pos", "sum(spend)",
         "Approved POS card spending (CNY) over 180 days.", reason="spending_level"),
    _agg("customer_spend_count_90d", "customer_pos", "sum(spend_n)",
         "Approved POS card transactions over 90 days.", reason="spending_level"),
    _agg("customer_active_days_90d", "customer_pos", "count(*) FILTER (WHERE spend_n > 0)",
         "Days with approved card spending over 90 days.", reason="spending_stability",
         monotone=-1),
    _agg("customer_spend_volatility_90d", "customer_pos", _cv("spend", 90),
         "Coefficient of variation of daily spending over 90 days.",
         reason="spending_stability", monotone=1, fill=None),
    _agg("customer_spend_growth_90d", "customer_pos", _trend("spend", 30, 90),
         "Daily spending of the last 30 days over that of the 60 days before.",
         reason="spending_trend", fill=None),
    _agg("customer_spend_growth_180d", "customer_pos", _trend("spend", 90, 180),
         "Daily spending of the last 90 days over that of the 90 days before.",
         reason="spending_trend", fill=None),
    _agg("customer_mcc_diversity_90d", "customer_pos_mcc", "count(DISTINCT mcc)",
         "Distinct merchant categories with approved spending over 90 days.",
         reason="spending_pattern"),
    _agg("customer_risky_mcc_share_90d", "customer_pos", "sum(risky) / nullif(sum(spend), 0)",
         "Share of spending at risky MCCs (gambling, quasi-cash, jewelry) over 90 days.",
         reason="risky_spending", monotone=1, fill=None),
    _agg("customer_night_share_90d", "customer_pos", "sum(night) / nullif(sum(spend), 0)",
         "Share of spending between 00:00 and 06:00 over 90 days.",
         reason="risky_spending", monotone=1, fill=None),
    _agg("customer_refund_ratio_90d", "customer_pos", "sum(refund) / nullif(sum(spend), 0)",
         "POS refunds over approved spending, 90 days.", reason="refunds", monotone=1,
         fill=None),
    _agg("customer_declined_count_30d", "customer_pos", "sum(declined_n)",
         "Declined card transactions over 30 days.", reason="declines", monotone=1),
    _agg("customer_mall_orders_90d", "customer_mall", "sum(orders_n)",
         "Mall orders placed over 90 days.", reason="mall_behaviour"),
    _agg("customer_mall_amount_90d", "customer_mall", "sum(amount)",
         "Mall order amount (not cancelled) over 90 days.", reason="mall_behaviour"),
    _agg("customer_mall_badorder_ratio_90d", "customer_mall",
         "sum(bad_n) / nullif(sum(orders_n), 0)",
         "Share of mall orders cancelled or refunded over 90 days.", reason="mall_behaviour",
         monotone=1, fill=None),
    _agg("customer_mall_instalment_share_90d", "customer_mall",
         "sum(instalment) / nullif(sum(amount), 0)",
         "Share of mall spending paid by instalment credit over 90 days.",
         reason="credit_usage", fill=None),
    _agg("customer_bill_count_180d", "customer_bills", "sum(bills_n)",
         "Bill payments over 180 days.", reason="bill_payments"),
    _agg("customer_bill_ontime_ratio_180d", "customer_bills",
         "sum(ontime_n) / nullif(sum(bills_n), 0)",
         "Share of bill payments made successfully by the due date over 180 days.",
         reason="bill_payments", monotone=-1, fill=None),
    _agg("customer_bill_failed_180d", "customer_bills", "sum(failed_n)",
         "Failed bill payments over 180 days.", reason="bill_payments", monotone=1),
    _agg("customer_credit_utilisation_180d", "customer_credit_tape",
         _latest_ratio("outstanding", "credit_limit"),
         "Outstanding over limit on existing personal credit at the latest month end.",
         reason="credit_usage", monotone=1, fill=None),
    _agg("customer_max_dpd_180d", "customer_credit_tape", "max(max_dpd)",
         "Worst days past due on existing personal credit over 180 days.",
         reason="delinquency", monotone=1),
    _agg("customer_delinquent_months_180d", "customer_credit_tape",
         "count(*) FILTER (WHERE dpd30_accounts > 0)",
         "Month ends with an account 30+ days past due over 180 days.",
         reason="delinquency", monotone=1),
    _agg("customer_tenure_days_life", "customer_master", _TENURE,
         "Days since the relationship with the bank began.", reason="relationship",
         monotone=-1, fill=None),
    _req("customer_requested_to_spend_now", _customer_requested_to_spend,
         "Requested line over average monthly spending (90 days, floor 100 CNY).",
         reason="requested_amount", monotone=1),
)  # fmt: skip


def _log_sd(n: str, total: str, squares: str) -> str:
    """Sample standard deviation of a log amount from its count, sum and sum of squares
    (NULL below two amounts; ``greatest`` skips NULLs, so the count guards both ends)."""
    m = f"nullif(nullif(sum({n}), 0), 1)"
    return f"sqrt(greatest(sum({squares}) - sum({total}) * sum({total}) / {m}, 0) / ({m} - 1))"


# v2: how punctually the customer pays bills, how stable the income is and how the customer
# uses e支付, over 180 days: behaviour that tracks the customer's current state (v1 reached a
# feature-level limit; docs/benchmarks.md, Models).  It drops v1's MCC diversity: neutral for
# the model and a third of the cost of the history build.
_BILL_DAYS_EARLY = "sum(days_early) / nullif(sum(paid_n), 0)"
PERSONAL_V2 = (
    *(f for f in PERSONAL if f.name != "customer_mcc_diversity_90d"),
    _agg("customer_bill_days_early_180d", "customer_bill_timing", _BILL_DAYS_EARLY,
         "Mean days before the due date that bills were paid over 180 days (negative: late).",
         reason="bill_payments", monotone=-1, fill=None),
    _agg("customer_inflow_variability_180d", "customer_inflows",
         _log_sd("inflow_n", "log_amount", "log_amount_sq"),
         "Standard deviation of log incoming transfers (salary) over 180 days.",
         reason="income_stability", monotone=1, fill=None),
    _agg("customer_epay_failed_ratio_180d", "customer_epayments",
         "sum(failed_n) / nullif(sum(epay_n), 0)",
         "Share of e支付 e-payments that failed over 180 days.", reason="online_payments",
         monotone=1, fill=None),
    _agg("customer_epay_log_amount_180d", "customer_epayments",
         "sum(log_amount) / nullif(sum(epay_n), 0)",
         "Mean log amount of e支付 e-payments over 180 days.", reason="online_payments",
         fill=None),
)  # fmt: skip

# v3 (issue 18): the customer's card events as rates of events rather than shares of
# spending (declined, night, risky-MCC and refunded payments, 90 and 180 days), and the hours
# of its own payments.
PERSONAL_V3 = (
    *PERSONAL_V2,
    *(
        _agg(f"customer_{what}_rate_{days}d", "customer_pos_events",
             f"sum({hits}) / nullif(sum({total}), 0)", f"{text} over {days} days (by count).",
             reason=reason, monotone=1, fill=None)
        for what, hits, total, text, reason in (
            ("declined", "declined_n", "txn_n + declined_n",
             "Declined card transactions per attempted one", "declines"),
            ("night", "night_n", "txn_n",
             "Approved card payments between 00:00 and 06:00 per approved one",
             "risky_spending"),
            ("risky_mcc", "risky_n", "txn_n",
             "Approved card payments at risky MCCs (gambling, quasi-cash, jewelry) per "
             "approved one", "risky_spending"),
            ("refund", "refund_n", "txn_n", "POS refunds per approved card payment", "refunds"),
        )
        for days in (90, 180)
    ),
    _agg("customer_payment_night_share_180d", "customer_payment_hours",
         "sum(night_n) / nullif(sum(out_n), 0)",
         "Own payments (bills, e支付, transfers out) made between 00:00 and 06:00, per "
         "payment, over 180 days.", reason="online_payments", monotone=1, fill=None),
)  # fmt: skip

# ----------------------------------------------------------------- small-merchant credit
MERCHANT = (
    _agg("merchant_net_turnover_30d", "merchant_pos", "sum(net)",
         "POS turnover net of refunds (CNY) over 30 days.", reason="turnover", monotone=-1),
    _agg("merchant_net_turnover_90d", "merchant_pos", "sum(net)",
         "POS turnover net of refunds (CNY) over 90 days.", reason="turnover", monotone=-1),
    _agg("merchant_net_turnover_180d", "merchant_pos", "sum(net)",
         "POS turnover net of refunds (CNY) over 180 days.", reason="turnover"),
    _agg("merchant_turnover_trend_90d", "merchant_pos", _trend("net", 30, 90),
         "Daily net turnover of the last 30 days over that of the 60 days before.",
         reason="turnover_trend", monotone=-1, fill=None),
    _sql("merchant_turnover_volatility_180d", "merchant_pos", _MONTHLY_CV,
         "Coefficient of variation of monthly (30-day) net turnover over 6 months.",
         reason="turnover_stability", monotone=1, windowed=_MONTHLY_CV_WINDOWED),
    _agg("merchant_daily_volatility_90d", "merchant_pos", _cv("net", 90),
         "Coefficient of variation of daily net turnover over 90 days.",
         reason="turnover_stability", monotone=1, fill=None),
    _agg("merchant_active_days_30d", "merchant_pos", "count(*) FILTER (WHERE txn_n > 0)",
         "Days with approved POS transactions over 30 days.", reason="activity", monotone=-1),
    _agg("merchant_active_days_90d", "merchant_pos", "count(*) FILTER (WHERE txn_n > 0)",
         "Days with approved POS transactions over 90 days.", reason="activity", monotone=-1),
    _agg("merchant_txn_count_30d", "merchant_pos", "sum(txn_n)",
         "Approved POS transactions over 30 days.", reason="activity"),
    _agg("merchant_avg_ticket_90d", "merchant_pos", "sum(gross) / nullif(sum(txn_n), 0)",
         "Average approved ticket (CNY) over 90 days.", reason="turnover", fill=None),
    _sql("merchant_top_card_share_90d", "merchant_cards",
         _TOP_SHARE.replace("{dim}", "card_token").replace("{measure}", "amount")
         .replace("{days}", "90"),
         "Share of the largest card in approved turnover over 90 days (customer concentration).",
         reason="concentration", monotone=1,
         windowed=_top_share_windowed("card_token", "amount", 90)),
    _agg("merchant_distinct_cards_90d", "merchant_cards", "count(DISTINCT card_token)",
         "Distinct cards with approved transactions over 90 days.", reason="concentration",
         monotone=-1),
    _agg("merchant_chargeback_rate_90d", "merchant_pos",
         "sum(chargeback_n) / nullif(sum(txn_n), 0)",
         "Chargebacks per approved transaction over 90 days.", reason="chargebacks",
         monotone=1, fill=None),
    _agg("merchant_refund_ratio_90d", "merchant_pos", "sum(refund) / nullif(sum(gross), 0)",
         "Refunds over approved turnover over 90 days.", reason="refunds", monotone=1,
         fill=None),
    _agg("merchant_round_share_90d", "merchant_pos", "sum(round_n) / nullif(sum(txn_n), 0)",
         "Share of approved transactions in round amounts >= 500 CNY (cash-out sign), 90 days.",
         reason="cash_out", monotone=1, fill=None),
    _sql("merchant_seasonal_decline_30d", "merchant_pos", _SEASONAL_DECLINE,
         "1 - own 30-day turnover trend over the whole market's trend on the same day: "
         "the decline the season does not explain.", reason="turnover_trend", monotone=1,
         windowed=_SEASONAL_DECLINE_WINDOWED),
    _agg("merchant_credit_utilisation_180d", "merchant_credit_tape",
         _latest_ratio("outstanding", "credit_limit"),
         "Outstanding over limit on the existing merchant line at the latest month end.",
         reason="credit_usage", monotone=1, fill=None),
    _agg("merchant_max_dpd_180d", "merchant_credit_tape", "max(max_dpd)",
         "Worst days past due on the existing merchant line over 180 days.",
         reason="delinquency", monotone=1),
    _agg("merchant_tenure_days_life", "merchant_master", _TENURE,
         "Days since POS acquiring began.", reason="relationship", monotone=-1, fill=None),
    _req("merchant_requested_to_turnover_now", _merchant_requested_to_turnover,
         "Requested line over average monthly net turnover (90 days, floor 100 CNY).",
         reason="requested_amount", monotone=1),
)  # fmt: skip

MERCHANT_V2 = (
    *MERCHANT,
    _agg("merchant_night_share_90d", "merchant_pos_events",
         "sum(night_n) / nullif(sum(txn_n), 0)",
         "Share of approved card payments between 00:00 and 06:00 over 90 days.",
         reason="time", monotone=1, fill=None),
    _agg("merchant_night_share_180d", "merchant_pos_events",
         "sum(night_n) / nullif(sum(txn_n), 0)",
         "Share of approved card payments between 00:00 and 06:00 over 180 days.",
         reason="time", monotone=1, fill=None),
    _agg("merchant_refund_rate_90d", "merchant_pos_events",
         "sum(refund_n) / nullif(sum(txn_n), 0)",
         "Refunds per approved card payment over 90 days (by count).", reason="refunds",
         monotone=1, fill=None),
    _agg("merchant_refund_rate_180d", "merchant_pos_events",
         "sum(refund_n) / nullif(sum(txn_n), 0)",
         "Refunds per approved card payment over 180 days (by count).", reason="refunds",
         monotone=1, fill=None),
    _agg("merchant_chargeback_rate_180d", "merchant_pos_events",
         "sum(chargeback_n) / nullif(sum(txn_n), 0)",
         "Chargebacks per approved card payment over 180 days.", reason="chargebacks",
         monotone=1, fill=None),
)  # fmt: skip

# ----------------------------------------------------------------- SME revolving loans
SME = (
    _agg("sme_inflow_amount_30d", "sme_payments", "sum(inflow)",
         "Money received (transfers in, CNY) over 30 days.", reason="cash_flow", monotone=-1),
    _agg("sme_inflow_amount_90d", "sme_payments", "sum(inflow)",
         "Money received (transfers in, CNY) over 90 days.", reason="cash_flow", monotone=-1),
    _agg("sme_outflow_amount_90d", "sme_payments", "sum(outflow)",
         "Money paid out (transfers, e-payments, bills; CNY) over 90 days.",
         reason="cash_flow"),
    _agg("sme_net_flow_90d", "sme_payments", "sum(inflow) - sum(outflow)",
         "Inflows minus outflows (CNY) over 90 days.", reason="cash_flow", monotone=-1),
    _agg("sme_inflow_volatility_90d", "sme_payments", _cv("inflow", 90),
         "Coefficient of variation of daily inflows over 90 days.", reason="cash_flow_stability",
         monotone=1, fill=None),
    _agg("sme_inflow_trend_90d", "sme_payments", _trend("inflow", 30, 90),
         "Daily inflows of the last 30 days over those of the 60 days before.",
         reason="cash_flow_trend", monotone=-1, fill=None),
    _agg("sme_b2b_sales_amount_90d", "sme_mall_sales", "sum(amount)",
         "B2B mall sales as seller (not cancelled, CNY) over 90 days.", reason="b2b_trade",
         monotone=-1),
    _agg("sme_b2b_refund_ratio_90d", "sme_mall_sales", "sum(refunded) / nullif(sum(amount), 0)",
         "Refunded share of B2B mall sales over 90 days.", reason="b2b_trade", monotone=1,
         fill=None),
    _agg("sme_b2b_purchase_amount_90d", "sme_mall_purchases", "sum(amount)",
         "B2B mall purchases as buyer (not cancelled, CNY) over 90 days.", reason="b2b_trade"),
    _sql("sme_top_counterparty_share_90d", "sme_counterparties",
         _TOP_SHARE.replace("{dim}", "counterparty_id").replace("{measure}", "inflow")
         .replace("{days}", "90"),
         "Share of the largest payer in the inflows over 90 days (counterpart concentration).",
         reason="concentration", monotone=1,
         windowed=_top_share_windowed("counterparty_id", "inflow", 90)),
    _agg("sme_distinct_counterparties_90d", "sme_counterparties",
         "count(DISTINCT counterparty_id)",
         "Distinct counterparts paying in over 90 days.", reason="concentration", monotone=-1),
    _agg("sme_bill_ontime_ratio_180d", "sme_bills", "sum(ontime_n) / nullif(sum(bills_n), 0)",
         "Share of bill payments made successfully by the due date over 180 days.",
         reason="bill_payments", monotone=-1, fill=None),
    _agg("sme_credit_utilisation_180d", "sme_credit_tape",
         _latest_ratio("outstanding", "credit_limit"),
         "Outstanding over limit on the existing revolving line at the latest month end.",
         reason="credit_usage", monotone=1, fill=None),
    _agg("sme_max_dpd_180d", "sme_credit_tape", "max(max_dpd)",
         "Worst days past due on the existing revolving line over 180 days.",
         reason="delinquency", monotone=1),
    _agg("sme_late_repayments_180d", "sme_repayments", "sum(late_n)",
         "Repayments made after the due date over 180 days.", reason="delinquency",
         monotone=1),
    _agg("sme_tenure_days_life", "sme_master", _TENURE,
         "Days since the relationship began.", reason="relationship", monotone=-1, fill=None),
    _req("sme_requested_to_inflow_now", _sme_requested_to_inflow,
         "Requested line over average monthly inflows (90 days, floor 100 CNY).",
         reason="requested_amount", monotone=1),
)  # fmt: skip

# ----------------------------------------------------------------- payment fraud (per event)
FRAUD = (
    _req("payer_txn_count_1h", _velocity_count_1h,
         "The payer's events (card: POS transactions; account: payments) in the hour before.",
         reason="velocity", monotone=1),
    _req("payer_txn_amount_1h", _velocity_amount_1h,
         "Amount (CNY) of the payer's events in the hour before.", reason="velocity"),
    _req("payer_txn_count_24h", _velocity_count_24h,
         "The payer's events in the 24 hours before.", reason="velocity", monotone=1),
    _req("payer_txn_amount_24h", _velocity_amount_24h,
         "Amount (CNY) of the payer's events in the 24 hours before.", reason="velocity"),
    _agg("payer_txn_count_7d", "payer_events", "sum(txn_n)",
         "The payer's events over the 7 days up to the previous close.", reason="velocity"),
    _agg("payer_txn_amount_7d", "payer_events", "sum(amount)",
         "Amount of the payer's events over the 7 days up to the previous close.",
         reason="velocity"),
    _agg("payer_txn_count_30d", "payer_events", "sum(txn_n)",
         "The payer's events over the 30 days up to the previous close.", reason="profile"),
    _agg("payer_txn_amount_30d", "payer_events", "sum(amount)",
         "Amount of the payer's events over the 30 days up to the previous close.",
         reason="profile"),
    _agg("payer_avg_amount_30d", "payer_events", "sum(amount) / nullif(sum(txn_n), 0)",
         "The payer's average event amount over 30 days (previous close).", reason="profile",
         fill=None),
    _agg("payer_max_amount_30d", "payer_events", "max(max_amount)",
         "The payer's largest event amount over 30 days (previous close).", reason="profile"),
    _agg("payer_night_share_30d", "payer_events", "sum(night_n) / nullif(sum(txn_n), 0)",
         "Share of the payer's events between 00:00 and 06:00 over 30 days.", reason="time",
         fill=None),
    _agg("payer_active_days_30d", "payer_events", "count(*)",
         "Days with events of the payer over 30 days.", reason="profile"),
    _req("payer_amount_to_avg_30d", _amount_to_avg,
         "This amount over the payer's 30-day average amount.", reason="amount", monotone=1),
    _req("payer_new_counterpart_now", _new_counterpart,
         "1 if the payer never paid this terminal (POS) or payee (payment) before.",
         reason="new_counterpart", monotone=1),
    _req("payer_new_device_now", _new_device,
         "1 if the payer never used this device before (payments; 0 for POS).",
         reason="new_device", monotone=1),
    _req("payer_new_channel_now", _new_channel,
         "1 if the payer never used this channel before.", reason="new_device", monotone=1),
    _agg("counterpart_fraud_reports_1d", "counterpart_risk", "sum(report_n)",
         "Fraud reports known on the previous day about events at this terminal / payee.",
         reason="counterpart_risk", monotone=1),
    _agg("counterpart_fraud_reports_7d", "counterpart_risk", "sum(report_n)",
         "Fraud reports known over 7 days about events at this terminal / payee.",
         reason="counterpart_risk", monotone=1),
    _agg("counterpart_fraud_reports_30d", "counterpart_risk", "sum(report_n)",
         "Fraud reports known over 30 days about events at this terminal / payee.",
         reason="counterpart_risk", monotone=1),
    _agg("counterpart_txn_count_30d", "counterpart_risk", "sum(txn_n)",
         "Events at this terminal / payee over 30 days (few: a new or little-used payee).",
         reason="new_counterpart"),
    _agg("counterpart_fraud_rate_30d", "counterpart_risk",
         "sum(report_n) / nullif(sum(txn_n), 0)",
         "Fraud reports known over 30 days per event at this terminal / payee.",
         reason="counterpart_risk", fill=None),
    _agg("merchant_fraud_reports_7d", "merchant_risk", "sum(report_n)",
         "Fraud reports known over 7 days about the merchant's POS transactions.",
         reason="merchant_risk", monotone=1),
    _agg("merchant_fraud_reports_30d", "merchant_risk", "sum(report_n)",
         "Fraud reports known over 30 days about the merchant's POS transactions.",
         reason="merchant_risk", monotone=1),
    _agg("merchant_fraud_rate_30d", "merchant_risk", "sum(report_n) / nullif(sum(txn_n), 0)",
         "Fraud reports known over 30 days per POS transaction of the merchant.",
         reason="merchant_risk", fill=None),
    _req("event_amount_log_now", _amount_log, "log(1 + amount).", reason="amount"),
    _req("event_amount_tier_now", _amount_tier,
         f"Amount tier: 0 below {AMOUNT_TIERS[0]:.0f} CNY, then one step at each of "
         f"{', '.join(f'{t:.0f}' for t in AMOUNT_TIERS)}.", reason="amount", monotone=1),
    _req("event_hour_now", _hour, "Hour of day of the event (0-23).", reason="time"),
    _req("event_night_now", _night, "1 if between 00:00 and 06:00.", reason="time"),
    _req("event_pos_now", _is_pos, "1 for a POS card transaction, 0 for an online payment.",
         reason="channel"),
    _req("event_risky_mcc_now", _risky_mcc, "1 at a risky MCC (gambling, quasi-cash, jewelry).",
         reason="channel", monotone=1),
    _req("event_card_not_present_now", _card_not_present,
         "1 if the card was keyed in or read by magstripe.", reason="channel", monotone=1),
    _req("event_transfer_now", _is_transfer, "1 for an outgoing transfer.", reason="channel"),
)  # fmt: skip

# v2 (issue 18): amount against the payer's own history, time since its previous event,
# the counterpart's and merchant's fraud rates over 1/7/30 days (reports counted when they
# arrived, so only reports known at the decision), terminal activity, weekend.
FRAUD_V2 = (
    *FRAUD,
    _agg("payer_avg_amount_7d", "payer_amounts", "sum(amount) / nullif(sum(txn_n), 0)",
         "The payer's average event amount over 7 days (previous close).", reason="profile",
         fill=None),
    _sql("payer_median_amount_7d", "payer_event_amounts", _MEDIAN.replace("{days}", "7"),
         "The payer's median event amount over 7 days (previous close).", reason="profile",
         windowed=_median_windowed(7)),
    _sql("payer_median_amount_30d", "payer_event_amounts", _MEDIAN.replace("{days}", "30"),
         "The payer's median event amount over 30 days (previous close).", reason="profile",
         windowed=_median_windowed(30)),
    _agg("payer_amount_sd_30d", "payer_amounts", _SD,
         "Standard deviation of the payer's event amounts over 30 days (previous close).",
         reason="profile", fill=None),
    _agg("payer_last_event_age_30d", "payer_amounts", _LAST_EVENT_AGE,
         "Hours from the payer's last event to the previous close (none in 30 days: empty).",
         reason="velocity", fill=None),
    _req("payer_amount_to_avg_7d", _amount_to_avg_7d,
         "This amount over the payer's 7-day average amount.", reason="amount", monotone=1),
    _req("payer_amount_to_median_7d", _amount_to_median_7d,
         "This amount over the payer's 7-day median amount.", reason="amount", monotone=1),
    _req("payer_amount_to_median_30d", _amount_to_median_30d,
         "This amount over the payer's 30-day median amount.", reason="amount", monotone=1),
    _req("payer_amount_zscore_30d", _amount_zscore_30d,
         "This amount's z-score against the payer's 30-day amounts.", reason="amount",
         monotone=1),
    _req("payer_hours_since_previous_now", _hours_since_previous,
         "Hours since the payer's previous event (empty if none in 30 days).",
         reason="velocity"),
    _agg("counterpart_fraud_rate_1d", "counterpart_risk",
         "sum(report_n) / nullif(sum(txn_n), 0)",
         "Fraud reports known on the previous day per event at this terminal / payee.",
         reason="counterpart_risk", fill=None),
    _agg("counterpart_fraud_rate_7d", "counterpart_risk",
         "sum(report_n) / nullif(sum(txn_n), 0)",
         "Fraud reports known over 7 days per event at this terminal / payee.",
         reason="counterpart_risk", fill=None),
    _agg("counterpart_txn_count_1d", "counterpart_events", "sum(txn_n)",
         "Events at this terminal / payee on the previous day.", reason="velocity"),
    _agg("counterpart_txn_amount_1d", "counterpart_events", "sum(amount)",
         "Amount (CNY) of the events at this terminal / payee on the previous day.",
         reason="velocity"),
    _agg("counterpart_txn_count_7d", "counterpart_events", "sum(txn_n)",
         "Events at this terminal / payee over 7 days.", reason="velocity"),
    _agg("counterpart_txn_amount_7d", "counterpart_events", "sum(amount)",
         "Amount (CNY) of the events at this terminal / payee over 7 days.",
         reason="velocity"),
    _agg("merchant_fraud_reports_1d", "merchant_risk", "sum(report_n)",
         "Fraud reports known on the previous day about the merchant's POS transactions.",
         reason="merchant_risk", monotone=1),
    _agg("merchant_fraud_rate_1d", "merchant_risk", "sum(report_n) / nullif(sum(txn_n), 0)",
         "Fraud reports known on the previous day per POS transaction of the merchant.",
         reason="merchant_risk", fill=None),
    _agg("merchant_fraud_rate_7d", "merchant_risk", "sum(report_n) / nullif(sum(txn_n), 0)",
         "Fraud reports known over 7 days per POS transaction of the merchant.",
         reason="merchant_risk", fill=None),
    _req("event_weekend_now", _weekend, "1 on a Saturday or Sunday.", reason="time"),
)  # fmt: skip


def _month_change(col: str) -> str:
    """The last 30 days of a daily measure over the 30 days before them (a 90-day window
    read only in its latest 60 days)."""
    last = f"sum({col}) FILTER (WHERE day > as_of - 30)"
    before = f"sum({col}) FILTER (WHERE day <= as_of - 30 AND day > as_of - 60)"
    return f"{last} / nullif({before}, 0)"


# v3 (issue 18): the merchant's state as its latest month shows it (the simulator's PD of a
# line follows the borrower's state month by month, most of it from the latest months, and
# the 90- and 180-day features of v2 dilute a recent turn), its category (risky MCC: master
# data) and how it repays its line.
MERCHANT_V3 = (
    *MERCHANT_V2,
    _agg("merchant_risky_mcc_life", "merchant_profile", "max(risky_n)",
         "1 if the merchant's category is a risky MCC (gambling, quasi-cash, jewelry).",
         reason="business_type", monotone=1, fill=None),
    _agg("merchant_night_share_30d", "merchant_pos_events",
         "sum(night_n) / nullif(sum(txn_n), 0)",
         "Share of approved card payments between 00:00 and 06:00 over 30 days.",
         reason="time", monotone=1, fill=None),
    _agg("merchant_refund_rate_30d", "merchant_pos_events",
         "sum(refund_n) / nullif(sum(txn_n), 0)",
         "Refunds per approved card payment over 30 days (by count).", reason="refunds",
         monotone=1, fill=None),
    _agg("merchant_chargeback_rate_30d", "merchant_pos_events",
         "sum(chargeback_n) / nullif(sum(txn_n), 0)",
         "Chargebacks per approved card payment over 30 days.", reason="chargebacks",
         monotone=1, fill=None),
    _agg("merchant_avg_ticket_30d", "merchant_pos", "sum(gross) / nullif(sum(txn_n), 0)",
         "Average approved ticket (CNY) over 30 days.", reason="turnover", fill=None),
    _agg("merchant_distinct_card_ratio_30d", "merchant_cards",
         "count(DISTINCT card_token) / nullif(count(*), 0)",
         "Distinct cards over card-days with approved payments, 30 days (low: the shop "
         "lives off a few regulars).", reason="concentration", monotone=-1, fill=None),
    _agg("merchant_turnover_month_change_90d", "merchant_pos", _month_change("net"),
         "Net turnover of the last 30 days over that of the 30 days before.",
         reason="turnover_trend", monotone=-1, fill=None),
    _agg("merchant_late_repayments_180d", "merchant_repayments", "sum(late_n)",
         "Line instalments paid after the due date over 180 days.", reason="delinquency",
         monotone=1),
    _agg("merchant_late_repayment_ratio_180d", "merchant_repayments",
         "sum(late_n) / nullif(sum(items_n), 0)",
         "Share of the line's instalments paid after the due date over 180 days.",
         reason="delinquency", monotone=1, fill=None),
)  # fmt: skip

#: The SME's measures declared over several windows (v2 to v5): name stem -> source,
#: aggregate expression, description (``{days}``: the window), reason group, monotone sign.
_SME_MEASURES: dict[str, tuple[str, str, str, str, int]] = {
    "failed_payment_ratio": (
        "sme_outgoing", "sum(failed_n) / nullif(sum(out_n), 0)",
        "Share of outgoing payments (transfers, bills, e-payments) that failed over {days} days.",
        "cash_flow", 1,
    ),
    "bill_ontime_ratio": (
        "sme_bills", "sum(ontime_n) / nullif(sum(bills_n), 0)",
        "Share of bill payments made successfully by the due date over {days} days.",
        "bill_payments", -1,
    ),
    "bill_days_late": (
        "sme_bill_timing", "sum(days_late) / nullif(sum(paid_n), 0)",
        "Mean days after the due date that bills were paid over {days} days (0: on time).",
        "bill_payments", 1,
    ),
    "b2b_instalment_share": (
        "sme_mall_buying", "sum(instalment_n) / nullif(sum(orders_n), 0)",
        "Share of B2B mall purchases paid by instalment credit over {days} days.",
        "credit_usage", 1,
    ),
    "distinct_counterparty_ratio": (
        "sme_counterparties", "count(DISTINCT counterparty_id) / nullif(count(*), 0)",
        "Distinct payers over payer-days of the inflows, {days} days (low: a few big clients).",
        "concentration", -1,
    ),
    "transfers_out_per_in": (
        "sme_transfers", "sum(out_n) / nullif(sum(in_n), 0)",
        "Transfers sent (suppliers, payroll) per transfer received over {days} days.",
        "cash_flow", 1,
    ),
}  # fmt: skip


def _sme(stem: str, days: int) -> Feature:
    """The SME measure ``stem`` (:data:`_SME_MEASURES`) over ``days`` days (NaN without rows)."""
    source, expr, description, reason, monotone = _SME_MEASURES[stem]
    return _agg(f"sme_{stem}_{days}d", source, expr, description.format(days=days),
                reason=reason, monotone=monotone, fill=None)  # fmt: skip


# v2 (issue 18): the SME's state as its latest month shows it: failed supplier payments,
# bill punctuality over 30 and 90 days and how late the late bills were, costs against
# receipts, B2B purchases on instalment, client concentration, the month's change in
# receipts, and how it repays its line.
SME_V2 = (
    *SME,
    _sme("failed_payment_ratio", 30),
    _sme("failed_payment_ratio", 90),
    _sme("bill_ontime_ratio", 30),
    _sme("bill_ontime_ratio", 90),
    _sme("bill_days_late", 90),
    _agg("sme_outflow_to_inflow_30d", "sme_payments", "sum(outflow) / nullif(sum(inflow), 0)",
         "Money paid out over money received over 30 days.", reason="cash_flow", monotone=1,
         fill=None),
    _sme("b2b_instalment_share", 90),
    _sme("distinct_counterparty_ratio", 30),
    _agg("sme_inflow_month_change_90d", "sme_payments", _month_change("inflow"),
         "Inflows of the last 30 days over those of the 30 days before.",
         reason="cash_flow_trend", monotone=-1, fill=None),
    _agg("sme_late_repayment_ratio_180d", "sme_repayments",
         "sum(late_n) / nullif(sum(items_n), 0)",
         "Share of the line's instalments paid after the due date over 180 days.",
         reason="delinquency", monotone=1, fill=None),
)  # fmt: skip

# v3 (issue 18): the SME's strongest signals (how late its bills are paid, its failed
# payments, B2B purchases on instalment, repeat payers) over 180 days as well: its state
# moves slowly, so six months of them tell it more precisely than three.
SME_V3 = (
    *SME_V2,
    _sme("bill_days_late", 180),
    _sme("failed_payment_ratio", 180),
    _sme("b2b_instalment_share", 180),
    _sme("distinct_counterparty_ratio", 90),
    _sme("distinct_counterparty_ratio", 180),
)  # fmt: skip

# v4 (issue 18): the SME's transfers out (suppliers, payroll) per transfer in (clients),
# counted over 30, 90 and 180 days: a rate of payment orders, which the size of the business
# and its few large amounts do not blur.
SME_V4 = (*SME_V3, *(_sme("transfers_out_per_in", days) for days in (30, 90, 180)))

# v5 (issue 18): the SME's strongest signals over a year as well (bill lateness and
# punctuality, failed payments, transfers per receipt, repeat payers, B2B instalments): its
# state moves slowly, so twelve months tell it more precisely than six.
SME_V5 = (
    *SME_V4,
    *(
        _sme(stem, 365)
        for stem in (
            "bill_days_late", "bill_ontime_ratio", "failed_payment_ratio",
            "transfers_out_per_in", "distinct_counterparty_ratio", "b2b_instalment_share",
        )
    ),
)  # fmt: skip

MERCHANT_V4 = (
    *MERCHANT_V2,
    _agg("merchant_offus_night_share_90d", "merchant_pos_offus",
         "sum(offus_night_n) / nullif(sum(offus_n), 0)",
         "Share of other banks' cards' approved payments between 00:00 and 06:00, 90 days.",
         reason="time", monotone=1, fill=None),
    _agg("merchant_offus_night_share_180d", "merchant_pos_offus",
         "sum(offus_night_n) / nullif(sum(offus_n), 0)",
         "Share of other banks' cards' approved payments between 00:00 and 06:00, 180 days.",
         reason="time", monotone=1, fill=None),
    _agg("merchant_offus_refund_rate_90d", "merchant_pos_offus",
         "sum(offus_refund_n) / nullif(sum(offus_n), 0)",
         "Refunds per approved payment by other banks' cards over 90 days.", reason="refunds",
         monotone=1, fill=None),
    _agg("merchant_offus_refund_rate_180d", "merchant_pos_offus",
         "sum(offus_refund_n) / nullif(sum(offus_n), 0)",
         "Refunds per approved payment by other banks' cards over 180 days.", reason="refunds",
         monotone=1, fill=None),
    _agg("merchant_offus_ticket_premium_180d", "merchant_pos_offus",
         "sum(offus_log_ticket) / nullif(sum(offus_n), 0) "
         "- sum(onus_log_ticket) / nullif(sum(onus_n), 0)",
         "Mean log ticket of other banks' cards minus that of our cardholders at the same shop, "
         "180 days.", reason="turnover", monotone=-1, fill=None),
    _agg("merchant_offus_card_repeat_90d", "merchant_offus_cards",
         "1 - count(DISTINCT card_token) / nullif(sum(txn_n), 0)",
         "Share of other banks' cards' payments by a card already seen in the 90 days "
         "(regulars).", reason="concentration", monotone=1, fill=None),
)  # fmt: skip

_SETS = (
    FeatureSet("personal_credit", 1, "customer",
               "Personal consumer credit (逸贷) on real spending.", PERSONAL),
    FeatureSet("personal_credit", 2, "customer",
               "Personal consumer credit (逸贷) on real spending, payment punctuality and "
               "income stability.", PERSONAL_V2),
    FeatureSet("personal_credit", 3, "customer",
               "Personal consumer credit (逸贷) on real spending, payment punctuality, income "
               "stability, and the rates of its declined, night, risky and refunded card "
               "payments.", PERSONAL_V3),
    FeatureSet("merchant_credit", 1, "merchant",
               "Small-merchant revolving credit on POS turnover.", MERCHANT),
    FeatureSet("merchant_credit", 2, "merchant",
               "Small-merchant revolving credit on POS turnover, its hours, refunds and "
               "chargebacks.", MERCHANT_V2),
    FeatureSet("merchant_credit", 3, "merchant",
               "Small-merchant revolving credit on POS turnover, its hours, refunds and "
               "chargebacks, their latest month, the merchant's category and its line's "
               "repayments.", MERCHANT_V3),
    FeatureSet("merchant_credit", 4, "merchant",
               "Small-merchant revolving credit on POS turnover, its hours, refunds and "
               "chargebacks, and other banks' cardholders' hours, refunds, tickets and loyalty.",
               MERCHANT_V4),
    FeatureSet("sme_credit", 1, "sme", "SME revolving online loans (网贷通).", SME),
    FeatureSet("sme_credit", 2, "sme",
               "SME revolving online loans (网贷通) on cash flow, bill punctuality, failed "
               "payments and B2B trade, their latest month, and its line's repayments.",
               SME_V2),
    FeatureSet("sme_credit", 3, "sme",
               "SME revolving online loans (网贷通) on cash flow, bill punctuality, failed "
               "payments and B2B trade, their latest month and the last six months, and its "
               "line's repayments.", SME_V3),
    FeatureSet("sme_credit", 4, "sme",
               "SME revolving online loans (网贷通) on cash flow, bill punctuality, failed "
               "payments and B2B trade, their latest month and the last six months, the "
               "transfers it sends per transfer it receives, and its line's repayments.",
               SME_V4),
    FeatureSet("sme_credit", 5, "sme",
               "SME revolving online loans (网贷通) on cash flow, bill punctuality, failed "
               "payments and B2B trade, their latest month, the last six months and the last "
               "year, the transfers it sends per transfer it receives, and its line's "
               "repayments.", SME_V5),
    FeatureSet("payment_fraud", 1, "payer",
               "Fraud on POS card transactions and online payments, per event.", FRAUD),
    FeatureSet("payment_fraud", 2, "payer",
               "Fraud on POS card transactions and online payments, per event, against the "
               "payer's own history and the counterpart's known fraud.", FRAUD_V2),
)  # fmt: skip
FEATURE_SETS: dict[str, FeatureSet] = {fs.name: fs for fs in _SETS}
#: The set each model trains on (``yidai.core.catalogue``): built and published by default.
CREDIT_FEATURE_SETS: dict[str, str] = {m.product: m.feature_set for m in catalogue.CREDIT_MODELS}
FRAUD_FEATURE_SET = catalogue.FRAUD_MODEL.feature_set


def get_feature_set(name: str) -> FeatureSet:
    """The declared feature set ``name``; a clear error listing the known ones otherwise."""
    try:
        return FEATURE_SETS[name]
    except KeyError:
        raise YidaiError(
            f"unknown feature set {name!r}; known: {', '.join(FEATURE_SETS)}"
        ) from None
