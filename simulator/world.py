"""The simulated ecosystem's entities, their latent creditworthiness and their shocks.

Every entity has a latent score ``z`` (higher = more creditworthy).  Its monthly effective
state ``z_eff[:, month]`` adds a slow drift and, for some entities, a persistent shock
(a customer's income shock, a merchant's or SME's turnover collapse).  All observable
behaviour of a month is driven by that month's ``z_eff``; the true PD of an application is a
function of the state of the months before it (see :mod:`simulator.loans`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.calendar import Calendar
from simulator.config import SimConfig
from simulator.landing import INDUSTRIES, Batch
from yidai.core.contracts import MALL_CATEGORIES, MCC_CODES, MERCHANT_TYPES, RISKY_MCCS

MCC_LIST = tuple(MCC_CODES)
MCC_LOG_TICKET = {
    "5812": np.log(70),
    "5411": np.log(130),
    "5399": np.log(45),
    "5541": np.log(260),
    "5311": np.log(320),
    "5912": np.log(85),
    "5732": np.log(1300),
    "5944": np.log(2200),
    "7995": np.log(180),
    "6051": np.log(900),
    "4121": np.log(40),
    "5999": np.log(160),
}
TYPE_MCC = {
    "restaurant": "5812",
    "supermarket": "5411",
    "general_store": "5399",
    "gas_station": "5541",
}
OTHER_MCCS = ("5311", "5912", "5732", "5944", "7995", "6051", "4121", "5999")
OTHER_MCC_P = np.array([0.14, 0.16, 0.14, 0.1, 0.08, 0.06, 0.14, 0.18])
BILL_CATEGORY_P = np.array([0.95, 0.85, 0.5, 0.2, 0.06, 0.25])  # has the bill, by category
BILL_LOG_AMOUNT = np.log(np.array([90.0, 220.0, 120.0, 1800.0, 900.0, 150.0]))
# an SME's monthly bills: telecom, power, water, tax, social insurance ("other")
STATE_DRIFT_SD = 0.07  # monthly random-walk step of an entity's latent state
SHOCK_SIZE = (1.2, 2.2)  # a shock lowers the state by a uniform draw from this range
BUSINESS_SHOCK_P = 0.12  # share of merchants and SMEs hit by one shock over the period
SME_BILLS = np.array([0, 1, 1, 4, 5])
SME_BILL_DUE_DAY = np.array([15, 18, 22, 15, 5])
MALL_LOG_TICKET = np.log(np.array([1800, 260, 420, 110, 210, 70, 650, 5200, 900], dtype=float))


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def refund_p(zm: np.ndarray) -> np.ndarray:
    """Chance a card payment at a shop in state ``zm`` is refunded (by other banks' cards)."""
    return sigmoid(-3.6 - 1.4 * zm)


def chargeback_p(zm: np.ndarray) -> np.ndarray:
    """Chance a card payment at a shop in state ``zm`` is charged back weeks later."""
    return sigmoid(-5.4 - 1.5 * zm)


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """A generator fully determined by the seed and a path of integer keys."""
    return np.random.default_rng([seed, *keys])


# Stream keys for rng_for; one per independent random stream.
ENTITIES, CUSTOMER_MONTH, MERCHANT_MONTH, SME_MONTH, SKIM_PLAN, LOANS, DEFECTS, MISC = range(8)


def _opened_days(
    rng: np.random.Generator, n: int, new_share: float, n_days: int, mean_years: float
) -> np.ndarray:
    """Relationship start day: most before the period, a few joining during it.

    Newcomers join at the same pace over the whole period, its last months included: a
    cut-off before the end (there was one at ``n_days - 90``) emptied the young end of the
    relationship-age distribution in the last months, so the monitoring saw the book age.
    """
    before = -(30 + rng.exponential(mean_years * 365, n)).astype(np.int64)
    new = rng.random(n) < new_share
    joined = rng.integers(0, max(n_days, 1), n)
    return np.where(new, joined, before)


def _effective_state(
    rng: np.random.Generator, z: np.ndarray, months: int, shock_p: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Monthly ``z_eff`` (drift plus shock), the shock month (-1 if none) and its size.

    The drift is a random walk with steps ``N(0, STATE_DRIFT_SD)``; with probability
    ``shock_p`` the state drops once by ``U(SHOCK_SIZE)`` in a month drawn uniformly from
    ``1 .. months - 1`` (the law the ex-ante line PD of ``simulator.loans`` integrates over).
    """
    n = len(z)
    drift = np.cumsum(rng.normal(0, STATE_DRIFT_SD, (n, months)), axis=1)
    shocked = rng.random(n) < shock_p
    shock_month = np.where(shocked, rng.integers(1, months, n), -1)
    shock_size = np.where(shocked, rng.uniform(*SHOCK_SIZE, n), 0.0)
    after = (np.arange(months)[None, :] >= shock_month[:, None]) & shocked[:, None]
    z_eff = z[:, None] + drift - shock_size[:, None] * after
    return z_eff.astype(np.float32), shock_month, shock_size


@dataclass
class Customers:
    n: int
    z: np.ndarray
    z_eff: np.ndarray
    shock_month: np.ndarray
    income: np.ndarray
    age: np.ndarray
    city: np.ndarray
    opened_day: np.ndarray
    level: np.ndarray  # log spending level
    n_cards: np.ndarray
    card_offset: np.ndarray
    card_customer: np.ndarray
    card_type: np.ndarray
    card_issued_day: np.ndarray
    payday: np.ndarray
    bill_due_day: np.ndarray  # (n, 6)
    has_bill: np.ndarray  # (n, 6)
    favourites: np.ndarray  # (n, 3) merchant indices
    salary: np.ndarray


@dataclass
class Merchants:
    n: int
    z: np.ndarray
    z_eff: np.ndarray
    shock_month: np.ndarray
    mtype: np.ndarray
    mcc: np.ndarray  # index into MCC_LIST
    city: np.ndarray
    onboarded_day: np.ndarray
    weight: np.ndarray  # (n, months) relative business volume
    n_terminals: np.ndarray
    terminal_offset: np.ndarray
    terminal_merchant: np.ndarray
    pool: np.ndarray  # size of the merchant's pool of other-bank cards
    closed_p: np.ndarray  # (n, months) chance the shop is closed on a day
    risky: np.ndarray


@dataclass
class Smes:
    n: int
    z: np.ndarray
    z_eff: np.ndarray
    shock_month: np.ndarray
    industry: np.ndarray
    city: np.ndarray
    onboarded_day: np.ndarray
    weight: np.ndarray  # (n, months)
    volatility: np.ndarray
    pool: np.ndarray  # number of client counterparties
    seller: np.ndarray  # mall seller index of the SME's B2B shop, -1 if none


@dataclass
class Sellers:
    n: int
    b2b: np.ndarray
    sme: np.ndarray  # -1 if none
    category: np.ndarray
    joined_day: np.ndarray
    weight: np.ndarray  # (n, months)


@dataclass
class World:
    """All entities of one simulation plus the per-month aggregates the bank's rule uses."""

    config: SimConfig
    calendar: Calendar
    customers: Customers
    merchants: Merchants
    smes: Smes
    sellers: Sellers
    agg: dict[str, np.ndarray] = field(default_factory=dict)


def build_world(config: SimConfig, calendar: Calendar) -> World:
    """Draw every entity, its latent state over the period and its fixed traits."""
    rng = rng_for(config.seed, ENTITIES)
    months, n_days = calendar.months, calendar.n_days
    merchants = _merchants(rng, config.n_merchants, months, n_days)
    customers = _customers(rng, config.n_customers, months, n_days, merchants)
    smes = _smes(rng, config.n_smes, months, n_days)
    sellers = _sellers(rng, config.n_mall_sellers, months, smes)
    world = World(config, calendar, customers, merchants, smes, sellers)
    world.agg = {
        "cust_spend": np.zeros((customers.n, months), np.float32),
        "cust_bills": np.zeros((customers.n, months), np.float32),
        "cust_late": np.zeros((customers.n, months), np.float32),
        "merch_turnover": np.zeros((merchants.n, months), np.float32),
        "merch_chargebacks": np.zeros((merchants.n, months), np.float32),
        "sme_inflow": np.zeros((smes.n, months), np.float32),
        "sme_late": np.zeros((smes.n, months), np.float32),
    }
    return world


def _volatility(z_eff: np.ndarray) -> np.ndarray:
    """Month-to-month turnover volatility: calm for the creditworthy, erratic otherwise."""
    return 0.04 + 0.45 * sigmoid(-2.0 * z_eff)


def _business_volume(
    rng: np.random.Generator,
    z: np.ndarray,
    z_eff: np.ndarray,
    shock_month: np.ndarray,
    shock_size: np.ndarray,
    size: np.ndarray,
) -> np.ndarray:
    """Monthly business volume of merchants or SMEs, ``(n, months)``.

    Level and growth follow the latent score; the month's level also follows the slow drift
    of the effective state (a decline shows as a falling trend), volatility follows the
    month's state, and a shock collapses the volume over the following months.
    """
    n, months = z_eff.shape
    t = np.arange(months)[None, :]
    growth = 0.03 * z + rng.normal(0, 0.004, n)
    shocked = (shock_month[:, None] >= 0) & (t >= shock_month[:, None])
    drift = 0.6 * (z_eff.astype(np.float64) - z[:, None] + shock_size[:, None] * shocked)
    noise = rng.normal(0, 1, (n, months)) * _volatility(z_eff.astype(np.float64))
    collapse = np.where(
        shocked, np.maximum(np.exp(-0.35 * (t - shock_month[:, None] + 1)), 0.25), 1.0
    )
    weight = np.exp(size[:, None] + 0.15 * z[:, None] + growth[:, None] * t + drift + noise)
    return (weight * collapse).astype(np.float32)


def _merchants(rng: np.random.Generator, n: int, months: int, n_days: int) -> Merchants:
    z = rng.normal(0, 1, n)
    z_eff, shock_month, shock_size = _effective_state(rng, z, months, BUSINESS_SHOCK_P)
    mtype = rng.choice(len(MERCHANT_TYPES), n, p=[0.3, 0.15, 0.2, 0.07, 0.28])
    other_mcc = rng.choice(len(OTHER_MCCS), n, p=OTHER_MCC_P)
    type_mcc = np.array([MCC_LIST.index(TYPE_MCC.get(t, "5999")) for t in MERCHANT_TYPES])
    other_codes = np.array([MCC_LIST.index(code) for code in OTHER_MCCS])
    is_other = np.array(MERCHANT_TYPES)[mtype] == "other"
    mcc = np.where(is_other, other_codes[other_mcc], type_mcc[mtype])
    size = rng.normal(0, 0.6, n)
    weight = _business_volume(rng, z, z_eff, shock_month, shock_size, size)
    n_terminals = 1 + rng.binomial(2, 0.3, n)
    terminal_offset = np.concatenate([[0], np.cumsum(n_terminals)[:-1]])
    risky = np.isin(np.array(MCC_LIST)[mcc], RISKY_MCCS)
    return Merchants(
        n=n,
        z=z,
        z_eff=z_eff,
        shock_month=shock_month,
        mtype=mtype,
        mcc=mcc,
        city=rng.choice(4, n, p=[0.15, 0.3, 0.35, 0.2]),
        onboarded_day=_opened_days(rng, n, 0.05, n_days, 3.0),
        weight=weight,
        n_terminals=n_terminals,
        terminal_offset=terminal_offset,
        terminal_merchant=np.repeat(np.arange(n), n_terminals),
        pool=(15 + 400 * np.exp(size) * sigmoid(1.8 * z)).astype(np.int64),
        closed_p=(sigmoid(-3.1 - 1.8 * z_eff)).astype(np.float32),
        risky=risky,
    )


def _customers(
    rng: np.random.Generator, n: int, months: int, n_days: int, merchants: Merchants
) -> Customers:
    z = rng.normal(0, 1, n)
    z_eff, shock_month, _ = _effective_state(rng, z, months, 0.14)
    income_latent = 0.45 * z + rng.normal(0, 0.9, n)
    cuts = np.quantile(income_latent, [0.2, 0.45, 0.75, 0.9])
    income = np.searchsorted(cuts, income_latent)
    n_cards = 1 + (rng.random(n) < 0.45)
    card_offset = np.concatenate([[0], np.cumsum(n_cards)[:-1]])
    card_customer = np.repeat(np.arange(n), n_cards)
    opened = _opened_days(rng, n, 0.06, n_days, 4.0)
    opened_c = opened[card_customer]
    issued = np.where(
        opened_c >= 0,
        opened_c,
        opened_c + (rng.random(len(card_customer)) * -opened_c).astype(np.int64),
    )
    # favourite shops: non-risky merchants that exist from the start, by size
    ok = (~merchants.risky) & (merchants.onboarded_day < 0)
    if not ok.any():
        ok = ~merchants.risky
    candidates = np.flatnonzero(ok)
    cum = np.cumsum(merchants.weight[candidates, 0].astype(np.float64))
    fav = candidates[
        np.searchsorted(cum, rng.random((n, 3)) * cum[-1], side="right").clip(
            0, len(candidates) - 1
        )
    ]
    salary_base = np.exp(
        np.log(np.array([3500, 5500, 8000, 13000, 24000]))[income] + rng.normal(0, 0.2, n)
    )
    return Customers(
        n=n,
        z=z,
        z_eff=z_eff,
        shock_month=shock_month,
        income=income,
        age=rng.choice(5, n, p=[0.12, 0.3, 0.27, 0.18, 0.13]),
        city=rng.choice(4, n, p=[0.2, 0.3, 0.3, 0.2]),
        opened_day=opened,
        level=0.22 * (income - 2) + rng.normal(0, 0.3, n),
        n_cards=n_cards,
        card_offset=card_offset,
        card_customer=card_customer,
        card_type=(rng.random(len(card_customer)) < 0.4).astype(np.int64),
        card_issued_day=issued,
        payday=rng.integers(5, 16, n),
        bill_due_day=rng.integers(14, 28, (n, 6)),
        has_bill=rng.random((n, 6)) < BILL_CATEGORY_P[None, :],
        favourites=fav,
        salary=salary_base,
    )


def _smes(rng: np.random.Generator, n: int, months: int, n_days: int) -> Smes:
    z = rng.normal(0, 1, n)
    z_eff, shock_month, shock_size = _effective_state(rng, z, months, BUSINESS_SHOCK_P)
    size = rng.normal(0, 0.5, n)
    weight = _business_volume(rng, z, z_eff, shock_month, shock_size, size)
    return Smes(
        n=n,
        z=z,
        z_eff=z_eff,
        shock_month=shock_month,
        industry=rng.integers(0, len(INDUSTRIES), n),
        city=rng.choice(4, n, p=[0.2, 0.3, 0.3, 0.2]),
        onboarded_day=_opened_days(rng, n, 0.05, n_days, 3.0),
        weight=weight,
        volatility=_volatility(z),
        pool=(3 + 60 * sigmoid(1.8 * z) * np.exp(size)).astype(np.int64),
        seller=np.full(n, -1, np.int64),
    )


def _sellers(rng: np.random.Generator, n: int, months: int, smes: Smes) -> Sellers:
    b2b = rng.random(n) < 0.3
    b2b[0] = False  # at least one shop of each market
    b2b[1] = True
    b2b_idx = np.flatnonzero(b2b)
    linked = b2b_idx[rng.random(len(b2b_idx)) < 0.7][: smes.n]
    sme = np.full(n, -1, np.int64)
    sme[linked] = rng.permutation(smes.n)[: len(linked)]
    smes.seller[sme[linked]] = linked
    category = rng.integers(0, len(MALL_CATEGORIES), n)
    b2b_cats = np.array([MALL_CATEGORIES.index(c) for c in ("industrial", "office", "electronics")])
    category[b2b] = b2b_cats[rng.integers(0, len(b2b_cats), int(b2b.sum()))]
    weight = np.exp(rng.normal(0, 0.7, n))[:, None] * np.ones((1, months))
    weight[linked] = smes.weight[sme[linked]]
    joined = np.where(sme >= 0, np.maximum(smes.onboarded_day[np.maximum(sme, 0)], -400), -400)
    return Sellers(
        n=n,
        b2b=b2b,
        sme=sme,
        category=category,
        joined_day=joined.astype(np.int64),
        weight=weight.astype(np.float32),
    )


def master_batches(world: World) -> list[Batch]:
    """The master sources: full snapshot on day 0, later joiners on their joining day."""
    cal = world.calendar
    c, m, s, sel = world.customers, world.merchants, world.smes, world.sellers

    def deliver(days: np.ndarray) -> np.ndarray:
        return np.maximum(days, 0).astype(np.int64)

    def ts(days: np.ndarray, salt: int) -> np.ndarray:
        seconds = (np.arange(len(days)) * 7919 + salt) % 36_000 + 28_800
        return cal.to_us(days, seconds)

    card_codes = np.arange(len(c.card_customer))
    customer_us = ts(c.opened_day, 1)
    merchant_us = ts(m.onboarded_day, 3)
    sme_us = ts(s.onboarded_day, 5)
    # a card issued on the opening day comes a minute after the account
    card_us = np.where(
        c.card_issued_day == c.opened_day[c.card_customer],
        customer_us[c.card_customer] + 60_000_000,
        ts(c.card_issued_day, 2),
    )
    seller_us = np.where(
        sel.sme >= 0, sme_us[np.maximum(sel.sme, 0)] + 120_000_000, ts(sel.joined_day, 6)
    )
    return [
        Batch(
            "customers",
            {
                "customer_id": np.arange(c.n),
                "opened_at": customer_us,
                "age_band": c.age,
                "city_tier": c.city,
                "income_band": c.income,
            },
            deliver(c.opened_day),
        ),
        Batch(
            "cards",
            {
                "card_token": card_codes,
                "customer_id": c.card_customer,
                "issued_at": card_us,
                "card_type": c.card_type,
            },
            deliver(c.card_issued_day),
        ),
        Batch(
            "merchants",
            {
                "merchant_id": np.arange(m.n),
                "onboarded_at": merchant_us,
                "merchant_type": m.mtype,
                "mcc": m.mcc,
                "city_tier": m.city,
                "settlement_account": np.arange(m.n),
            },
            deliver(m.onboarded_day),
        ),
        Batch(
            "terminals",
            {
                "terminal_id": np.arange(len(m.terminal_merchant)),
                "merchant_id": m.terminal_merchant,
                "installed_at": merchant_us[m.terminal_merchant] + 60_000_000,
            },
            deliver(m.onboarded_day[m.terminal_merchant]),
        ),
        Batch(
            "smes",
            {
                "sme_id": np.arange(s.n),
                "onboarded_at": sme_us,
                "industry": s.industry,
                "city_tier": s.city,
            },
            deliver(s.onboarded_day),
        ),
        Batch(
            "mall_sellers",
            {
                "seller_id": np.arange(sel.n),
                "joined_at": seller_us,
                "seller_type": sel.b2b.astype(np.int64),
                "sme_id": np.maximum(sel.sme, 0),
                "category": sel.category,
            },
            deliver(sel.joined_day),
            {"sme_id": sel.sme < 0},
        ),
    ]
