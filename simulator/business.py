"""One month of merchants (other banks' cards at their POS, merchant cash-out fraud) and of
SMEs (receipts, supplier payments, payroll, bills, B2B mall orders).

A merchant's turnover level, trend and volatility, its closed days, refunds, chargebacks and
customer concentration follow its ``z_eff``; an SME's inflows, counterpart concentration,
on-time bills and B2B activity follow its own.
"""

from __future__ import annotations

import numpy as np

from simulator.calendar import US_PER_DAY, US_PER_SECOND, seconds_of_day
from simulator.events import (
    CH,
    PAY_BILL,
    PAY_E,
    PAY_IN,
    PAY_OUT,
    PAYER_SME,
    REF_POS,
    STATUS_APPROVED,
    STATUS_DECLINED,
    FraudLog,
    IdAlloc,
    choose_by_weight,
    fraud_reports,
    payment_batch,
    pick_channel,
    pos_batch,
)
from simulator.landing import Batch
from simulator.people import ENTRY_P, LOG_TICKET, SkimPlan, pos_followups
from simulator.world import (
    BILL_LOG_AMOUNT,
    MALL_LOG_TICKET,
    MERCHANT_MONTH,
    SKIM_PLAN,
    SME_BILL_DUE_DAY,
    SME_BILLS,
    SME_MONTH,
    World,
    refund_p,
    rng_for,
    sigmoid,
)

EXTERNAL_CARD_BASE = 1 << 40
CASH_OUT_CARD_BASE = 1 << 41
MAX_POOL = 60_000
CLIENT_BASE, SUPPLIER_BASE, STAFF_BASE, TAX_OFFICE = 5_000_000, 7_000_000, 9_000_000, 1_000_400


def skim_plan(world: World, month: int) -> SkimPlan:
    """The terminals skimmed in ``month`` and the window in which cards get copied."""
    cfg, cal, m = world.config, world.calendar, world.merchants
    rng = rng_for(cfg.seed, SKIM_PLAN, month)
    eligible = m.onboarded_day[m.terminal_merchant] < 0
    hit = np.flatnonzero(eligible & (rng.random(len(eligible)) < 0.004 * cfg.fraud_intensity))
    sl = cal.month_days(month)
    start = cal.to_us(rng.integers(sl.start, sl.stop, len(hit)), rng.integers(0, 86_400, len(hit)))
    end = start + rng.integers(7, 22, len(hit)) * US_PER_DAY
    return SkimPlan(hit.astype(np.int64), start, end)


def merchant_month(
    world: World, chunk: int, lo: int, hi: int, month: int, fraud_log: FraudLog
) -> list[Batch]:
    """Other banks' card payments at merchants ``lo..hi-1`` in ``month``, and cash-out."""
    cfg, cal, m = world.config, world.calendar, world.merchants
    rng = rng_for(cfg.seed, MERCHANT_MONTH, chunk, month)
    ids = IdAlloc(2, chunk, month)
    idx = np.arange(lo, hi)
    sl = cal.month_days(month)
    per_day = cfg.n_customers * cfg.pos_per_customer_month * cfg.external_pos_share / 30.0 / m.n
    rel = m.weight[idx, month] / m.weight[:, 0].mean()
    merchant = np.repeat(idx, rng.poisson(per_day * rel * cal.pos_weight[sl].sum()))
    k = len(merchant)
    day = cal.sample_days(rng, cal.pos_weight, month, k)
    keep = (day > m.onboarded_day[merchant]) & (rng.random(k) >= m.closed_p[merchant, month])
    merchant, day = merchant[keep], day[keep]
    k = len(merchant)
    zm = m.z_eff[merchant, month].astype(np.float64)
    night = rng.random(k) < sigmoid(-3.4 - 1.4 * zm)
    ts = cal.to_us(day, seconds_of_day(rng, night))
    pool = np.minimum(m.pool[merchant], MAX_POOL)
    # regulars come back often; a struggling shop lives off fewer of them
    concentration = 1.5 + 2.0 * sigmoid(-1.5 * zm)
    regular = (pool * rng.random(k) ** concentration).astype(np.int64)
    card = EXTERNAL_CARD_BASE + merchant * 65_536 + regular
    terminal = m.terminal_offset[merchant] + (rng.random(k) * m.n_terminals[merchant]).astype(
        np.int64
    )
    mcc = m.mcc[merchant]
    amount = np.exp(LOG_TICKET[mcc] + 0.12 * zm + rng.normal(0, 0.6, k)).clip(1.0, None)
    entry = rng.choice(4, k, p=ENTRY_P)
    status = np.where(rng.random(k) < 0.03, STATUS_DECLINED, STATUS_APPROVED)
    txn = ids.take("pos", k)
    none = np.full(k, -1)
    batches = [pos_batch(cal, txn, ts, card, none, merchant, terminal, mcc, amount, entry, status)]
    approved = status == STATUS_APPROVED

    ref, ref_amount, cb = pos_followups(
        rng, cal, ids, fraud_log, batches, txn, ts, card, none, merchant, terminal, mcc,
        amount, entry, approved, refund_p(zm), zm,
    )  # fmt: skip
    turnover = np.bincount(merchant[approved], weights=amount[approved], minlength=m.n)
    turnover -= np.bincount(merchant[ref], weights=ref_amount, minlength=m.n)
    world.agg["merch_turnover"][:, month] += turnover.astype(np.float32)
    world.agg["merch_chargebacks"][:, month] += np.bincount(merchant[cb], minlength=m.n)
    batches += _cash_out(world, rng, ids, idx, month, fraud_log)
    return batches


