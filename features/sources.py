"""Daily sources: each turns a warehouse table into rows of (entity_id, day, [dims], measures).

Every feature of kind ``agg``/``sql`` reads one source.  A source row of ``day`` D only holds
events with ``ts`` on D, so a feature as of D (``day <= D``) uses events strictly before
D + 1 day 00:00, and the daily build of D never sees later rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from yidai.core.contracts import RISKY_MCCS

RISKY = ", ".join(f"'{m}'" for m in RISKY_MCCS)
NIGHT = "hour(ts) < 6"
LOG_AMOUNT = "CAST(ln(amount) AS DECIMAL(18, 6))"

# The events scored by the payment fraud model, one row each: POS card transactions (the
# payer is the card) and outgoing online payments (the payer is the account holder).
FRAUD_EVENTS_SQL = """
SELECT 'pos' AS event_type, txn_id AS event_id, ts, card_token AS payer_id,
       terminal_id AS counterpart_id, merchant_id, mcc, amount, entry_mode,
       'pos' AS channel, CAST(NULL AS VARCHAR) AS device_id,
       CAST(NULL AS VARCHAR) AS payment_type
FROM pos_transactions WHERE status <> 'refund'
UNION ALL
SELECT 'payment', payment_id, ts, payer_id, counterparty_id, CAST(NULL AS VARCHAR),
       CAST(NULL AS VARCHAR), amount, CAST(NULL AS VARCHAR), channel, device_id, payment_type
FROM payments WHERE payment_type <> 'transfer_in'
"""
FRAUD_REF_TYPE = "CASE e.event_type WHEN 'pos' THEN 'pos' ELSE 'payment' END"

# Fraud reports joined to the event they refer to; ``ts`` is when the bank learnt of it.
_REPORTED_EVENTS_SQL = f"""
SELECT r.reported_at AS ts, e.counterpart_id, e.merchant_id
FROM fraud_reports r JOIN ({FRAUD_EVENTS_SQL}) e
  ON r.ref_id = e.event_id AND r.ref_type = {FRAUD_REF_TYPE}
"""
_RISK_SQL = f"""
SELECT ts, counterpart_id, merchant_id, 1 AS is_txn, 0 AS is_report FROM ({FRAUD_EVENTS_SQL})
UNION ALL
SELECT ts, counterpart_id, merchant_id, 0, 1 FROM ({_REPORTED_EVENTS_SQL})
"""
_PERFORMANCE_SQL = """
SELECT p.snapshot_date AS ts, p.credit_limit, p.outstanding, p.days_past_due,
       a.applicant_id, a.product
FROM loan_performance p JOIN loan_applications a ON a.application_id = p.account_id
"""
_REPAYMENTS_SQL = """
SELECT r.paid_at AS ts, r.days_past_due, a.applicant_id, a.product
FROM loan_repayments r JOIN loan_applications a ON a.application_id = r.account_id
WHERE r.paid_at IS NOT NULL
"""
_SME_SALES_SQL = """
SELECT o.ts, o.amount, o.status, s.sme_id
FROM mall_orders o JOIN mall_sellers s ON s.seller_id = o.seller_id
WHERE s.sme_id IS NOT NULL
"""


@dataclass(frozen=True)
class Source:
    """A daily pre-aggregation of one warehouse relation."""

    name: str
    entity: str
    relation: str  # table name or SQL query with a ``ts`` column
    entity_expr: str
    measures: tuple[tuple[str, str], ...]
    where: str = "TRUE"
    dims: tuple[str, ...] = field(default_factory=tuple)
    ts: str = "ts"
    # Money columns summed as DECIMAL: exact, so every build order gives the same bits.
    money: tuple[str, ...] = ("amount",)

    @property
    def _relation(self) -> str:
        return self.relation if " " not in self.relation.strip() else f"({self.relation})"

    def first_day_sql(self) -> str:
        """The first day with an event of the source (NULL when it has none)."""
        return f"SELECT min(CAST({self.ts} AS DATE)) FROM {self._relation} src WHERE ({self.where})"

    def daily_sql(self, lo: str, hi: str) -> str:
        """Daily rows for events with ``lo <= ts < hi`` (timestamps as SQL literals)."""
        rel = self._relation
        if self.money:
            casts = ", ".join(f"CAST({c} AS DECIMAL(18, 2)) AS {c}" for c in self.money)
            rel = f"(SELECT * REPLACE ({casts}) FROM {rel})"
        dims = "".join(f", {d}" for d in self.dims)
        measures = ", ".join(f"{expr} AS {name}" for name, expr in self.measures)
        return (
            f"SELECT {self.entity_expr} AS entity_id, CAST({self.ts} AS DATE) AS day{dims}, "
            f"{measures} FROM {rel} src WHERE ({self.where}) AND {self.entity_expr} IS NOT NULL "
            f"AND {self.ts} >= {lo} AND {self.ts} < {hi} GROUP BY ALL"
        )


# Card payments by other banks' cards (no customer of ours); approved ones, and our own.
_OFFUS = "customer_id IS NULL"
_OFFUS_APPROVED = f"status = 'approved' AND {_OFFUS}"
_ONUS_APPROVED = "status = 'approved' AND customer_id IS NOT NULL"


def _log_ticket_sum(condition: str) -> str:
    """The day's sum of log tickets of the payments matching ``condition`` (0 without)."""
    return f"coalesce(sum({LOG_AMOUNT}) FILTER (WHERE {condition}), 0)"


