"""Fixtures of the dashboards' tests: a hand-made warehouse with known answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from yidai.core.warehouse import ensure_tables


def _ts(values: list[str]) -> pd.Series:
    return pd.to_datetime(pd.Series(values))


def handmade_tables() -> dict[str, pd.DataFrame]:
    """A few rows per source whose aggregates are worked out by hand in the tests."""
    apps = pd.DataFrame(
        {
            "application_id": ["A1", "A2", "A3", "A4"],
            "ts": _ts(
                ["2025-10-05 09:00", "2025-10-20 10:00", "2025-10-20 11:00", "2025-11-03 12:00"]
            ),
            "product": ["personal", "personal", "personal", "merchant"],
            "applicant_id": ["U1", "U2", "U3", "M1"],
            "requested_amount": [5000.0, 8000.0, 3000.0, 50000.0],
            "decision": ["approved", "approved", "declined", "approved"],
            "approved_limit": [4000.0, 8000.0, 0.0, 40000.0],
            "annual_rate": [0.12, 0.10, None, 0.09],
        }
    )
    perf = pd.DataFrame(
        {
            "account_id": ["A1", "A1", "A1", "A2", "A2", "A2", "A4", "A4"],
            "snapshot_date": _ts(
                ["2025-10-31", "2025-11-30", "2025-12-31"] * 2 + ["2025-11-30", "2025-12-31"]
            ),
            "credit_limit": [4000.0] * 3 + [8000.0] * 3 + [40000.0] * 2,
            "outstanding": [1000.0, 1000.0, 900.0, 2000.0, 1500.0, 1000.0, 3000.0, 3000.0],
            "days_past_due": [0, 35, 95, 0, 0, 0, 0, 40],
        }
    )
    draws = pd.DataFrame(
        {
            "drawdown_id": ["D1", "D2", "D3"],
            "account_id": ["A1", "A2", "A4"],
            "ts": _ts(["2025-10-06", "2025-10-21", "2025-11-04"]),
            "amount": [1000.0, 2000.0, 3000.0],
            "term_months": [6, 12, 6],
        }
    )
    pos = pd.DataFrame(
        {
            "txn_id": [f"T{i}" for i in range(1, 8)],
            "ts": _ts(
                [
                    "2025-10-01 10:00",
                    "2025-10-02 10:00",
                    "2025-10-10 10:00",
                    "2025-10-11 10:00",
                    "2025-10-12 10:00",
                    "2025-10-12 11:00",
                    "2025-10-13 10:00",
                ]
            ),
            "card_token": ["C1", "C2", "C1", "C2", "C3", "C3", "C4"],
            "merchant_id": ["M1", "M1", "M2", "M2", "M3", "M3", "M3"],
            "terminal_id": ["TM1", "TM1", "TM2", "TM2", "TM3", "TM3", "TM3"],
            "mcc": ["5812"] * 7,
            "amount": [50.0, 300.0, 5000.0, 1500.0, 200.0, 500.0, 37.5],
            "entry_mode": ["chip"] * 7,
            "status": [
                "approved",
                "approved",
                "approved",
                "declined",
                "approved",
                "approved",
                "approved",
            ],
        }
    )
    payments = pd.DataFrame(
        {
            "payment_id": ["P1", "P2", "P3"],
            "ts": _ts(["2025-10-05 08:00", "2025-10-06 08:00", "2025-10-07 08:00"]),
            "payer_type": ["customer"] * 3,
            "payer_id": ["U1", "U1", "U2"],
            "payment_type": ["e_payment", "transfer_out", "bill"],
            "bill_category": [None, None, "telecom"],
            "amount": [100.0, 25000.0, 80.0],
            "channel": ["app"] * 3,
            "status": ["success"] * 3,
        }
    )
    reports = pd.DataFrame(
        {
            "report_id": ["R1", "R2", "R3", "R4", "R5"],
            "reported_at": _ts(
                ["2025-10-20", "2025-10-15", "2025-11-01", "2025-10-26", "2025-10-25"]
            ),
            "ref_type": ["pos", "pos", "pos", "payment", "pos"],
            "ref_id": ["T3", "T4", "T6", "P2", "T3"],
            "fraud_type": [
                "skimming",
                "compromised_card",
                "merchant_cash_out",
                "account_takeover",
                "chargeback",
            ],
            "amount": [5000.0, 1500.0, 500.0, 25000.0, 5000.0],
        }
    )
    return {
        "loan_applications": apps,
        "loan_performance": perf,
        "loan_drawdowns": draws,
        "pos_transactions": pos,
        "payments": payments,
        "fraud_reports": reports,
    }


def load_into(con: duckdb.DuckDBPyConnection, tables: dict[str, pd.DataFrame]) -> None:
    """Create the contract tables and insert the frames by column name."""
    ensure_tables(con)
    for name, frame in tables.items():
        con.register("_frame", frame)
        con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _frame")
        con.unregister("_frame")


@pytest.fixture
def handmade_con() -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB holding :func:`handmade_tables` in the contract tables."""
    con = duckdb.connect()
    load_into(con, handmade_tables())
    yield con
    con.close()