def _cash_out(
    world: World, rng: np.random.Generator, ids: IdAlloc, idx: np.ndarray, month: int, log: FraudLog
) -> list[Batch]:
    """A merchant swipes its own few cards at its own terminal for round sums, often at night."""
    cfg, cal, m = world.config, world.calendar, world.merchants
    z = m.z_eff[idx, month].astype(np.float64)
    p = 0.004 * cfg.fraud_intensity * 2 * sigmoid(-1.5 * z)
    culprits = idx[(rng.random(len(idx)) < p) & (m.onboarded_day[idx] < 0)]
    sl = cal.month_days(month)
    start = rng.integers(sl.start, sl.stop, len(culprits))
    n_swipes = rng.integers(5, 21, len(culprits))
    merchant = np.repeat(culprits, n_swipes)
    k = len(merchant)
    day = np.repeat(start, n_swipes) + rng.integers(0, 4, k)
    keep = day < cal.n_days
    merchant, day = merchant[keep], day[keep]
    k = len(merchant)
    ts = cal.to_us(day, seconds_of_day(rng, rng.random(k) < 0.6))
    card = CASH_OUT_CARD_BASE + merchant * 4 + rng.integers(0, 3, k)
    terminal = m.terminal_offset[merchant]
    amount = rng.choice(np.array([1000.0, 2000, 3000, 5000, 10_000, 20_000]), k)
    entry = rng.choice(4, k, p=[0.5, 0.0, 0.3, 0.2])
    txn = ids.take("pos", k)
    status = np.full(k, STATUS_APPROVED)
    world.agg["merch_turnover"][:, month] += np.bincount(
        merchant, weights=amount, minlength=m.n
    ).astype(np.float32)
    return [
        pos_batch(
            cal,
            txn,
            ts,
            card,
            np.full(k, -1),
            merchant,
            terminal,
            m.mcc[merchant],
            amount,
            entry,
            status,
        ),
        fraud_reports(rng, cal, ids, log, REF_POS, txn, "merchant_cash_out", ts, amount, 0.4, 30.0),
    ]


