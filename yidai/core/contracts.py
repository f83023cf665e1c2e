"""Typed data contracts of every landing source.

A contract names the columns, their types, the key, the event-time column and the allowed
values of one source.  The simulator writes data that honours them, ingestion enforces them
(rows that break them go to quarantine with the reason), and ``docs/data-contracts.md`` is
generated from this module (``yidai contracts --write``), so a bank team can map its own
extracts onto them.

Landing layout: ``<landing>/<source>/dt=YYYY-MM-DD/<file>.parquet`` (or ``.csv``), one folder
per delivery day.  A row may arrive late: its event time can be days before its delivery day.
Amounts are in CNY.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from yidai.core.catalogue import CREDIT_PRODUCTS
from yidai.core.errors import YidaiError

DType = Literal["VARCHAR", "TIMESTAMP", "DATE", "DOUBLE", "BIGINT", "INTEGER", "BOOLEAN"]
NUMERIC_DTYPES: tuple[DType, ...] = ("DOUBLE", "BIGINT", "INTEGER")
EARLIEST_EVENT_TIME = "1950-01-01"
"""No event time of any source is before this day (1900-01-01 and 0001-01-01 are placeholders)."""


@dataclass(frozen=True)
class Column:
    """One column of a source."""

    name: str
    dtype: DType
    description: str
    nullable: bool = False
    allowed: tuple[str, ...] | None = None
    min_value: float | None = None
    references: str | None = None  # "source.column" that this id must exist in


@dataclass(frozen=True)
class Contract:
    """The contract of one landing source and of its warehouse table."""

    name: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    event_time: str | None
    kind: Literal["event", "master"] = "event"
    extra_checks: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    # (reason, DuckDB SQL boolean expression true for a *bad* row)
    future_event_time: bool = False
    # True when the event time may lie after the delivery day (e.g. a schedule's due date);
    # otherwise ingestion quarantines rows whose event time is after the delivery day + 1.

    @property
    def bounded_lateness(self) -> bool:
        """Whether a row's event time may lag its delivery day by at most the maximum
        lateness (setting ``ingest_max_lateness_days``): event sources whose event time is
        bounded in the future too; master data and schedules keep old times, bounded only
        by :data:`EARLIEST_EVENT_TIME`."""
        return self.kind == "event" and self.event_time is not None and not self.future_event_time

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")


MCC_CODES = {
    "5812": "restaurant",
    "5411": "supermarket",
    "5399": "general store",
    "5541": "gas station",
    "5311": "department store",
    "5912": "pharmacy",
    "5732": "electronics",
    "5944": "jewelry",
    "7995": "gambling / lottery",
    "6051": "quasi-cash",
    "4121": "taxi",
    "5999": "other retail",
}
RISKY_MCCS = ("7995", "6051", "5944")

PRODUCTS = CREDIT_PRODUCTS  # the loan applications' products (yidai.core.catalogue)
CITY_TIERS = ("1", "2", "3", "4")
INCOME_BANDS = ("low", "lower_mid", "mid", "upper_mid", "high")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
MERCHANT_TYPES = ("restaurant", "supermarket", "general_store", "gas_station", "other")
MALL_CATEGORIES = (
    "electronics",
    "apparel",
    "home",
    "food",
    "beauty",
    "books",
    "auto",
    "industrial",
    "office",
)
BILL_CATEGORIES = ("telecom", "utilities", "transport", "education", "tax", "other")
CHANNELS = ("app", "online_banking", "mobile_banking", "self_service", "pos", "other")
FRAUD_TYPES = (
    "compromised_card",
    "skimming",
    "account_takeover",
    "merchant_cash_out",
    "chargeback",
)

_id: DType = "VARCHAR"

CONTRACTS: dict[str, Contract] = {}


def _register(contract: Contract) -> Contract:
    CONTRACTS[contract.name] = contract
    return contract


# ---------------------------------------------------------------- master data
customers = _register(
    Contract(
        name="customers",
        kind="master",
        description="Individual customers (KYC master data), one row per customer.",
        key=("customer_id",),
        event_time="opened_at",
        columns=(
            Column("customer_id", _id, "Customer id."),
            Column("opened_at", "TIMESTAMP", "When the relationship with the bank began."),
            Column("age_band", "VARCHAR", "Age band.", allowed=AGE_BANDS),
            Column("city_tier", "VARCHAR", "City tier, 1 = largest.", allowed=CITY_TIERS),
            Column("income_band", "VARCHAR", "Declared income band.", allowed=INCOME_BANDS),
        ),
    )
)
cards = _register(
    Contract(
        name="cards",
        kind="master",
        description="Cards issued to customers; card numbers never appear, only tokens.",
        key=("card_token",),
        event_time="issued_at",
        columns=(
            Column("card_token", _id, "Irreversible token of the card number."),
            Column("customer_id", _id, "Holder.", references="customers.customer_id"),
            Column("issued_at", "TIMESTAMP", "Issue time."),
            Column("card_type", "VARCHAR", "Card type.", allowed=("debit", "credit")),
        ),
    )
)
merchants = _register(
    Contract(
        name="merchants",
        kind="master",
        description="Small merchants acquired with POS terminals (settlement at the bank).",
        key=("merchant_id",),
        event_time="onboarded_at",
        columns=(
            Column("merchant_id", _id, "Merchant id."),
            Column("onboarded_at", "TIMESTAMP", "POS acquiring start."),
            Column("merchant_type", "VARCHAR", "Business type.", allowed=MERCHANT_TYPES),
            Column("mcc", "VARCHAR", "Merchant category code.", allowed=tuple(MCC_CODES)),
            Column("city_tier", "VARCHAR", "City tier.", allowed=CITY_TIERS),
            Column("settlement_account", _id, "Settlement account (repayment source)."),
        ),
    )
)
terminals = _register(
    Contract(
        name="terminals",
        kind="master",
        description="POS terminals installed at merchants.",
        key=("terminal_id",),
        event_time="installed_at",
        columns=(
            Column("terminal_id", _id, "Terminal id."),
            Column("merchant_id", _id, "Owner merchant.", references="merchants.merchant_id"),
            Column("installed_at", "TIMESTAMP", "Install time."),
        ),
    )
)
smes = _register(
    Contract(
        name="smes",
        kind="master",
        description="Small businesses eligible for the 网贷通 online revolving loan.",
        key=("sme_id",),
        event_time="onboarded_at",
        columns=(
            Column("sme_id", _id, "SME id."),
            Column("onboarded_at", "TIMESTAMP", "Relationship start."),
            Column("industry", "VARCHAR", "Industry."),
            Column("city_tier", "VARCHAR", "City tier.", allowed=CITY_TIERS),
        ),
    )
)
mall_sellers = _register(
    Contract(
        name="mall_sellers",
        kind="master",
        description="Sellers on the 融e购 mall (B2C shops and B2B suppliers).",
        key=("seller_id",),
        event_time="joined_at",
        columns=(
            Column("seller_id", _id, "Seller id."),
            Column("joined_at", "TIMESTAMP", "Join time."),
            Column("seller_type", "VARCHAR", "Market.", allowed=("b2c", "b2b")),
            Column("sme_id", _id, "The SME behind a B2B seller, if any.", nullable=True),
            Column("category", "VARCHAR", "Main category.", allowed=MALL_CATEGORIES),
        ),
    )
)

# ---------------------------------------------------------------- events
pos_transactions = _register(
    Contract(
        name="pos_transactions",
        description="Card transactions at merchants' POS terminals (acquiring side).",
        key=("txn_id",),
        event_time="ts",
        columns=(
            Column("txn_id", _id, "Transaction id."),
            Column("ts", "TIMESTAMP", "Authorisation time."),
            Column("card_token", _id, "Card token."),
            Column(
                "customer_id",
                _id,
                "Cardholder if the card is the bank's own, else null.",
                nullable=True,
            ),
            Column("merchant_id", _id, "Merchant.", references="merchants.merchant_id"),
            Column("terminal_id", _id, "Terminal.", references="terminals.terminal_id"),
            Column("mcc", "VARCHAR", "Merchant category code.", allowed=tuple(MCC_CODES)),
            Column("amount", "DOUBLE", "Amount in CNY (positive; refunds too).", min_value=0.01),
            Column(
                "entry_mode",
                "VARCHAR",
                "How the card was read.",
                allowed=("chip", "contactless", "magstripe", "manual"),
            ),
            Column(
                "status",
                "VARCHAR",
                "Outcome.",
                allowed=("approved", "declined", "refund", "chargeback"),
            ),
        ),
    )
)
mall_orders = _register(
    Contract(
        name="mall_orders",
        description="Orders on the 融e购 mall, B2C and B2B.",
        key=("order_id",),
        event_time="ts",
        columns=(
            Column("order_id", _id, "Order id."),
            Column("ts", "TIMESTAMP", "Order time."),
            Column("buyer_type", "VARCHAR", "Buyer kind.", allowed=("customer", "sme")),
            Column("buyer_id", _id, "Customer id or SME id."),
            Column("seller_id", _id, "Seller.", references="mall_sellers.seller_id"),
            Column("category", "VARCHAR", "Category.", allowed=MALL_CATEGORIES),
            Column("amount", "DOUBLE", "Order amount in CNY.", min_value=0.01),
            Column(
                "payment_method",
                "VARCHAR",
                "How it was paid.",
                allowed=("card", "e_payment", "instalment"),
            ),
            Column("status", "VARCHAR", "Status.", allowed=("paid", "cancelled", "refunded")),
        ),
    )
)
payments = _register(
    Contract(
        name="payments",
        description=(
            "Payment logs: e支付 small online payments, bill payments and transfers, "
            "with device and channel."
        ),
        key=("payment_id",),
        event_time="ts",
        columns=(
            Column("payment_id", _id, "Payment id."),
            Column("ts", "TIMESTAMP", "Initiation time."),
            Column("payer_type", "VARCHAR", "Account holder kind.", allowed=("customer", "sme")),
            Column("payer_id", _id, "Customer id or SME id of the bank's account holder."),
            Column(
                "payment_type",
                "VARCHAR",
                "Kind of payment (transfer_in is money received).",
                allowed=("e_payment", "bill", "transfer_out", "transfer_in"),
            ),
            Column(
                "bill_category",
                "VARCHAR",
                "Bill category (bill payments only).",
                nullable=True,
                allowed=BILL_CATEGORIES,
            ),
            Column("counterparty_id", _id, "Payee or payer on the other side.", nullable=True),
            Column("amount", "DOUBLE", "Amount in CNY.", min_value=0.01),
            Column("channel", "VARCHAR", "Channel.", allowed=CHANNELS),
            Column("device_id", _id, "Device fingerprint id.", nullable=True),
            Column("status", "VARCHAR", "Outcome.", allowed=("success", "failed")),
            Column("due_date", "DATE", "Bill due date (bill payments only).", nullable=True),
        ),
    )
)
ACCOUNT_STATUSES = ("open", "frozen", "charged_off")
loan_applications = _register(
    Contract(
        name="loan_applications",
        description=(
            "Credit applications of the three products with the bank's decision. A personal "
            "application opens its own account; a merchant's or an SME's first approved "
            "application opens its one revolving line (account id = that application id) and "
            "every later application of the same borrower is a review of that line."
        ),
        key=("application_id",),
        event_time="ts",
        columns=(
            Column("application_id", _id, "Application id (= account id once approved)."),
            Column("ts", "TIMESTAMP", "Application time."),
            Column("product", "VARCHAR", "Product.", allowed=PRODUCTS),
            Column("applicant_id", _id, "Customer id, merchant id or SME id."),
            Column("requested_amount", "DOUBLE", "Requested line in CNY.", min_value=0.01),
            Column("decision", "VARCHAR", "Decision.", allowed=("approved", "declined")),
            Column(
                "approved_limit", "DOUBLE", "Approved line in CNY (0 if declined).", min_value=0
            ),
            Column("annual_rate", "DOUBLE", "Annual interest rate, if approved.", nullable=True),
            Column(
                "account_id",
                _id,
                "The account this application opened or reviewed; null for a declined "
                "application of a borrower without a line.",
                nullable=True,
            ),
        ),
    )
)
loan_drawdowns = _register(
    Contract(
        name="loan_drawdowns",
        description="Drawdowns on approved revolving accounts.",
        key=("drawdown_id",),
        event_time="ts",
        columns=(
            Column("drawdown_id", _id, "Drawdown id."),
            Column("account_id", _id, "Account (the line's opening application id)."),
            Column("ts", "TIMESTAMP", "Drawdown time."),
            Column("amount", "DOUBLE", "Amount drawn in CNY.", min_value=0.01),
            Column("term_months", "INTEGER", "Term in months.", min_value=1),
        ),
    )
)
loan_repayments = _register(
    Contract(
        name="loan_repayments",
        description="Repayment schedule items with their repayment events and days past due.",
        key=("schedule_id",),
        event_time="due_date",
        future_event_time=True,
        columns=(
            Column("schedule_id", _id, "Schedule item id."),
            Column("account_id", _id, "Account (the line's opening application id)."),
            Column("due_date", "TIMESTAMP", "Due date."),
            Column("amount_due", "DOUBLE", "Amount due in CNY.", min_value=0),
            Column("paid_at", "TIMESTAMP", "When it was paid; null if unpaid.", nullable=True),
            Column("amount_paid", "DOUBLE", "Amount paid in CNY.", min_value=0),
            Column(
                "days_past_due",
                "INTEGER",
                "Days past due when paid, or as of the extract if unpaid.",
                min_value=0,
            ),
        ),
    )
)
loan_performance = _register(
    Contract(
        name="loan_performance",
        description="Month-end performance tape per account: line, balance, days past due.",
        key=("account_id", "snapshot_date"),
        event_time="snapshot_date",
        columns=(
            Column("account_id", _id, "Account (the line's opening application id)."),
            Column("snapshot_date", "TIMESTAMP", "Month-end date."),
            Column("credit_limit", "DOUBLE", "Line in CNY.", min_value=0),
            Column(
                "outstanding",
                "DOUBLE",
                "Outstanding balance in CNY: drawn principal not yet repaid, plus the interest "
                "accrued on a delinquent balance until charge-off (the only way a balance "
                "exceeds its line).",
                min_value=0,
            ),
            Column("days_past_due", "INTEGER", "Days past due at month end.", min_value=0),
            Column(
                "status",
                "VARCHAR",
                "open; frozen (30+ days past due: no drawdowns); charged_off (the month the "
                "balance was written off, the account's last row).",
                allowed=ACCOUNT_STATUSES,
            ),
            Column(
                "charged_off",
                "DOUBLE",
                "Balance written off this month (charged_off rows only; else 0).",
                min_value=0,
            ),
            Column(
                "recovered",
                "DOUBLE",
                "Recovered from the written-off balance this month (else 0).",
                min_value=0,
            ),
        ),
    )
)
fraud_reports = _register(
    Contract(
        name="fraud_reports",
        description=(
            "Confirmed fraud and chargebacks, reported days to weeks after the transaction."
        ),
        key=("report_id",),
        event_time="reported_at",
        columns=(
            Column("report_id", _id, "Report id."),
            Column("reported_at", "TIMESTAMP", "When the bank learnt of it."),
            Column("ref_type", "VARCHAR", "What it refers to.", allowed=("pos", "payment")),
            Column("ref_id", _id, "txn_id of a POS transaction or payment_id of a payment."),
            Column("fraud_type", "VARCHAR", "Scenario.", allowed=FRAUD_TYPES),
            Column("amount", "DOUBLE", "Amount lost in CNY.", min_value=0.01),
        ),
    )
)

MASTER_SOURCES = tuple(c.name for c in CONTRACTS.values() if c.kind == "master")
EVENT_SOURCES = tuple(c.name for c in CONTRACTS.values() if c.kind == "event")


def get_contract(name: str) -> Contract:
    """The contract of ``name``; a clear error listing the known sources otherwise."""

    try:
        return CONTRACTS[name]
    except KeyError:
        raise YidaiError(
            f"unknown source {name!r}; known sources: {', '.join(CONTRACTS)}"
        ) from None