def _credit(entity: str, product: str) -> Source:
    return Source(
        name=f"{entity}_credit_tape",
        entity=entity,
        relation=_PERFORMANCE_SQL,
        entity_expr="applicant_id",
        where=f"product = '{product}'",
        money=("credit_limit", "outstanding"),
        measures=(
            ("credit_limit", "sum(credit_limit)"),
            ("outstanding", "sum(outstanding)"),
            ("max_dpd", "max(days_past_due)"),
            ("dpd30_accounts", "count_if(days_past_due >= 30)"),
        ),
    )


_SOURCE_LIST = [
    Source(
        name="customer_pos",
        entity="customer",
        relation="pos_transactions",
        entity_expr="customer_id",
        measures=(
            ("spend", "sum(CASE WHEN status = 'approved' THEN amount ELSE 0 END)"),
            ("spend_n", "count_if(status = 'approved')"),
            ("refund", "sum(CASE WHEN status = 'refund' THEN amount ELSE 0 END)"),
            (
                "night",
                f"sum(CASE WHEN status = 'approved' AND {NIGHT} THEN amount ELSE 0 END)",
            ),
            (
                "risky",
                f"sum(CASE WHEN status = 'approved' AND mcc IN ({RISKY}) THEN amount ELSE 0 END)",
            ),
            ("declined_n", "count_if(status = 'declined')"),
        ),
    ),
    Source(
        name="customer_pos_mcc",
        entity="customer",
        relation="pos_transactions",
        entity_expr="customer_id",
        where="status = 'approved'",
        dims=("mcc",),
        measures=(("spend_n", "count(*)"),),
    ),
    Source(
        name="customer_mall",
        entity="customer",
        relation="mall_orders",
        entity_expr="buyer_id",
        where="buyer_type = 'customer'",
        measures=(
            ("orders_n", "count(*)"),
            ("amount", "sum(CASE WHEN status <> 'cancelled' THEN amount ELSE 0 END)"),
            ("bad_n", "count_if(status <> 'paid')"),
            (
                "instalment",
                "sum(CASE WHEN payment_method = 'instalment'"
                " AND status <> 'cancelled' THEN amount ELSE 0 END)",
            ),
        ),
    ),
    Source(
        name="customer_bills",
        entity="customer",
        relation="payments",
        entity_expr="payer_id",
        where="payer_type = 'customer' AND payment_type = 'bill'",
        measures=(
            ("bills_n", "count(*)"),
            (
                "ontime_n",
                "count(*) FILTER (WHERE status = 'success' AND (due_date IS NULL"
                " OR CAST(ts AS DATE) <= due_date))",
            ),
            ("failed_n", "count_if(status = 'failed')"),
        ),
    ),
    _credit("customer", "personal"),
    # personal_credit_v2: bill punctuality, income stability, e支付 e-payments
    Source(
        name="customer_bill_timing",
        entity="customer",
        relation="payments",
        money=(),
        entity_expr="payer_id",
        where="payer_type = 'customer' AND payment_type = 'bill' AND status = 'success'"
        " AND due_date IS NOT NULL",
        measures=(
            ("paid_n", "count(*)"),
            ("days_early", "sum(date_diff('day', CAST(ts AS DATE), due_date))"),
        ),
    ),
    Source(
        name="customer_inflows",
        entity="customer",
        relation="payments",
        entity_expr="payer_id",
        where="payer_type = 'customer' AND payment_type = 'transfer_in' AND status = 'success'",
        # logs rounded to 1e-6 and summed as DECIMAL: exact, like the money columns
        measures=(
            ("inflow_n", "count(*)"),
            ("log_amount", f"sum({LOG_AMOUNT})"),
            ("log_amount_sq", f"sum({LOG_AMOUNT} * {LOG_AMOUNT})"),
        ),
    ),
    Source(
        name="customer_epayments",
        entity="customer",
        relation="payments",
        entity_expr="payer_id",
        where="payer_type = 'customer' AND payment_type = 'e_payment'",
        measures=(
            ("epay_n", "count(*)"),
            ("failed_n", "count_if(status = 'failed')"),
            ("log_amount", f"sum({LOG_AMOUNT})"),
        ),
    ),
    Source(
        name="customer_master",
        entity="customer",
        relation="customers",
        money=(),
        entity_expr="customer_id",
        ts="opened_at",
        measures=(("opened_n", "count(*)"),),
    ),
    Source(
        name="merchant_pos",
        entity="merchant",
        relation="pos_transactions",
        entity_expr="merchant_id",
        measures=(
            (
                "net",
                "coalesce(sum(CASE status WHEN 'approved' THEN amount WHEN 'refund' "
                "THEN -amount ELSE 0 END), 0)",
            ),
            ("gross", "sum(CASE WHEN status = 'approved' THEN amount ELSE 0 END)"),
            ("refund", "sum(CASE WHEN status = 'refund' THEN amount ELSE 0 END)"),
            ("txn_n", "count_if(status = 'approved')"),
            ("chargeback_n", "count_if(status = 'chargeback')"),
            (
                "round_n",
                "count_if(status = 'approved' AND amount >= 500 AND amount % 100 = 0)",
            ),
        ),
    ),
    Source(
        name="merchant_cards",
        entity="merchant",
        relation="pos_transactions",
        entity_expr="merchant_id",
        where="status = 'approved'",
        dims=("card_token",),
        measures=(("amount", "sum(amount)"),),
    ),
    # merchant_credit_v2: counts of the shop's card payments, by hour and outcome
    Source(
        name="merchant_pos_events",
        entity="merchant",
        relation="pos_transactions",
        money=(),
        entity_expr="merchant_id",
        measures=(
            ("txn_n", "count_if(status = 'approved')"),
            ("night_n", f"count_if(status = 'approved' AND {NIGHT})"),
            ("refund_n", "count_if(status = 'refund')"),
            ("chargeback_n", "count_if(status = 'chargeback')"),
        ),
    ),
    # merchant_credit_v4: other banks' cards (no customer of ours), whose hours, refunds and
    # tickets follow the shop; our own cardholders' follow the cardholder
    Source(
        name="merchant_pos_offus",
        entity="merchant",
        relation="pos_transactions",
        money=(),
        entity_expr="merchant_id",
        measures=(
            ("offus_n", f"count_if({_OFFUS_APPROVED})"),
            ("offus_night_n", f"count_if({_OFFUS_APPROVED} AND {NIGHT})"),
            ("offus_refund_n", f"count_if(status = 'refund' AND {_OFFUS})"),
            ("offus_log_ticket", _log_ticket_sum(_OFFUS_APPROVED)),
            ("onus_n", f"count_if({_ONUS_APPROVED})"),
            ("onus_log_ticket", _log_ticket_sum(_ONUS_APPROVED)),
        ),
    ),
    Source(
        name="merchant_offus_cards",
        entity="merchant",
        relation="pos_transactions",
        money=(),
        entity_expr="merchant_id",
        where=_OFFUS_APPROVED,
        dims=("card_token",),
        measures=(("txn_n", "count(*)"),),
    ),
    _credit("merchant", "merchant"),
    Source(
        name="merchant_master",
        entity="merchant",
        relation="merchants",
        money=(),
        entity_expr="merchant_id",
        ts="onboarded_at",
        measures=(("onboarded_n", "count(*)"),),
    ),
    Source(
        name="sme_payments",
        entity="sme",
        relation="payments",
        entity_expr="payer_id",
        where="payer_type = 'sme' AND status = 'success'",
        measures=(
            (
                "inflow",
                "sum(CASE WHEN payment_type = 'transfer_in' THEN amount ELSE 0 END)",
            ),
            (
                "outflow",
                "sum(CASE WHEN payment_type <> 'transfer_in' THEN amount ELSE 0 END)",
            ),
        ),
    ),
    Source(
        name="sme_bills",
        entity="sme",
        relation="payments",
        entity_expr="payer_id",
        where="payer_type = 'sme' AND payment_type = 'bill'",
        measures=(
            ("bills_n", "count(*)"),
            (
                "ontime_n",
                "count(*) FILTER (WHERE status = 'success' AND (due_date IS NULL"
                " OR CAST(ts AS DATE) <= due_date))",
            ),
        ),
    ),
    Source(
        name="sme_counterparties",
        entity="sme",
        relation="payments",
        entity_expr="payer_id",
        where="payer_type = 'sme' AND status = 'success' AND payment_type = 'transfer_in'"
        " AND counterparty_id IS NOT NULL",
        dims=("counterparty_id",),
        measures=(("inflow", "sum(amount)"),),
    ),
    Source(
        name="sme_mall_purchases",
        entity="sme",
        relation="mall_orders",
        entity_expr="buyer_id",
        where="buyer_type = 'sme' AND status <> 'cancelled'",
        measures=(("amount", "sum(amount)"),),
    ),
    Source(
        name="sme_mall_sales",
        entity="sme",
        relation=_SME_SALES_SQL,
        entity_expr="sme_id",
        where="status <> 'cancelled'",
        measures=(
            ("amount", "sum(amount)"),
            ("refunded", "sum(CASE WHEN status = 'refunded' THEN amount ELSE 0 END)"),
        ),
    ),
    _credit("sme", "sme"),
    Source(
        name="sme_repayments",
        entity="sme",
        relation=_REPAYMENTS_SQL,
        money=(),
        entity_expr="applicant_id",
        where="product = 'sme'",
        measures=(("items_n", "count(*)"), ("late_n", "count_if(days_past_due > 0)")),
    ),
    Source(
        name="sme_master",
        entity="sme",
        relation="smes",
        money=(),
        entity_expr="sme_id",
        ts="onboarded_at",
        measures=(("onboarded_n", "count(*)"),),
    ),
    Source(
        name="payer_events",
        entity="payer",
        relation=FRAUD_EVENTS_SQL,
        entity_expr="payer_id",
        measures=(
            ("txn_n", "count(*)"),
            ("amount", "sum(amount)"),
            ("max_amount", "max(amount)"),
            ("night_n", f"count_if({NIGHT})"),
        ),
    ),
    # payment_fraud_v2 (issue 18): the payer's amounts (sum of squares for the spread), the
    # time of its last event of the day, each event's amount (medians), and the
    # counterpart's activity (count and amount per terminal / payee).
    Source(
        name="payer_amounts",
        entity="payer",
        relation=FRAUD_EVENTS_SQL,
        entity_expr="payer_id",
        measures=(
            ("txn_n", "count(*)"),
            ("amount", "sum(amount)"),
            ("amount_sq", "sum(amount * amount)"),
            ("last_second", "max(hour(ts) * 3600 + minute(ts) * 60 + second(ts))"),
        ),
    ),
    Source(
        name="payer_event_amounts",
        entity="payer",
        relation=FRAUD_EVENTS_SQL,
        entity_expr="payer_id",
        dims=("event_id",),
        measures=(("amount", "sum(amount)"),),
    ),
    Source(
        name="counterpart_events",
        entity="counterpart",
        relation=FRAUD_EVENTS_SQL,
        entity_expr="counterpart_id",
        measures=(("txn_n", "count(*)"), ("amount", "sum(amount)")),
    ),
    Source(
        name="counterpart_risk",
        entity="counterpart",
        relation=_RISK_SQL,
        money=(),
        entity_expr="counterpart_id",
        measures=(("txn_n", "sum(is_txn)"), ("report_n", "sum(is_report)")),
    ),
    Source(
        name="merchant_risk",
        entity="merchant",
        relation=_RISK_SQL,
        money=(),
        entity_expr="merchant_id",
        measures=(("txn_n", "sum(is_txn)"), ("report_n", "sum(is_report)")),
    ),
]
# merchant_credit_v3 and sme_credit_v2 (issue 18): what the latest month shows of a
# borrower's state, its master data and how it repays its line.
_SOURCE_LIST += [
    Source(
        name="merchant_profile",
        entity="merchant",
        relation="merchants",
        money=(),
        entity_expr="merchant_id",
        ts="onboarded_at",
        measures=(("risky_n", f"count_if(mcc IN ({RISKY}))"),),
    ),
    Source(
        name="merchant_repayments",
        entity="merchant",
        relation=_REPAYMENTS_SQL,
        money=(),
        entity_expr="applicant_id",
        where="product = 'merchant'",
        measures=(("items_n", "count(*)"), ("late_n", "count_if(days_past_due > 0)")),
    ),
    Source(
        name="sme_outgoing",
        entity="sme",
        relation="payments",
        money=(),
        entity_expr="payer_id",
        where="payer_type = 'sme' AND payment_type <> 'transfer_in'",
        measures=(
            ("out_n", "count(*)"),
            ("failed_n", "count_if(status = 'failed')"),
        ),
    ),
    Source(
        name="sme_bill_timing",
        entity="sme",
        relation="payments",
        money=(),
        entity_expr="payer_id",
        where="payer_type = 'sme' AND payment_type = 'bill' AND status = 'success'"
        " AND due_date IS NOT NULL",
        measures=(
            ("paid_n", "count(*)"),
            ("days_late", "sum(greatest(date_diff('day', due_date, CAST(ts AS DATE)), 0))"),
        ),
    ),
    Source(
        name="sme_mall_buying",
        entity="sme",
        relation="mall_orders",
        money=(),
        entity_expr="buyer_id",
        where="buyer_type = 'sme'",
        measures=(
            ("orders_n", "count(*)"),
            ("instalment_n", "count_if(payment_method = 'instalment')"),
        ),
    ),
]
# personal_credit_v3 (issue 18): the customer's card events counted, not weighted by amount
# (a share of spending is dominated by a few large tickets; a rate of events is what each
# event's odds reveal), and the hours of its own payments.
_SOURCE_LIST += [
    Source(
        name="customer_pos_events",
        entity="customer",
        relation="pos_transactions",
        money=(),
        entity_expr="customer_id",
        measures=(
            ("txn_n", "count_if(status = 'approved')"),
            ("declined_n", "count_if(status = 'declined')"),
            ("night_n", f"count_if(status = 'approved' AND {NIGHT})"),
            ("risky_n", f"count_if(status = 'approved' AND mcc IN ({RISKY}))"),
            ("refund_n", "count_if(status = 'refund')"),
        ),
    ),
    Source(
        name="customer_payment_hours",
        entity="customer",
        relation="payments",
        money=(),
        entity_expr="payer_id",
        where="payer_type = 'customer' AND payment_type <> 'transfer_in'",
        measures=(("out_n", "count(*)"), ("night_n", f"count_if({NIGHT})")),
    ),
]
# sme_credit_v4 (issue 18): the SME's payment orders counted by direction.  Money out per
# money in is dominated by a few large amounts; the number of transfers it must send per
# transfer it receives is the rate at which its costs outrun its receipts.
_SOURCE_LIST += [
    Source(
        name="sme_transfers",
        entity="sme",
        relation="payments",
        money=(),
        entity_expr="payer_id",
        where="payer_type = 'sme' AND payment_type IN ('transfer_in', 'transfer_out')",
        measures=(
            ("in_n", "count_if(payment_type = 'transfer_in')"),
            ("out_n", "count_if(payment_type = 'transfer_out')"),
        ),
    ),
]
SOURCES: dict[str, Source] = {s.name: s for s in _SOURCE_LIST}

# Master tables that list every entity of a profile (for daily builds and snapshots).
ENTITY_MASTERS: dict[str, str] = {
    "customer": "SELECT customer_id AS entity_id FROM customers WHERE opened_at < {hi}",
    "merchant": "SELECT merchant_id AS entity_id FROM merchants WHERE onboarded_at < {hi}",
    "sme": "SELECT sme_id AS entity_id FROM smes WHERE onboarded_at < {hi}",
}