@pytest.fixture
def handmade_warehouse(tmp_path):
    """A DuckDB warehouse file at ``<tmp>/warehouse/yidai.duckdb`` holding the hand-made rows."""
    path = tmp_path / "warehouse" / "yidai.duckdb"
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    load_into(con, handmade_tables())
    con.close()
    return path


PAGES_DIR = Path(__file__).resolve().parents[2] / "dashboards" / "app_pages"


def _run_page(name: str, timeout: float = 60):
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(PAGES_DIR / f"{name}.py"), default_timeout=timeout)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert not [e for e in app.error], [e.value for e in app.error]
    return app


def _metric_values(app) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


@pytest.fixture
def run_page():
    """Render one dashboard page with Streamlit's AppTest; fail on any exception or error box."""
    return _run_page


@pytest.fixture
def metric_values():
    """Label -> displayed value of every ``st.metric`` on a rendered page."""
    return _metric_values


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    """A fresh YIDAI_HOME with nothing published."""
    from yidai.core.settings import reset_settings_cache

    monkeypatch.setenv("YIDAI_HOME", str(tmp_path / "home"))
    reset_settings_cache()
    yield tmp_path / "home"
    reset_settings_cache()


# ------------------------------------------------------------------ a small simulation
SIM_SOURCES = (
    "loan_applications",
    "loan_performance",
    "loan_drawdowns",
    "pos_transactions",
    "payments",
    "fraud_reports",
)


def _landing_con(landing: Path) -> duckdb.DuckDBPyConnection:
    """DuckDB views over the simulator's clean landing zone (it honours the contracts when
    the defect rate is 0), named like the warehouse tables."""
    from yidai.jobs.analytics.explore import landing_views

    return landing_views(landing, SIM_SOURCES)


def _scored_from_truth(
    con: duckdb.DuckDBPyConnection, truth: Path, as_of
) -> dict[str, pd.DataFrame]:
    """Scored applications shaped like ``yidai.jobs.analytics.scored``'s, with a noisy model PD
    (true PD with seeded noise), the project's scorecard, and the policy's input features."""
    import numpy as np

    from models.scorecard import Scorecard
    from yidai.decisioning import load_credit_policy

    apps = con.execute("SELECT * FROM loan_applications").df()
    t = pd.read_parquet(truth / "applications.parquet")[["application_id", "true_pd", "defaulted"]]
    apps = apps.merge(t, on="application_id", validate="one_to_one")
    rng = np.random.default_rng(7)
    logit = np.log(apps["true_pd"] / (1 - apps["true_pd"])) + rng.normal(0, 0.6, len(apps))
    apps["pd"] = 1 / (1 + np.exp(-logit))
    card = Scorecard()
    apps["score"] = card.points(apps["pd"].to_numpy())
    apps["grade"] = card.grade(apps["pd"].to_numpy()).astype(str)
    apps["challenger_pd"] = 1 / (1 + np.exp(-(logit + rng.normal(0, 0.4, len(apps)))))
    apps["model_version"], apps["challenger_version"] = "pd v1", "pd v2"
    ts = pd.to_datetime(apps["ts"])
    matured = (apps["decision"] == "approved") & (
        ts + pd.DateOffset(months=6) <= pd.Timestamp(as_of)
    )
    apps["label"] = apps["defaulted"].astype("Int64").where(matured)
    apps = apps.rename(
        columns={"applicant_id": "entity_id", "ts": "decision_ts", "defaulted": "true_defaulted"}
    )
    apps["true_defaulted"] = apps["true_defaulted"].astype(float)
    apps["booking_month"] = ts.dt.to_period("M").dt.start_time
    out = {}
    for product, group in apps.groupby("product"):
        policy = load_credit_policy(str(product))
        group = group.copy()
        for feature in policy.feature_names:  # plausible policy inputs: no delinquency, old
            group[feature] = (
                group["requested_amount"] * 2.0
                if "amount" in feature or "turnover" in feature or "flow" in feature
                else 0.0
            )
        for rule in policy.hard_rules:
            if rule.op in ("<", "<="):
                group[rule.feature] = rule.value * 10 + 1
        out[str(product)] = group.reset_index(drop=True)
    return out


