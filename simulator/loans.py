"""The loan book: applications with the bank's historic decision, revolving accounts,
drawdowns, repayment schedules and the month-end performance tape; and the credit truth.

An applicant's PD is a logistic function of its latent state in the month before the
application (the state its recent behaviour shows) and of observable master data; the
realised default is a draw from it, for approved and declined applicants (a personal loan's
own draw, a line's monthly hazard).  The truth written out (``true_pd``, ``defaulted``) is on
the label's horizon, ``SimConfig.performance_months``: the account reaches 90+ days past
due at a month end within that many months of the application.  ``true_pd`` is the PD as
known at the decision (the oracle); a line's ``path_pd`` also knows the states that came
after it (what its monthly hazards were), which no model can.
The bank's historic decision is a crude rule on a few observables, so it declines some good
applicants and approves some bad ones.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from simulator.calendar import Calendar
from simulator.landing import Batch
from simulator.world import (
    BUSINESS_SHOCK_P,
    LOANS,
    SHOCK_SIZE,
    SME_BILLS,
    STATE_DRIFT_SD,
    Merchants,
    Smes,
    World,
    rng_for,
    sigmoid,
)
from yidai.core.settings import BAD_DAYS_PAST_DUE

PERSONAL, MERCHANT, SME = range(3)  # product codes (order of yidai.core.contracts.PRODUCTS)
TARGET_BAD_RATE = {PERSONAL: 0.05, MERCHANT: 0.065, SME: 0.065}
SLOPE = {PERSONAL: 1.35, MERCHANT: 1.4, SME: 1.4}
APPROVE_SHARE = {PERSONAL: 0.7, MERCHANT: 0.65, SME: 0.65}
TERMS = {PERSONAL: [3, 6, 12], MERCHANT: [3, 6, 12], SME: [6, 12]}
LINE_PRODUCTS = (MERCHANT, SME)  # one revolving line per borrower, reviewed on re-application
PRODUCTS = (PERSONAL, MERCHANT, SME)
LINE_FIRST_MISS_DAYS = 31  # a line's first miss comes at least this long after it opened
LINE_DUE_LAG = 8  # days from a line's default draw to its first unpaid instalment (mean)
FIRST_MISS_P = 0.38  # an own-draw defaulter's first missed instalment: geometric number
MAX_FIRST_MISSED = 9  # ...at most the 9th
FIRST_DRAW_DAYS = 6  # a booking's first drawdown: 0-5 days after the decision
INSTALMENT_DAYS = 30.44  # a drawdown's instalments fall due monthly from its day
NEVER = np.iinfo(np.int64).max // 2
CHARGE_OFF_DPD = 180  # a balance this many days past due is written off
RECOVERY_RATE = 0.3  # share of a written-off balance recovered in the charge-off month
FROZEN_DPD = 30  # a line this many days past due at month end is frozen (no drawdowns)
MIN_DRAW = 100.0  # smallest drawdown; a line with less available is not drawn
EX_ANTE_PATHS = 128  # futures a line's ex-ante true PD averages over
# The true-PD formula's terms (``logit = intercept - SLOPE * state + extra + short tenure``):
RECENT_WEIGHTS = (0.5, 0.3, 0.2)  # the state a PD reads: the months before, latest first
TENURE_SHORT_DAYS = 365  # an entity this new at the decision (or the month) is riskier...
TENURE_SHORT_LOGIT = 0.35  # ...by this much on the logit
RISKY_MCC_LOGIT = 0.3  # a merchant in a risky MCC


@dataclass
class Applications:
    """One row per application (codes, not yet strings), sorted by time."""

    product: np.ndarray
    applicant: np.ndarray
    day: np.ndarray
    ts: np.ndarray
    state: np.ndarray  # latent state the true PD is computed from
    true_pd: np.ndarray  # probability of ``defaulted`` given what exists then (the oracle)
    path_pd: np.ndarray  # a line's, given also the state path that followed (not reachable)
    defaulted: np.ndarray  # 90+ days past due within the performance window (the truth)
    default_month: np.ndarray  # months from booking to 90+ DPD whenever it falls; -1 if none
    requested: np.ndarray
    approved: np.ndarray
    limit: np.ndarray
    rate: np.ndarray
    account: np.ndarray  # application index of the account it opened or reviewed; -1 if none
    arrears: np.ndarray  # first missed due day of its account (NEVER if none)
    draw_delay: np.ndarray  # days from the decision to an approval's first drawdown


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
    total = np.zeros(len(who))
    for back, w in enumerate(RECENT_WEIGHTS, start=1):
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
    # an entity applies from its 60th day on: the applications drawn before it are not made
    # (moving them to that day piled a late joiner's whole period onto one day)
    keep = (day >= since + 60) & (day < n_days)
    product, applicant, since, day = product[keep], applicant[keep], since[keep], day[keep]
    n = len(product)
    ts = cal.to_us(day, 8 * 3600 + rng.integers(0, 14 * 3600, n))
    order = np.lexsort((applicant, product, ts))
    product, applicant, since, day, ts = (a[order] for a in (product, applicant, since, day, ts))
    month = cal.month_of(day)
    tenure_short = (day - since) < TENURE_SHORT_DAYS

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
            extra[k] = RISKY_MCC_LOGIT * m.risky[who]
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
    intercept: dict[int, float] = {}
    for prod in (PERSONAL, MERCHANT, SME):
        k = product == prod
        if not k.any():
            continue
        score = -SLOPE[prod] * state[k] + extra[k] + TENURE_SHORT_LOGIT * tenure_short[k]
        intercept[prod] = _calibrate_intercept(score, TARGET_BAD_RATE[prod])
        true_pd[k] = sigmoid(intercept[prod] + score)
        threshold = np.quantile(obs[k], 1 - APPROVE_SHARE[prod])
        approved[k] = obs[k] >= threshold
        rank = (obs[k].argsort().argsort() + 0.5) / k.sum()
        rate[k] = np.round((0.065 + 0.12 * (1 - rank)) / 0.0025) * 0.0025
    defaulted = rng.random(n) < true_pd
    first_missed = 1 + np.minimum(rng.geometric(FIRST_MISS_P, n) - 1, MAX_FIRST_MISSED - 1)
    draw_delay = rng.integers(0, FIRST_DRAW_DAYS, n)
    requested = np.maximum(np.round(requested, -2), 100.0)
    limit = np.where(approved, np.maximum(np.round(np.minimum(requested, cap), -2), 1000.0), 0.0)
    account = _open_lines(product, applicant, approved)
    # an own draw (personal loans, applications before a line): the first instalment it does
    # not pay is the ``first_missed``-th of its first drawdown, ``draw_delay`` days after the
    # decision; its truth is that instalment's due day falling by the label's cutoff
    missed = np.where(defaulted, instalment_due(day + draw_delay, first_missed), NEVER)
    arrears = missed.copy()  # personal: the account's own first miss
    cutoff = label_cutoff(cal, day, cfg.performance_months)
    true_pd = true_pd * own_draw_window_share(cutoff - day)
    defaulted = (missed < NEVER) & (missed <= cutoff)
    path_pd = true_pd.copy()
    _line_defaults(
        world, intercept, product, applicant, day, approved, account, missed, arrears, true_pd,
        path_pd, defaulted, cutoff,
    )  # fmt: skip
    default_month = np.where(missed < NEVER, (missed - day) // 30 + 3, -1)
    limit[~approved] = 0.0
    return Applications(
        product=product,
        applicant=applicant,
        day=day,
        ts=ts,
        state=state,
        true_pd=true_pd,
        path_pd=path_pd,
        defaulted=defaulted,
        default_month=default_month,
        requested=requested,
        approved=approved,
        limit=limit,
        rate=rate,
        account=account,
        arrears=arrears,
        draw_delay=draw_delay,
    )


def label_cutoff(cal: Calendar, day: np.ndarray, months: int) -> np.ndarray:
    """The last first-missed due day that the label of an application on ``day`` sees.

    The label is the account reaching ``BAD_DAYS_PAST_DUE`` days past due within ``months``
    calendar months of the application (to the same day of the month, or the month's last
    day, as SQL's ``+ INTERVAL months MONTH``): its first miss due at least
    ``BAD_DAYS_PAST_DUE`` days before that date.  The same exposure for an application on
    any day of the month.
    """
    start = np.datetime64(cal.start, "D")
    dates = start + day.astype("timedelta64[D]")
    month = dates.astype("datetime64[M]")
    day_in_month = (dates - month.astype("datetime64[D]")).astype(np.int64)
    target = month + months
    length = ((target + 1).astype("datetime64[D]") - target.astype("datetime64[D]")).astype(
        np.int64
    )
    end = target.astype("datetime64[D]") + np.minimum(day_in_month, length - 1)
    return np.asarray((end - start).astype(np.int64) - BAD_DAYS_PAST_DUE)


def instalment_due(draw_day: np.ndarray | int, number: np.ndarray | int) -> np.ndarray:
    """The due day of a drawdown's ``number``-th monthly instalment (1 = the first)."""
    return np.asarray(draw_day + np.round(INSTALMENT_DAYS * np.asarray(number)).astype(np.int64))


def own_draw_window_share(days: np.ndarray) -> np.ndarray:
    """The probability that an own-draw defaulter's first missed instalment falls due within
    ``days`` of the decision: its first drawdown comes ``U{0 .. FIRST_DRAW_DAYS - 1}`` days
    after the decision, the instalment it first misses is geometric (``FIRST_MISS_P``, at
    most the ``MAX_FIRST_MISSED``-th).  The factor from a loan's PD to its truth's."""
    days = np.asarray(days)
    share = np.zeros(days.shape)
    numbers = np.arange(1, MAX_FIRST_MISSED + 1)
    p_number = FIRST_MISS_P * (1 - FIRST_MISS_P) ** (numbers - 1)
    p_number[-1] = (1 - FIRST_MISS_P) ** (MAX_FIRST_MISSED - 1)  # the cap takes the tail
    for delay in range(FIRST_DRAW_DAYS):
        due = instalment_due(delay, numbers)
        share += (due[None, :] <= days.reshape(-1, 1)) @ p_number
    return (share / FIRST_DRAW_DAYS).reshape(days.shape)


def _open_lines(product: np.ndarray, applicant: np.ndarray, approved: np.ndarray) -> np.ndarray:
    """The account (application index) each application opens or reviews; -1 if none.

    A personal approval opens its own account.  A merchant or an SME has one line for life:
    its first approval opens it, every later application of that borrower reviews it (an
    approval sets the new line, a decline keeps it).  Applications are in time order.
    """
    n = len(product)
    account = np.where(approved & (product == PERSONAL), np.arange(n), -1)
    for prod in LINE_PRODUCTS:
        rows = np.flatnonzero(product == prod)
        ok = rows[approved[rows]]
        who, first = np.unique(applicant[ok], return_index=True)  # first approval (time order)
        opener = np.full(int(applicant[rows].max(initial=-1)) + 1, -1)
        opener[who] = ok[first]
        line = opener[applicant[rows]]
        opened = (line >= 0) & (rows >= line)
        account[rows[opened]] = line[opened]
    return account


def _line_defaults(
    world: World,
    intercept: dict[int, float],
    product: np.ndarray,
    applicant: np.ndarray,
    day: np.ndarray,
    approved: np.ndarray,
    account: np.ndarray,
    missed: np.ndarray,
    arrears: np.ndarray,
    true_pd: np.ndarray,
    path_pd: np.ndarray,
    defaulted: np.ndarray,
    cutoff: np.ndarray,
) -> None:
    """One default per merchant or SME line, from a monthly hazard; updates in place.

    From ``LINE_FIRST_MISS_DAYS`` after its line opens, a borrower misses a payment in month
    ``t`` with the hazard ``_monthly_hazard(pd_t)`` spread evenly over the month's days
    (a month the line can miss on only in part gets that share of it), ``pd_t`` the true-PD
    formula at its state of the time (the same score and intercept as its applications): at
    a constant state that is ``pd`` over 6 months.  (Before, a new line drew its whole
    opening month's hazard and put the miss at ``LINE_FIRST_MISS_DAYS`` at the earliest, so
    misses piled up a month after opening while the oracle spread them over the month: new
    lines defaulted 25-65 % more often than their ``true_pd``, which the models read from
    the line's age.)  The first miss is the line's default: every application on the
    line gets ``arrears`` = that day, ``missed`` = that day if it falls within 9 months of it
    (when its drawdowns must still be running), and the bank declines every application of
    the borrower from then on (``approved``): its line is frozen, then charged off.
    Applications before the line opened keep their own draw.
    Its truth ``defaulted`` is that miss falling by its label ``cutoff`` less ``LINE_DUE_LAG``
    (the performance window); its ``path_pd`` the probability of that given the borrower's
    hazards over those days (each month's hazard for the share of the month in the window
    on which the line can miss: the probability its truth was drawn with, which knows the
    state path after the decision), and its ``true_pd`` the same probability as known at
    the decision (``ex_ante_line_pd``: the oracle)."""
    cfg, cal = world.config, world.calendar
    rng = rng_for(cfg.seed, LOANS, 2)
    month_start = cal.month_starts
    for prod in LINE_PRODUCTS:
        group: Merchants | Smes = world.merchants if prod == MERCHANT else world.smes
        rows = np.flatnonzero((product == prod) & (account >= 0))
        if len(rows) == 0:
            continue
        who = np.unique(applicant[rows])
        opened = np.full(group.n, NEVER)
        np.minimum.at(opened, applicant[rows], day[account[rows]])
        extra_of = (  # the borrower's fixed terms of the PD's logit
            RISKY_MCC_LOGIT * world.merchants.risky if prod == MERCHANT else np.zeros(group.n)
        )
        default_day = np.full(group.n, NEVER)
        hazards = np.zeros((group.n, cfg.months + 9))
        for month in range(cal.month_of(np.array([opened[who].min()]))[0], cfg.months):
            start, stop = int(month_start[month]), int(month_start[month + 1])
            state = _recent_state(group.z_eff, who, np.full(len(who), month + 1))
            tenure_short = (start - group.onboarded_day[who]) < TENURE_SHORT_DAYS
            pd_t = _line_pd(intercept[prod] + extra_of[who], SLOPE[prod], state, tenure_short)
            hazard = _monthly_hazard(pd_t)
            # a line can first miss from a month after it opened; the month's hazard applies
            # to its days from then on, the miss falling on one of them at random
            first = np.maximum(start, opened[who] + LINE_FIRST_MISS_DAYS)
            open_share = np.clip(stop - first, 0, None) / (stop - start)
            due = first + (rng.random(len(who)) * np.maximum(stop - first, 1)).astype(np.int64)
            hit = (
                (rng.random(len(who)) < hazard * open_share)
                & (default_day[who] == NEVER)
                & (due < cal.n_days)
            )
            default_day[who[hit]] = due[hit]
            hazards[who, month] = np.where(opened[who] < stop, hazard, 0.0)
        on_line = np.flatnonzero((product == prod) & (account >= 0))
        when = default_day[applicant[on_line]]
        ahead = when - day[on_line]
        # the line's miss as the behaviour sees it (within 9 months: drawdowns still run)
        missed[on_line] = np.where((ahead >= 0) & (ahead < 270), when, NEVER)
        approved[on_line[ahead < 0]] = False  # the borrower is in arrears: declined
        arrears[on_line] = when
        last = cutoff[on_line] - LINE_DUE_LAG
        defaulted[on_line] = (ahead >= 0) & (when <= last)
        month_k = cal.month_of(day[on_line])
        line_first = opened[applicant[on_line]] + LINE_FIRST_MISS_DAYS
        bounds = np.append(month_start, month_start[-1] + 30 * np.arange(1, 26))
        shares = np.zeros((len(on_line), cfg.performance_months + 1))
        log_survive = np.zeros(len(on_line))
        for ahead_m in range(cfg.performance_months + 1):
            m = month_k + ahead_m
            start, stop = bounds[m], bounds[m + 1]
            lo = np.maximum(np.maximum(start, day[on_line]), line_first)
            shares[:, ahead_m] = np.clip(np.minimum(stop, last + 1) - lo, 0, None) / (stop - start)
            h = hazards[applicant[on_line], np.minimum(m, hazards.shape[1] - 1)]
            log_survive += shares[:, ahead_m] * np.log1p(-np.minimum(h, 1 - 1e-12))
        path_pd[on_line] = np.clip(-np.expm1(log_survive), 1e-6, 1 - 1e-6)
        base = intercept[prod] + extra_of[applicant[on_line]]
        true_pd[on_line] = ex_ante_line_pd(
            group, applicant[on_line], month_k, shares, base, SLOPE[prod], month_start,
            cfg.months, rng_for(cfg.seed, LOANS, 3, prod),
        )  # fmt: skip


def _line_pd(
    base: np.ndarray, slope: float, state: np.ndarray, tenure_short: np.ndarray
) -> np.ndarray:
    """The true-PD formula for a line's month: ``base`` = the product's intercept plus the
    borrower's fixed terms, ``state`` its recent state (``RECENT_WEIGHTS``)."""
    return sigmoid(base - slope * state + TENURE_SHORT_LOGIT * tenure_short)


def _monthly_hazard(pd: np.ndarray) -> np.ndarray:
    """The monthly hazard that compounds to ``pd`` over six months."""
    return 1 - (1 - pd) ** (1 / 6)


def ex_ante_line_pd(
    group: Merchants | Smes,
    who: np.ndarray,
    month_k: np.ndarray,
    shares: np.ndarray,
    base: np.ndarray | float,
    slope: float,
    month_start: np.ndarray,
    months: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """The probability of a line's first miss in its window as known at the application.

    The borrower's hazard in month ``k + o`` (``o`` = 0 .. the window's months; ``shares`` is
    the part of each month the miss can fall on) is ``_line_pd`` (``base``: the product's
    intercept plus the borrower's fixed terms) at its state then.  At an application
    in month ``k`` the state is known through month ``k`` (the state in effect at the
    decision: it drives every trace of that month from its first day); from there it walks
    on (steps ``N(0, STATE_DRIFT_SD)``) and, if the borrower has not been hit yet, may drop
    by a shock (each later month of the period with the probability its not yet having come
    leaves it).  The survival over the window is averaged over ``EX_ANTE_PATHS`` such futures
    (the same draws for every application, so the PD is a smooth, monotone function of what
    is known).  This is the oracle: the probability of default given everything that exists
    at the decision.  ``path_pd``, the same probability given the state path that then came,
    also knows the future and no model can reach it.
    """
    n_ahead = shares.shape[1]
    steps = rng.normal(0, STATE_DRIFT_SD, (EX_ANTE_PATHS, n_ahead - 1))
    walk = np.cumsum(steps, axis=1)[None, :, :]  # months k + 1 .. from month k's state
    u = rng.random(EX_ANTE_PATHS)[None, :]
    size = rng.uniform(*SHOCK_SIZE, EX_ANTE_PATHS)[None, :, None]
    per_month = BUSINESS_SHOCK_P / (months - 1)  # shock months are 1 .. months - 1
    ahead = np.arange(1, n_ahead)
    bases = np.broadcast_to(np.asarray(base, dtype=float), who.shape)
    out = np.empty(len(who))
    for lo in range(0, len(who), 1024):
        sl = slice(lo, lo + 1024)
        w, k = who[sl], month_k[sl]
        z = group.z_eff
        known = np.stack([z[w, np.maximum(k - back, 0)] for back in (2, 1, 0)], axis=1)
        not_yet = (group.shock_month[w] < 0) | (group.shock_month[w] > k)
        rate = per_month / (1 - per_month * k)  # per later month, none having come by month k
        shock_at = 1 + np.floor(u / rate[:, None])  # months after k; none after the period
        hit = not_yet[:, None] & (shock_at < (months - k)[:, None])
        drop = size * (hit[:, :, None] & (ahead[None, None, :] >= shock_at[:, :, None]))
        future = known[:, 2, None, None] + walk - drop  # (rows, paths, months k + 1 ..)
        past = np.broadcast_to(known[:, None, :], (*future.shape[:2], 3))
        path = np.concatenate([past, future], axis=2)  # months k - 2 .. k + n_ahead - 1
        latest, before, earliest = RECENT_WEIGHTS  # _recent_state's, on each month's path
        state = latest * path[:, :, 2:] + before * path[:, :, 1:-1] + earliest * path[:, :, :-2]
        month = k[:, None] + np.arange(n_ahead)[None, :]
        start = month_start[np.minimum(month, len(month_start) - 1)]
        tenure_short = (start - group.onboarded_day[w][:, None]) < TENURE_SHORT_DAYS
        pd_t = _line_pd(bases[sl][:, None, None], slope, state, tenure_short[:, None, :])
        log_keep = np.log1p(-np.minimum(_monthly_hazard(pd_t), 1 - 1e-12))
        log_keep = np.where((month < months)[:, None, :], log_keep, 0.0)  # no miss after the end
        log_survive = (shares[sl][:, None, :] * log_keep).sum(axis=2)
        out[sl] = 1 - np.exp(log_survive).mean(axis=1)
    return np.clip(out, 1e-6, 1 - 1e-6)


def loan_batches(world: World, apps: Applications) -> list[Batch]:
    """loan_applications, loan_drawdowns, loan_repayments and loan_performance rows."""
    cal = world.calendar
    n = len(apps.product)
    app_code = np.arange(n, dtype=np.int64) + 1
    no_account = apps.account < 0
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
                "account_id": np.where(no_account, 0, app_code[np.maximum(apps.account, 0)]),
            },
            apps.day,
            {"annual_rate": ~apps.approved, "account_id": no_account},
        )
    ]
    book = _run_accounts(world, apps)
    d, it = book.draws, book.items
    out.append(
        Batch(
            "loan_drawdowns",
            {
                "drawdown_id": np.arange(len(d["account"]), dtype=np.int64) + 1,
                "account_id": app_code[d["account"]],
                "ts": cal.to_us(d["day"], d["second"]),
                "amount": d["amount"],
                "term_months": d["term"],
            },
            d["day"],
        )
    )
    n_days = cal.n_days
    unpaid = it["unpaid"]
    dpd = np.where(unpaid, n_days - 1 - it["due"], np.maximum(it["paid_day"] - it["due"], 0))
    deliver = np.where(unpaid, n_days - 1, it["paid_day"])
    paid_ts = cal.to_us(np.where(unpaid, 0, it["paid_day"]), it["paid_second"])
    order = np.lexsort((it["draw"], it["due"]))
    out.append(
        Batch(
            "loan_repayments",
            {
                "schedule_id": np.arange(len(order), dtype=np.int64)[order] + 1,
                "account_id": app_code[it["account"]][order],
                "due_date": cal.to_us(it["due"])[order],
                "amount_due": it["amount_due"][order],
                "paid_at": paid_ts[order],
                "amount_paid": np.where(unpaid, 0.0, it["amount_due"])[order],
                "days_past_due": dpd[order].astype(np.int32),
            },
            deliver[order],
            {"paid_at": unpaid[order]},
        )
    )
    out.append(_performance_tape(world, apps, book, app_code))
    return out