def sme_month(world: World, chunk: int, lo: int, hi: int, month: int) -> list[Batch]:
    """Receipts, supplier payments, payroll, bills and B2B purchases of SMEs ``lo..hi-1``."""
    cfg, cal, s = world.config, world.calendar, world.smes
    rng = rng_for(cfg.seed, SME_MONTH, chunk, month)
    ids = IdAlloc(3, chunk, month)
    idx = np.arange(lo, hi)
    n = len(idx)
    z = s.z_eff[idx, month].astype(np.float64)
    sl = cal.month_days(month)
    month_len = sl.stop - sl.start
    active = s.onboarded_day[idx] < sl.stop - 1
    biz_days = cal.biz_weight[sl].sum()
    batches: list[Batch] = []

    def keep_after_onboarding(who: np.ndarray, day: np.ndarray) -> np.ndarray:
        return (day > s.onboarded_day[who]) & (day < cal.n_days)

    # receipts from clients: volume follows the business weight, concentration the latent
    lam = 22.0 / 30.0 * s.weight[idx, month] * biz_days * active
    who = np.repeat(idx, rng.poisson(lam))
    day = cal.sample_days(rng, cal.biz_weight, month, len(who))
    ok = keep_after_onboarding(who, day)
    who, day = who[ok], day[ok]
    k = len(who)
    pool = np.minimum(s.pool[who], 999)
    concentration = 1.2 + 2.0 * sigmoid(-1.5 * z[who - lo])  # few big clients when weak
    client = CLIENT_BASE + who * 1000 + (pool * rng.random(k) ** concentration).astype(np.int64)
    amount = np.exp(np.log(4000) + rng.normal(0, 0.7, k))
    ts = cal.to_us(day, seconds_of_day(rng, np.zeros(k, bool)))
    channel = pick_channel(rng, k, {"online_banking": 0.5, "other": 0.3, "app": 0.2})
    batches.append(
        payment_batch(
            cal, ids.take("pay", k), ts, PAYER_SME, who, np.full(k, PAY_IN), amount, channel,
            np.full(k, -1), np.zeros(k, bool), client,
        )
    )  # fmt: skip
    world.agg["sme_inflow"][lo:hi, month] += np.bincount(
        who - lo, weights=amount, minlength=n
    ).astype(np.float32)

    # supplier payments (failures when cash is short) and a monthly payroll
    who = np.repeat(idx, rng.poisson(0.7 * lam * np.exp(-0.25 * z)))  # costs outrun receipts
    day = cal.sample_days(rng, cal.biz_weight, month, len(who))
    ok = keep_after_onboarding(who, day)
    who, day = who[ok], day[ok]
    k = len(who)
    zc = s.z_eff[who, month].astype(np.float64)
    amount = np.exp(np.log(3500) + rng.normal(0, 0.8, k))
    failed = rng.random(k) < sigmoid(-3.3 - 1.6 * zc)
    device = 8_000_000 + who
    ts = cal.to_us(day, seconds_of_day(rng, rng.random(k) < sigmoid(-3.5 - 0.6 * zc)))
    channel = pick_channel(rng, k, {"online_banking": 0.6, "app": 0.3, "mobile_banking": 0.1})
    batches.append(
        payment_batch(
            cal, ids.take("pay", k), ts, PAYER_SME, who, np.full(k, PAY_OUT), amount, channel,
            device, failed, SUPPLIER_BASE + who * 100 + rng.integers(0, 20, k),
        )
    )  # fmt: skip
    payer = idx[active & (sl.start + 9 > s.onboarded_day[idx])]
    k = len(payer)
    zp = s.z_eff[payer, month].astype(np.float64)
    amount = (
        0.35 * 22.0 * 4000 * np.exp(0.245) * s.weight[payer, 0] * np.exp(rng.normal(0, 0.05, k))
    )
    # payroll on the 10th, late when cash is short
    delay = (rng.random(k) < sigmoid(-2.0 - 1.5 * zp)) * rng.integers(1, 12, k)
    pay_day = np.minimum(sl.start + 9 + delay, sl.stop - 1)
    ts = cal.to_us(pay_day, 10 * 3600 + rng.integers(0, 3600, k))
    batches.append(
        payment_batch(
            cal, ids.take("pay", k), ts, PAYER_SME, payer, np.full(k, PAY_OUT), amount,
            np.full(k, CH["online_banking"]), 8_000_000 + payer, np.zeros(k, bool),
            STAFF_BASE + payer,
        )
    )  # fmt: skip

    # bills: telecom, power, water, tax and social insurance, each on its due day
    holder, which = np.nonzero(np.ones((n, len(SME_BILLS)), bool) & active[:, None])
    who = idx[holder]
    cat = SME_BILLS[which]
    zc = z[holder]
    due = sl.start + np.minimum(SME_BILL_DUE_DAY[which], month_len) - 1
    on_time = rng.random(len(who)) < sigmoid(1.9 + 2.2 * zc)
    late_by = 1 + np.minimum(rng.poisson(np.exp(1.9 - 0.6 * np.clip(zc, -3, 3))), 40)
    early = np.minimum(rng.integers(0, 8, len(who)), due - sl.start)  # never in a past month
    pay_day = np.where(on_time, due - early, due + late_by)
    ok = keep_after_onboarding(who, pay_day)
    who, cat, due, pay_day, on_time = who[ok], cat[ok], due[ok], pay_day[ok], on_time[ok]
    k = len(who)
    amount = (
        np.exp(BILL_LOG_AMOUNT[cat] + 1.2 + rng.normal(0, 0.3, k)) * s.weight[who, month] ** 0.5
    )
    ts = cal.to_us(pay_day, 9 * 3600 + rng.integers(0, 9 * 3600, k))
    batches.append(
        payment_batch(
            cal, ids.take("pay", k), ts, PAYER_SME, who, np.full(k, PAY_BILL), amount,
            np.full(k, CH["online_banking"]), 8_000_000 + who, np.zeros(k, bool),
            TAX_OFFICE + cat, cat, cal.epoch_day0 + due,
        )
    )  # fmt: skip
    world.agg["sme_late"][lo:hi, month] += np.bincount(
        who - lo, weights=~on_time, minlength=n
    ).astype(np.float32)

    # a few small e-payments (office supplies, fees)
    who = np.repeat(idx, rng.poisson(3.0 * active))
    day = cal.sample_days(rng, cal.biz_weight, month, len(who))
    ok = keep_after_onboarding(who, day)
    who, day = who[ok], day[ok]
    k = len(who)
    batches.append(
        payment_batch(
            cal, ids.take("pay", k), cal.to_us(day, 9 * 3600 + rng.integers(0, 9 * 3600, k)),
            PAYER_SME, who, np.full(k, PAY_E), np.exp(np.log(300) + rng.normal(0, 0.8, k)),
            np.full(k, CH["online_banking"]), 8_000_000 + who, np.zeros(k, bool),
            CLIENT_BASE - 10_000 + rng.integers(0, 5000, k),
        )
    )  # fmt: skip
    batches.append(_b2b_orders(world, rng, ids, idx, z, active, month))
    return batches