def _scored_payment_events(con: duckdb.DuckDBPyConnection, as_of) -> pd.DataFrame:
    """Payment events of the last 28 days shaped like
    ``yidai.jobs.analytics.scored.score_payment_events``'s: every reported fraud, a seeded
    half of the others (``weight`` 2), a noisy fraud probability that ranks frauds higher."""
    import numpy as np

    events = con.execute(
        """
        WITH ev AS (
          SELECT 'pos' AS event_type, txn_id AS event_id, ts, card_token AS payer_id, amount,
                 status = 'declined' AS rules_blocked
          FROM pos_transactions WHERE status IN ('approved', 'declined')
          UNION ALL
          SELECT 'payment', payment_id, ts, payer_id, amount, status = 'failed'
          FROM payments WHERE payment_type <> 'transfer_in')
        SELECT ev.*, CAST(EXISTS (SELECT 1 FROM fraud_reports r WHERE r.ref_id = ev.event_id
                 AND r.ref_type = ev.event_type) AS INTEGER) AS label
        FROM ev WHERE ev.ts >= CAST(? AS TIMESTAMP) - INTERVAL 28 DAY
        ORDER BY ev.ts, ev.event_id
        """,
        [pd.Timestamp(as_of)],
    ).df()
    rng = np.random.default_rng(11)
    fraud = events["label"].to_numpy() == 1
    keep = fraud | (rng.uniform(size=len(events)) < 0.5)
    events = events[keep].reset_index(drop=True)
    fraud = events["label"].to_numpy() == 1
    logit = np.where(fraud, 0.5, -4.5) + rng.normal(0, 1.5, len(events))
    return events.assign(
        fraud_prob=1 / (1 + np.exp(-logit)),
        weight=np.where(fraud, 1.0, 2.0),
        model_version="payment_fraud v1",
    )


@pytest.fixture(scope="session")
def simulated_home(tmp_path_factory):
    """A YIDAI_HOME with a small seeded simulation and every dashboard table published."""
    from simulator import SimConfig, simulate
    from yidai.jobs.analytics.dashboard_tables import publish_tables
    from yidai.jobs.analytics.portfolio_tables import portfolio_tables, warehouse_as_of

    home = tmp_path_factory.mktemp("dash_sim_home")
    config = SimConfig.preset(
        "tiny", n_customers=2500, n_merchants=80, n_smes=40, n_mall_sellers=20, defect_rate=0.0
    )
    simulate(config, home / "landing", home / "truth")
    con = _landing_con(home / "landing")
    as_of = warehouse_as_of(con)
    publish_tables(
        home / "serving" / "portfolio", portfolio_tables(con, as_of), {"as_of": as_of.isoformat()}
    )
    scored = _scored_from_truth(con, home / "truth", as_of)
    features = {
        p: [c for c in t.columns if c.startswith(("customer_", "merchant_", "sme_"))]
        for p, t in scored.items()
    }
    scored["payment_events"] = _scored_payment_events(con, as_of)
    publish_tables(
        home / "serving" / "applications",
        scored,
        {"as_of": as_of.isoformat(), "features": features},
    )
    con.close()
    return home


