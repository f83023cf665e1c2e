"""The loan book: applications with the bank's historic decision, revolving accounts,
drawdowns, repayment schedules and the month-end performance tape; and the credit truth.

The true 12-month PD of an application is a logistic function of the applicant's latent
state in the month before it (the state its recent behaviour shows) and of observable master
data; the realised default is a Bernoulli draw from it, for approved and declined applicants.
The bank's historic decision is a crude rule on a few observables, so it declines some good
applicants and approves some bad ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.calendar import US_PER_DAY
from simulator.landing import Batch
from simulator.world import LOANS, SME_BILLS, World, rng_for, sigmoid

PERSONAL, MERCHANT, SME = range(3)  # product codes (order of yidai.core.contracts.PRODUCTS)
TARGET_BAD_RATE = {PERSONAL: 0.05, MERCHANT: 0.065, SME: 0.065}
SLOPE = {PERSONAL: 1.35, MERCHANT: 1.4, SME: 1.4}
APPROVE_SHARE = {PERSONAL: 0.7, MERCHANT: 0.65, SME: 0.65}
TERMS = {PERSONAL: [3, 6, 12], MERCHANT: [3, 6, 12], SME: [6, 12]}


@dataclass
class Applications:
    """One row per application (codes, not yet strings), sorted by time."""

    product: np.ndarray
    applicant: np.ndarray
    day: np.ndarray
    ts: np.ndarray
    state: np.ndarray  # latent state the true PD is computed from
    true_pd: np.ndarray
    defaulted: np.ndarray
    default_month: np.ndarray  # -1 if no default within 12 months
    requested: np.ndarray
    approved: np.ndarray
    limit: np.ndarray
    rate: np.ndarray


def _app_days(rng: np.random.Generator, n: int, first: int, n_days: int) -> np.ndarray:
    """Application days from ``first`` on, denser early on (launch campaign)."""
    u = rng.random(n)
    x = (1.6 - np.sqrt(2.56 - 2.4 * u)) / 1.2  # density 1.6 - 1.2x on [0, 1]
    return (first + x * (n_days - first - 1)).astype(np.int64)


def _calibrate_intercept(score: np.ndarray, target: float) -> float:
    """Intercept ``a`` with mean(sigmoid(a + score)) == target (bisection)."""
    lo, hi = -15.0, 5.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if sigmoid(mid + score).mean() > target:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


def _mean_before(values: np.ndarray, who: np.ndarray, month: np.ndarray, span: int) -> np.ndarray:
    """Mean of ``values[who, month-span .. month-1]`` (months before the one given)."""
    total = np.zeros(len(who))
    count = np.zeros(len(who))
    for back in range(1, span + 1):
        m = month - back
        ok = m >= 0
        total[ok] += values[who[ok], m[ok]]
        count[ok] += 1
    return total / np.maximum(count, 1)


def _recent_state(z_eff: np.ndarray, who: np.ndarray, month: np.ndarray) -> np.ndarray:
    """The latent state recent behaviour shows: last three months before the application."""
    weights = (0.5, 0.3, 0.2)
    total = np.zeros(len(who))
    for back, w in enumerate(weights, start=1):
        total += w * z_eff[who, np.maximum(month - back, 0)]
    return total


def draw_applications(world: World) -> Applications:
    """Applications of all three products, their truth and the bank's decision."""
    cfg, cal = world.config, world.calendar
    c, m, s = world.customers, world.merchants, world.smes
    rng = rng_for(cfg.seed, LOANS)
    n_days = cal.n_days
    first_day = int(cal.month_starts[cfg.history_months])
    # applications per entity over the application period (re-applications, line reviews)
    years = cfg.application_rate * (cfg.months - cfg.history_months) / 12
    parts = []
    # personal: about a third of customers apply in a year, riskier ones more often
    n_apps = rng.poisson(years * 1.2 * 0.7 * sigmoid(-0.2 - 0.3 * c.z))
    who = np.repeat(np.arange(c.n), n_apps)
    parts.append((PERSONAL, who, c.opened_day[who]))
    # merchants are re-underwritten about twice a year; SMEs get a line review about every
    # other month
    who = np.repeat(np.arange(m.n), rng.poisson(years * 2.0, m.n))
    parts.append((MERCHANT, who, m.onboarded_day[who]))
    who = np.repeat(np.arange(s.n), rng.poisson(years * 6.0, s.n))
    parts.append((SME, who, s.onboarded_day[who]))
    product = np.concatenate([np.full(len(p[1]), p[0]) for p in parts])
    applicant = np.concatenate([p[1] for p in parts])
    since = np.concatenate([p[2] for p in parts])
    day = _app_days(rng, len(product), first_day, n_days)
    day = np.maximum(day, since + 60)
    keep = day < n_days
    product, applicant, since, day = product[keep], applicant[keep], since[keep], day[keep]
    n = len(product)
    ts = cal.to_us(day, 8 * 3600 + rng.integers(0, 14 * 3600, n))
    order = np.lexsort((applicant, product, ts))
    product, applicant, since, day, ts = (a[order] for a in (product, applicant, since, day, ts))
    month = cal.month_of(day)
    tenure_short = (day - since) < 365

    state = np.zeros(n)
    extra = np.zeros(n)
    obs = np.zeros(n)  # the bank's crude score
    requested = np.zeros(n)
    cap = np.zeros(n)
    for prod in (PERSONAL, MERCHANT, SME):
        k = product == prod
        who, mo = applicant[k], month[k]
        if prod == PERSONAL:
            state[k] = _recent_state(c.z_eff, who, month[k])
            extra[k] = 0.12 * (2 - c.income[who]) + 0.3 * (c.age[who] == 0)
            spend = _mean_before(world.agg["cust_spend"], who, mo, 3)
            bills = _mean_before(world.agg["cust_bills"], who, mo, 3)
            late = _mean_before(world.agg["cust_late"], who, mo, 3) / np.maximum(bills, 1)
            obs[k] = 0.5 * np.log1p(spend) + 0.3 * c.income[who] - 2.0 * late
            requested[k] = np.clip(spend * rng.uniform(1, 3, len(who)), 1000, 50_000)
            cap[k] = np.maximum(3 * spend, 1000)
        elif prod == MERCHANT:
            state[k] = _recent_state(m.z_eff, who, month[k])
            extra[k] = 0.3 * m.risky[who]
            turnover = np.maximum(_mean_before(world.agg["merch_turnover"], who, mo, 3), 0)
            older = np.maximum(_mean_before(world.agg["merch_turnover"], who, mo - 3, 3), 1)
            obs[k] = 0.6 * np.log1p(turnover) + 0.8 * np.log((turnover + 1) / older).clip(-2, 2)
            requested[k] = np.clip(turnover * rng.uniform(0.5, 2, len(who)), 5000, 500_000)
            cap[k] = np.maximum(1.5 * turnover, 1000)
        else:
            state[k] = _recent_state(s.z_eff, who, month[k])
            inflow = _mean_before(world.agg["sme_inflow"], who, mo, 3)
            late = _mean_before(world.agg["sme_late"], who, mo, 3) / len(SME_BILLS)
            obs[k] = 0.6 * np.log1p(inflow) - 1.5 * late
            requested[k] = np.clip(inflow * rng.uniform(1, 3, len(who)), 20_000, 2_000_000)
            cap[k] = np.maximum(2.5 * inflow, 1000)

    true_pd = np.zeros(n)
    approved = np.zeros(n, dtype=bool)
    rate = np.zeros(n)
    obs = obs + 0.3 * ~tenure_short + rng.normal(0, 0.6, n)
    for prod in (PERSONAL, MERCHANT, SME):
        k = product == prod
        if not k.any():
            continue
        score = -SLOPE[prod] * state[k] + extra[k] + 0.35 * tenure_short[k]
        true_pd[k] = sigmoid(_calibrate_intercept(score, TARGET_BAD_RATE[prod]) + score)
        threshold = np.quantile(obs[k], 1 - APPROVE_SHARE[prod])
        approved[k] = obs[k] >= threshold
        rank = (obs[k].argsort().argsort() + 0.5) / k.sum()
        rate[k] = np.round((0.065 + 0.12 * (1 - rank)) / 0.0025) * 0.0025
    defaulted = rng.random(n) < true_pd
    first_missed = 1 + np.minimum(rng.geometric(0.38, n) - 1, 8)  # months after booking
    default_month = np.where(defaulted, first_missed + 3, -1)
    requested = np.maximum(np.round(requested, -2), 100.0)
    limit = np.where(approved, np.maximum(np.round(np.minimum(requested, cap), -2), 1000.0), 0.0)
    return Applications(
        product=product,
        applicant=applicant,
        day=day,
        ts=ts,
        state=state,
        true_pd=true_pd,
        defaulted=defaulted,
        default_month=default_month,
        requested=requested,
        approved=approved,
        limit=limit,
        rate=rate,
    )