@dataclass
class _Book:
    """The accepted drawdowns, their schedule items and each account's line history."""

    draws: dict[str, np.ndarray]
    items: dict[str, np.ndarray]
    reviews: dict[str, np.ndarray]  # account, day, effective line
    arrears_day: np.ndarray  # per application index: first missed due day of its account


def _proposals(world: World, apps: Applications, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Drawdowns borrowers would like to make: one soon after each approval (always for a
    personal loan's future defaulter), a few more later, and a merchant's or an SME's distress
    drawdown of its whole line the day before its line's default; the line's available limit
    decides what is paid.  A line's drawdowns before the default do not depend on it (its
    future default must not show in the behaviour the next review reads: only the
    borrower's state, which the oracle knows too, drives both)."""
    n_days = world.calendar.n_days
    acc = np.flatnonzero(apps.approved)
    # a review (an approval of an existing line) brings fewer and smaller drawdowns than an
    # opening, the fewer the more often the borrower's line is reviewed
    review = apps.account[acc] != acc
    per_year = np.array([1.0, 2.0, 6.0])[apps.product[acc]] * world.config.application_rate
    intensity = np.where(review, np.minimum(1.0, 4.0 / per_year), 1.0)
    ever = (apps.default_month >= 0) & (apps.product == PERSONAL)  # a loan that will default
    first = ever[acc] | (rng.random(len(acc)) < 0.85 * intensity)
    n_more = rng.poisson(1.2 * intensity)
    opens = acc[(apps.account[acc] == acc) & (apps.product[acc] != PERSONAL)]
    distressed = opens[apps.arrears[opens] < n_days]  # lines that default in the period
    p_app = np.concatenate([acc[first], np.repeat(acc, n_more), distressed])
    is_first = np.arange(len(p_app)) < first.sum()
    is_distress = np.arange(len(p_app)) >= len(p_app) - len(distressed)
    opening = apps.account[p_app] == p_app
    book = apps.day[p_app]
    p_day = np.where(
        is_first,
        book + apps.draw_delay[p_app],
        book + 10 + (rng.random(len(p_app)) * np.maximum(n_days - book - 10, 1)).astype(np.int64),
    )
    p_day = np.where(is_distress, apps.arrears[p_app] - 1, p_day)
    share = np.where(
        is_first & opening,
        rng.uniform(0.3, 0.8, len(p_app)),
        np.where(opening, rng.uniform(0.05, 0.2, len(p_app)), rng.uniform(0.1, 0.4, len(p_app))),
    )
    share = np.where(is_distress, 1.0, share)
    prod = apps.product[p_app]
    term = np.zeros(len(p_app), np.int64)
    needed = apps.default_month[p_app] - 2
    for p, terms in TERMS.items():
        k = prod == p
        term[k] = rng.choice(terms, int(k.sum()))
        # a defaulter's first drawdown still runs when it stops paying, so the tape shows it
        short = k & is_first & ever[p_app] & (term < needed)
        longer = np.array(sorted(terms))
        term[short] = longer[np.minimum(np.searchsorted(longer, needed[short]), len(longer) - 1)]
    term = np.where(is_distress, 12, term)  # the distress drawdown's instalments fall due
    k = len(p_app)
    return {
        "app": p_app,
        "day": p_day,
        "share": share,
        "term": term,
        "second": 9 * 3600 + rng.integers(0, 12 * 3600, k),
        "late_u": rng.random((k, 12)),
        # most late payments come within 25 days; one in ten 31-75 days late (the line is
        # frozen at 30 days past due and unfrozen once paid: a cure)
        "late_by": np.where(
            rng.random((k, 12)) < 0.1,
            rng.integers(31, 76, (k, 12)),
            rng.integers(1, 26, (k, 12)),
        ),
        "early_by": rng.integers(0, 6, (k, 12)),
        "paid_second": 7 * 3600 + rng.integers(0, 14 * 3600, (k, 12)),
    }


def _run_accounts(world: World, apps: Applications) -> _Book:
    """Each account's reviews and drawdowns in time order, within its available limit.

    A review sets the line to the approved limit, never below the principal owed (a decrease
    stops at the drawn balance); a drawdown takes the requested share of the line, cut to the
    available limit (line - principal owed), and is skipped below ``MIN_DRAW`` or once the
    account is in arrears (from its first missed due day on, nothing is paid or drawn).
    """
    cal = world.calendar
    n_days = cal.n_days
    rng = rng_for(world.config.seed, LOANS, 1)
    prop = _proposals(world, apps, rng)
    approved = np.flatnonzero(apps.approved)
    account_of = apps.account
    arrears = np.full(len(apps.product), NEVER)
    np.minimum.at(arrears, account_of[approved], apps.arrears[approved])
    p_acc = account_of[prop["app"]]
    # days from a drawdown to its j-th instalment: offsets[j - 1] (terms are at most 12)
    offsets = instalment_due(0, np.arange(1, 13)).tolist()
    late_p = sigmoid(-3.2 - 1.2 * apps.state)
    # events per account in time order: reviews (kind 0) before drawdowns (kind 1) on a day
    ev_acc = np.concatenate([account_of[approved], p_acc])
    ev_day = np.concatenate([apps.day[approved], prop["day"]])
    ev_kind = np.concatenate([np.zeros(len(approved), np.int64), np.ones(len(p_acc), np.int64)])
    ev_ref = np.concatenate([approved, np.arange(len(p_acc))])
    order = np.lexsort((ev_ref, ev_kind, ev_day, ev_acc))
    draws: dict[str, list[float]] = {k: [] for k in ("account", "app", "day", "amount", "term")}
    draws["second"] = []
    items: dict[str, list[float]] = {
        k: [] for k in ("draw", "account", "due", "principal", "amount_due", "paid_day")
    }
    items["paid_second"] = []
    items["unpaid"] = []
    reviews: dict[str, list[float]] = {"account": [], "day": [], "line": []}
    current = -1
    line = owed = 0.0
    repaid: list[tuple[int, float]] = []  # heap of (paid day, principal)
    frozen: list[tuple[int, int]] = []  # (from, to): an instalment 30+ days past due
    for e in order.tolist():
        a, day, ref = int(ev_acc[e]), int(ev_day[e]), int(ev_ref[e])
        if a != current:
            current, line, owed, repaid, frozen = a, 0.0, 0.0, [], []
        while repaid and repaid[0][0] <= day:
            owed -= heapq.heappop(repaid)[1]
        if ev_kind[e] == 0:
            line = max(float(apps.limit[ref]), np.ceil(round(owed, 2) / 100) * 100)
            reviews["account"].append(a)
            reviews["day"].append(day)
            reviews["line"].append(line)
            continue
        available = np.floor((line - owed) * 100) / 100
        blocked = any(start <= day < end for start, end in frozen)
        if day >= n_days or day >= arrears[a] or available < MIN_DRAW or blocked:
            continue
        app = int(prop["app"][ref])
        amount = min(round(line * float(prop["share"][ref]), 2), available)
        term = int(prop["term"][ref])
        draw_no = len(draws["account"])
        for key, value in (
            ("account", a), ("app", app), ("day", day), ("amount", amount), ("term", term),
            ("second", int(prop["second"][ref])),
        ):  # fmt: skip
            draws[key].append(value)
        owed += amount
        rate = float(apps.rate[app])
        for j in range(1, term + 1):
            due = day + offsets[j - 1]
            if due >= n_days:
                break
            principal = amount / term
            late = prop["late_u"][ref, j - 1] < late_p[app]
            paid = (
                due + int(prop["late_by"][ref, j - 1])
                if late
                else due - int(prop["early_by"][ref, j - 1])
            )
            paid = max(paid, day + 1)
            unpaid = due >= arrears[a] or paid >= n_days
            if not unpaid:
                heapq.heappush(repaid, (paid, principal))
            if paid - due >= FROZEN_DPD:
                frozen.append((due + FROZEN_DPD, paid))
            for key, value in (
                ("draw", draw_no), ("account", a), ("due", due), ("principal", principal),
                ("amount_due", round(principal + amount * (1 - (j - 1) / term) * rate / 12, 2)),
                ("paid_day", paid), ("paid_second", int(prop["paid_second"][ref, j - 1])),
                ("unpaid", unpaid),
            ):  # fmt: skip
                items[key].append(value)
    return _Book(
        draws=_arrays(draws, {"amount": np.float64}),
        items=_arrays(items, {"principal": np.float64, "amount_due": np.float64, "unpaid": bool}),
        reviews=_arrays(reviews, {"line": np.float64}),
        arrears_day=arrears,
    )


def _arrays(columns: dict[str, list[float]], types: dict[str, type]) -> dict[str, np.ndarray]:
    return {k: np.array(v, dtype=types.get(k, np.int64)) for k, v in columns.items()}


def _repaid_month(
    cal: Calendar,
    apps: Applications,
    accounts: np.ndarray,
    pos: np.ndarray,
    items: dict[str, np.ndarray],
    n_days: int,
) -> np.ndarray:
    """Per account: the month its personal loan was repaid in full (its last instalment
    paid), or ``NEVER`` (a line, a loan with an instalment unpaid or still to come)."""
    n_acc = len(accounts)
    open_items = np.zeros(n_acc, np.int64)
    last_paid = np.zeros(n_acc, np.int64)
    acc = pos[items["account"]]
    unpaid = items["unpaid"] | (items["paid_day"] >= n_days)
    np.add.at(open_items, acc[unpaid], 1)
    np.maximum.at(last_paid, acc[~unpaid], items["paid_day"][~unpaid])
    has_items = np.zeros(n_acc, bool)
    has_items[acc] = True
    repaid = (apps.product[accounts] == PERSONAL) & has_items & (open_items == 0)
    return np.where(repaid, cal.month_of(np.minimum(last_paid, n_days - 1)), NEVER)


def _performance_tape(world: World, apps: Applications, book: _Book, app_code: np.ndarray) -> Batch:
    """Month-end tape per account: line, balance, days past due, status, charge-off.

    From its first missed due day ``D`` a delinquent balance accrues interest at the
    account's rate (``outstanding = principal * (1 + rate * (t - D) / 365)``), the one way a
    balance exceeds its line, bounded by charge-off: at ``D + CHARGE_OFF_DPD`` the balance is
    written off (``charged_off``), ``RECOVERY_RATE`` of it recovered, and the account's tape
    ends with that ``charged_off`` row.  A line 30+ days past due at month end is frozen.
    """
    cal = world.calendar
    n_days = cal.n_days
    month_end = cal.month_end_days()
    n_months = len(month_end)
    d, it, rv = book.draws, book.items, book.reviews
    accounts = np.unique(rv["account"])
    pos = np.full(len(apps.product), -1)
    pos[accounts] = np.arange(len(accounts))
    n_acc = len(accounts)
    line = np.full((n_acc, n_months), np.nan)
    line[pos[rv["account"]], cal.month_of(rv["day"])] = rv["line"]  # last review of a month wins
    filled = np.where(np.isnan(line), -1, np.arange(n_months)[None, :])
    filled = np.maximum.accumulate(filled, axis=1)
    line = np.where(filled >= 0, np.take_along_axis(line, np.maximum(filled, 0), axis=1), 0.0)
    opened = np.full(n_acc, NEVER)
    np.minimum.at(opened, pos[rv["account"]], rv["day"])
    drawn = np.zeros((n_acc, n_months))
    repaid = np.zeros((n_acc, n_months))
    np.add.at(drawn, (pos[d["account"]], cal.month_of(d["day"])), d["amount"])
    paid = ~it["unpaid"]
    paid_month = cal.month_of(np.minimum(it["paid_day"], n_days - 1))
    np.add.at(repaid, (pos[it["account"][paid]], paid_month[paid]), it["principal"][paid])
    principal = np.maximum(np.cumsum(drawn, axis=1) - np.cumsum(repaid, axis=1), 0)
    dpd = np.zeros((n_acc, n_months), np.int64)
    for j, me in enumerate(month_end.tolist()):
        overdue = (it["due"] <= me) & (it["unpaid"] | (it["paid_day"] > me))
        np.maximum.at(dpd[:, j], pos[it["account"][overdue]], me - it["due"][overdue])
    # first missed due day and charge-off day per account
    first_missed = np.full(n_acc, NEVER)
    missed = it["due"] >= book.arrears_day[it["account"]]
    np.minimum.at(first_missed, pos[it["account"][missed]], it["due"][missed])
    charge_off = np.where(first_missed < NEVER, first_missed + CHARGE_OFF_DPD, NEVER)
    last_review = np.zeros(n_acc, np.int64)
    np.maximum.at(last_review, pos[rv["account"]], np.arange(len(rv["account"])))
    rate_app = np.zeros(len(apps.product), np.int64)
    rate_app[d["account"]] = d["app"]  # the rate of the account's latest drawdown
    rate = apps.rate[rate_app[accounts]]
    late_days = np.clip(month_end[None, :] - first_missed[:, None], 0, CHARGE_OFF_DPD)
    balance = principal * (1 + rate[:, None] * late_days / 365)
    co_month = np.where(
        charge_off < n_days, cal.month_of(np.minimum(charge_off, n_days - 1)), NEVER
    )
    months = np.arange(n_months)[None, :]
    is_co = months == co_month[:, None]
    # a personal loan (one account per loan) is closed once repaid: its tape ends with the
    # month-end row of its last instalment (a revolving line stays open at a zero balance)
    last_month = np.minimum(co_month, _repaid_month(cal, apps, accounts, pos, it, n_days))
    keep = (month_end[None, :] >= opened[:, None]) & (months <= last_month[:, None])
    rows_acc, rows_m = np.nonzero(keep)
    co_row = is_co[rows_acc, rows_m]
    bal = np.round(balance[rows_acc, rows_m], 2)
    status = np.where(co_row, 2, np.where(dpd[rows_acc, rows_m] >= FROZEN_DPD, 1, 0))
    snap = month_end[rows_m]
    return Batch(
        "loan_performance",
        {
            "account_id": app_code[accounts[rows_acc]],
            "snapshot_date": cal.to_us(snap),
            "credit_limit": line[rows_acc, rows_m],
            "outstanding": np.where(co_row, 0.0, bal),
            "days_past_due": dpd[rows_acc, rows_m].astype(np.int32),
            "status": status.astype(np.int64),
            "charged_off": np.where(co_row, bal, 0.0),
            "recovered": np.where(co_row, np.round(bal * RECOVERY_RATE, 2), 0.0),
        },
        snap.astype(np.int64),
    )