def _b2b_orders(
    world: World,
    rng: np.random.Generator,
    ids: IdAlloc,
    idx: np.ndarray,
    z: np.ndarray,
    active: np.ndarray,
    month: int,
) -> Batch:
    """SMEs buying from B2B sellers; sellers run by healthy SMEs get more orders."""
    cal, s, sel = world.calendar, world.smes, world.sellers
    lo = int(idx[0])
    sl = cal.month_days(month)
    lam = 2.5 / 30.0 * cal.biz_weight[sl].sum() * s.weight[idx, month] ** 0.5 * active
    who = np.repeat(idx, rng.poisson(lam))
    zc = z[who - lo]
    k = len(who)
    b2b = np.flatnonzero(sel.b2b)
    seller = choose_by_weight(rng, b2b, sel.weight[b2b, month], k)
    day = cal.sample_days(rng, cal.biz_weight, month, k)
    keep = (day > s.onboarded_day[who]) & (day > sel.joined_day[seller]) & (sel.sme[seller] != who)
    who, zc, seller, day = who[keep], zc[keep], seller[keep], day[keep]
    k = len(who)
    cat = sel.category[seller]
    amount = np.exp(MALL_LOG_TICKET[cat] + 0.8 + rng.normal(0, 0.8, k))
    instalment = rng.random(k) < sigmoid(-1.6 - 1.5 * zc)
    method = np.where(instalment, 2, np.where(rng.random(k) < 0.75, 1, 0))
    u = rng.random(k)
    status = np.where(u < 0.03, 1, np.where(u < 0.03 + sigmoid(-3.2 - 1.0 * zc), 2, 0))
    return Batch(
        "mall_orders",
        {
            "order_id": ids.take("order", k),
            "ts": cal.to_us(day, 8 * 3600 + rng.integers(0, 11 * 3600, k)),
            "buyer_type": np.ones(k, np.int64),
            "buyer_id": who,
            "seller_id": seller,
            "category": cat,
            "amount": np.round(amount, 2),
            "payment_method": method,
            "status": status,
        },
        day,
    )


_ = (US_PER_SECOND, PAY_E)