def loan_batches(world: World, apps: Applications) -> list[Batch]:
    """loan_applications, loan_drawdowns, loan_repayments and loan_performance rows."""
    cfg, cal = world.config, world.calendar
    rng = rng_for(cfg.seed, LOANS, 1)
    n_days = cal.n_days
    n = len(apps.product)
    app_code = np.arange(n, dtype=np.int64) + 1
    out = [
        Batch(
            "loan_applications",
            {
                "application_id": app_code,
                "ts": apps.ts,
                "product": apps.product,
                "applicant_id": apps.applicant,
                "requested_amount": apps.requested,
                "decision": (~apps.approved).astype(np.int64),
                "approved_limit": apps.limit,
                "annual_rate": apps.rate,
            },
            apps.day,
            {"annual_rate": ~apps.approved},
        )
    ]
    acc = np.flatnonzero(apps.approved)  # account index = application index
    book_day = apps.day[acc]
    limit = apps.limit[acc]
    missed_day = np.where(
        apps.defaulted[acc], book_day + 30 * (apps.default_month[acc] - 3), np.iinfo(np.int64).max
    )
    # drawdowns: one soon after booking (always for a future defaulter), a few more later
    first = apps.defaulted[acc] | (rng.random(len(acc)) < 0.85)
    n_more = rng.poisson(1.2, len(acc))
    d_acc = np.concatenate([acc[first], np.repeat(acc, n_more)])
    d_book = apps.day[d_acc]
    is_first = np.arange(len(d_acc)) < first.sum()
    d_day = np.where(
        is_first,
        d_book + rng.integers(0, 6, len(d_acc)),
        d_book
        + 10
        + (rng.random(len(d_acc)) * np.maximum(n_days - d_book - 10, 1)).astype(np.int64),
    )
    d_missed = np.where(
        apps.defaulted[d_acc],
        apps.day[d_acc] + 30 * (apps.default_month[d_acc] - 3),
        np.iinfo(np.int64).max,
    )
    keep = (d_day < n_days) & (d_day < d_missed)
    d_acc, d_day, is_first = d_acc[keep], d_day[keep], is_first[keep]
    share = np.where(
        is_first, rng.uniform(0.3, 0.8, len(d_acc)), rng.uniform(0.05, 0.2, len(d_acc))
    )
    d_amount = np.round(apps.limit[d_acc] * share, 2)
    prod = apps.product[d_acc]
    term = np.zeros(len(d_acc), np.int64)
    for p, terms in TERMS.items():
        k = prod == p
        term[k] = rng.choice(terms, int(k.sum()))
        # a defaulter's first drawdown still runs when it stops paying, so the tape shows it
        needed = apps.default_month[d_acc] - 2
        short = k & is_first & apps.defaulted[d_acc] & (term < needed)
        longer = np.array(sorted(terms))
        term[short] = longer[np.minimum(np.searchsorted(longer, needed[short]), len(longer) - 1)]
    order = np.lexsort((d_acc, d_day))
    d_acc, d_day, d_amount, term = d_acc[order], d_day[order], d_amount[order], term[order]
    d_ts = cal.to_us(d_day, 9 * 3600 + rng.integers(0, 12 * 3600, len(d_acc)))
    out.append(
        Batch(
            "loan_drawdowns",
            {
                "drawdown_id": np.arange(len(d_acc), dtype=np.int64) + 1,
                "account_id": app_code[d_acc],
                "ts": d_ts,
                "amount": d_amount,
                "term_months": term,
            },
            d_day,
        )
    )

    # repayment schedule: equal principal parts, interest on the remaining balance
    item_draw = np.repeat(np.arange(len(d_acc)), term)
    k_no = (
        np.concatenate([np.arange(1, t + 1) for t in term]) if len(term) else np.zeros(0, np.int64)
    )
    due = d_day[item_draw] + np.round(30.44 * k_no).astype(np.int64)
    keep = due < n_days
    item_draw, k_no, due = item_draw[keep], k_no[keep], due[keep]
    i_acc = d_acc[item_draw]
    principal = d_amount[item_draw] / term[item_draw]
    interest = d_amount[item_draw] * (1 - (k_no - 1) / term[item_draw]) * apps.rate[i_acc] / 12
    amount_due = np.round(principal + interest, 2)
    missed = due >= np.where(
        apps.defaulted[i_acc],
        apps.day[i_acc] + 30 * (apps.default_month[i_acc] - 3),
        np.iinfo(np.int64).max,
    )
    late = rng.random(len(due)) < sigmoid(-3.2 - 1.2 * apps.state[i_acc])
    paid_day = np.where(
        late, due + rng.integers(1, 26, len(due)), due - rng.integers(0, 6, len(due))
    )
    paid_day = np.maximum(paid_day, d_day[item_draw] + 1)
    unpaid = missed | (paid_day >= n_days)
    dpd = np.where(unpaid, n_days - 1 - due, np.maximum(paid_day - due, 0))
    deliver = np.where(unpaid, n_days - 1, paid_day)
    paid_ts = cal.to_us(
        np.where(unpaid, 0, paid_day), 7 * 3600 + rng.integers(0, 14 * 3600, len(due))
    )
    order = np.lexsort((item_draw, due))
    out.append(
        Batch(
            "loan_repayments",
            {
                "schedule_id": np.arange(len(due), dtype=np.int64)[order] + 1,
                "account_id": app_code[i_acc][order],
                "due_date": cal.to_us(due)[order],
                "amount_due": amount_due[order],
                "paid_at": paid_ts[order],
                "amount_paid": np.where(unpaid, 0.0, amount_due)[order],
                "days_past_due": dpd[order].astype(np.int32),
            },
            deliver[order],
            {"paid_at": unpaid[order]},
        )
    )

    # month-end performance tape: line, outstanding balance and days past due
    month_end = cal.month_end_days()
    n_months = len(month_end)
    acc_pos = np.full(n, -1)
    acc_pos[acc] = np.arange(len(acc))
    drawn = np.zeros((len(acc), n_months))
    repaid = np.zeros((len(acc), n_months))
    dpd_grid = np.zeros((len(acc), n_months), np.int64)
    np.add.at(drawn, (acc_pos[d_acc], cal.month_of(d_day)), d_amount)
    paid_month = cal.month_of(np.minimum(paid_day, n_days - 1))
    np.add.at(repaid, (acc_pos[i_acc[~unpaid]], paid_month[~unpaid]), principal[~unpaid])
    for j, me in enumerate(month_end.tolist()):
        overdue = (due <= me) & (unpaid | (paid_day > me))
        np.maximum.at(dpd_grid[:, j], acc_pos[i_acc[overdue]], me - due[overdue])
    outstanding = np.maximum(np.cumsum(drawn, axis=1) - np.cumsum(repaid, axis=1), 0)
    rows_acc, rows_m = np.nonzero(month_end[None, :] >= book_day[:, None])
    snap = month_end[rows_m]
    out.append(
        Batch(
            "loan_performance",
            {
                "account_id": app_code[acc[rows_acc]],
                "snapshot_date": cal.to_us(snap),
                "credit_limit": limit[rows_acc],
                "outstanding": np.round(outstanding[rows_acc, rows_m], 2),
                "days_past_due": dpd_grid[rows_acc, rows_m].astype(np.int32),
            },
            snap.astype(np.int64),
        )
    )
    _ = missed_day, US_PER_DAY
    return out