def publish_limits_fixture(serving: Path) -> None:
    """A published merchant-limits version in the limits layout (summary by summarise())."""
    import json

    from yidai.core import publishing
    from yidai.jobs.limits.refresh import summarise

    limits = pd.DataFrame(
        {
            "merchant_id": ["M1", "M2", "M3", "M4"],
            "account_id": ["L1", "L2", "L3", None],
            "credit_line": [10000.0, 20000.0, 5000.0, 0.0],
            "outstanding": [2500.0, 19000.0, 5000.0, 0.0],
            "status": ["active", "active", "frozen", "none"],
            "previous_status": ["active", "active", "active", "none"],
            "previous_line": [8000.0, 20000.0, 6000.0, 0.0],
            "decision": ["increase", "keep", "freeze", "none"],
            "reason_code": ["LM_TURNOVER_UP", "LM_KEEP", "LM_DELINQUENT", "LM_NO_FEATURES"],
            "grade": ["A", "C", "F", "unscored"],
        }
    )
    limits["available"] = (limits["credit_line"] - limits["outstanding"]).clip(lower=0)
    changes = limits[limits["credit_line"] != limits["previous_line"]].copy()
    changes["change"] = changes["credit_line"] - changes["previous_line"]
    changes["reason_text"] = changes["reason_code"].str.lower()
    summary, by_grade = summarise(limits)
    summary["as_of"] = "2026-09-30"
    root = serving / "limits"

    def fill(tmp: Path) -> None:
        limits.to_parquet(tmp / "limits.parquet")
        changes.to_parquet(tmp / "changes.parquet")
        by_grade.to_parquet(tmp / "summary_by_grade.parquet")
        (tmp / "summary.json").write_text(json.dumps(summary))

    publishing.write_version(root, "v1", {"as_of": "2026-09-30", "version": "v1"}, fill)
    publishing.publish(root, "v1", {"as_of": "2026-09-30"})


def record_decisions_fixture(audit_url: str) -> list[str]:
    """Two audited decisions written by the scoring service's own audit store."""
    from yidai.audit import AuditStore, DecisionRow

    store = AuditStore(audit_url)
    credit = DecisionRow(
        decision_id="d-credit-1",
        module="mall_checkout",
        idempotency_key=None,
        request_hash="h1",
        product="personal",
        entity_id="C000042",
        outcome="decline",
        arm="champion",
        model_version="personal_pd v3",
        policy_version="2026.11.1+abcd1234",
        response={
            "decision": "decline",
            "pd": 0.21,
            "score": 532.0,
            "grade": "F",
            "limit": 0.0,
            "reason_codes": [
                {
                    "code": "SC_SCORE_BELOW_CUTOFF",
                    "text": "Score below cut-off",
                    "text_zh": "评分低于门槛",
                }
            ],
        },
        record={
            "request": {"customer_id": "C000042", "order_amount": 3000},
            "features": {"customer_spend_amount_180d": 1200.0},
            "snapshot_version": "s1",
            "proposed_limit": 1800.0,
            "shadow": {"arm": "challenger", "decision": "refer", "pd": 0.18, "limit": 0.0},
        },
    )
    payment = DecisionRow(
        decision_id="d-pay-1",
        module="payment_page",
        idempotency_key=None,
        request_hash="h2",
        product="payment",
        entity_id="C000042",
        outcome="step_up",
        arm="champion",
        model_version="payment_fraud v1",
        policy_version="p1",
        response={
            "action": "step_up",
            "amount_tier": "small",
            "fraud_probability": 0.3,
            "reason_codes": [],
        },
        record={
            "request": {"payer_id": "C000042", "amount": 150.0},
            "features": {},
            "shadow": None,
        },
    )
    store.record_decision(credit)
    store.record_decision(payment)
    store.close()
    return ["d-credit-1", "d-pay-1"]


@pytest.fixture
def published_home(simulated_home):
    """The simulated home with limits and audited decisions too: every page has data."""
    if not (simulated_home / "serving" / "limits" / "CURRENT").exists():
        publish_limits_fixture(simulated_home / "serving")
        record_decisions_fixture(f"sqlite:///{simulated_home / 'audit' / 'decisions.db'}")
    return simulated_home


@pytest.fixture
def full_home(published_home, monkeypatch):
    """:func:`published_home` as the YIDAI_HOME of this process."""
    from yidai.core.settings import reset_settings_cache

    simulated_home = published_home
    monkeypatch.setenv("YIDAI_HOME", str(simulated_home))
    reset_settings_cache()
    yield simulated_home
    reset_settings_cache()
