"""The revolving lines: one account per merchant and SME, reviews, the available limit,
charge-off with recovery, cures, and the accrual rule that alone lets a balance pass its line."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from simulator.loans import CHARGE_OFF_DPD, FROZEN_DPD, RECOVERY_RATE
from tests.simulator.conftest import SimRun


def _con(run: SimRun) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for table in ("loan_applications", "loan_drawdowns", "loan_repayments", "loan_performance"):
        con.execute(
            f"CREATE VIEW {table} AS SELECT * FROM "
            f"read_parquet('{run.landing}/{table}/*/*.parquet', union_by_name = true)"
        )
    return con


@pytest.fixture(scope="module")
def book(clean_year_run: SimRun) -> dict[str, pd.DataFrame]:
    con = _con(clean_year_run)
    return {
        t: con.execute(f"SELECT * FROM {t}").df()
        for t in ("loan_applications", "loan_drawdowns", "loan_repayments", "loan_performance")
    }


def test_one_line_per_merchant_and_sme_for_life(book: dict[str, pd.DataFrame]) -> None:
    apps = book["loan_applications"].sort_values(["ts", "application_id"])
    lines = apps[apps["product"] != "personal"]
    assert lines.groupby(["product", "applicant_id"]).size().max() > 3, "re-applications exist"
    per_borrower = lines.dropna(subset=["account_id"]).groupby(["product", "applicant_id"])
    assert (per_borrower["account_id"].nunique() == 1).all()
    # the line is the borrower's first approved application; nothing before it names it
    first_approved = (
        lines[lines["decision"] == "approved"].groupby(["product", "applicant_id"]).first()
    )
    assert (first_approved["account_id"] == first_approved["application_id"]).all()
    assert lines.loc[lines["decision"] == "approved", "account_id"].notna().all()
    personal = apps[(apps["product"] == "personal") & (apps["decision"] == "approved")]
    assert (personal["account_id"] == personal["application_id"]).all()
    # every drawdown, schedule item and tape row names an opened account
    opened = set(apps["account_id"].dropna())
    for table in ("loan_drawdowns", "loan_repayments", "loan_performance"):
        assert set(book[table]["account_id"]) <= opened, table


def test_balances_stay_within_the_line_but_for_bounded_accrual(
    book: dict[str, pd.DataFrame],
) -> None:
    tape = book["loan_performance"]
    rate = book["loan_applications"].groupby("account_id")["annual_rate"].max()
    tape = tape.join(rate, on="account_id")
    over = tape[tape["outstanding"] > tape["credit_limit"] + 0.01]
    # above the line only while delinquent, and at most by the interest accrued until charge-off
    assert (over["days_past_due"] > 0).all()
    bound = tape["credit_limit"] * (1 + tape["annual_rate"] * CHARGE_OFF_DPD / 365) + 0.01
    assert (tape["outstanding"] <= bound).all()
    paying = tape[tape["days_past_due"] == 0]
    assert (paying["outstanding"] <= paying["credit_limit"] + 0.01).all()
    # the lines are used, not maxed out
    lines = tape[tape["credit_limit"] > 0]
    utilisation = lines["outstanding"].sum() / lines["credit_limit"].sum()
    assert 0.05 < utilisation < 0.9


def test_reviews_move_the_line_and_never_cut_it_under_the_balance(
    book: dict[str, pd.DataFrame],
) -> None:
    tape = book["loan_performance"].sort_values(["account_id", "snapshot_date"])
    moved = tape.groupby("account_id")["credit_limit"].agg(lambda s: s.diff().fillna(0))
    changes = tape.assign(change=moved.explode().astype(float).to_numpy())
    assert (changes["change"] > 0).any() and (changes["change"] < 0).any()


def test_defaults_are_charged_off_with_a_recovery(book: dict[str, pd.DataFrame]) -> None:
    tape = book["loan_performance"].sort_values(["account_id", "snapshot_date"])
    gone = tape[tape["status"] == "charged_off"]
    assert len(gone) > 0
    assert (gone["days_past_due"] >= CHARGE_OFF_DPD).all()
    assert (gone["outstanding"] == 0).all() and (gone["charged_off"] > 0).all()
    assert (gone["recovered"] - RECOVERY_RATE * gone["charged_off"]).abs().max() < 0.011
    last = tape.groupby("account_id").tail(1)
    assert set(gone["account_id"]) <= set(last.loc[last["status"] == "charged_off", "account_id"])
    # no drawdown once the line is written off, and no default stays past due for ever
    draws = book["loan_drawdowns"].merge(gone[["account_id", "snapshot_date"]], on="account_id")
    assert (draws["ts"] < draws["snapshot_date"]).all()
    still_open = tape[tape["status"] != "charged_off"]
    assert (still_open["days_past_due"] < CHARGE_OFF_DPD + 31).all()


def test_frozen_lines_draw_nothing_and_cured_lines_unfreeze(
    book: dict[str, pd.DataFrame],
) -> None:
    tape = book["loan_performance"].sort_values(["account_id", "snapshot_date"])
    assert (
        ((tape["status"] == "frozen") == (tape["days_past_due"] >= FROZEN_DPD))
        .loc[tape["status"] != "charged_off"]
        .all()
    )
    nxt = tape.groupby("account_id")["status"].shift(-1)
    cured = (tape["status"] == "frozen") & (nxt == "open")
    assert cured.any(), "a borrower who pays its arrears gets its line back"
    frozen = tape.loc[tape["status"] == "frozen", ["account_id", "snapshot_date"]]
    draws = book["loan_drawdowns"].merge(frozen, on="account_id")
    same_day = draws[draws["ts"].dt.normalize() == draws["snapshot_date"]]
    assert same_day.empty


def test_truth_and_label_share_one_horizon(
    clean_year_run: SimRun, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Issue 18, one horizon: the simulator's ``defaulted`` and ``true_pd`` are on the label's
    performance window (90+ DPD within ``performance_months``), so on the matured
    applications the truth is the label and the oracle's mean PD is the label's rate."""
    import datetime as dt

    from scipy.stats import poisson  # deferred: only this test needs scipy

    from features.training import credit_spine
    from yidai.core.contracts import PRODUCTS
    from yidai.ingest import ingest_landing

    run = clean_year_run
    warehouse = tmp_path_factory.mktemp("horizon") / "warehouse.duckdb"
    ingest_landing(run.landing, warehouse)
    truth = pd.read_parquet(run.truth / "applications.parquet")
    end = run.config.start.replace(year=run.config.start.year + 1) - dt.timedelta(days=1)
    con = duckdb.connect(str(warehouse))
    try:
        frames = [
            credit_spine(con, product, end, run.config.performance_months) for product in PRODUCTS
        ]
    finally:
        con.close()
    matured = pd.concat(frames).merge(truth, on="application_id")
    # a personal loan's truth is its label on every booking (a line's default day is drawn
    # within a month: its label can differ at the window's edge, below)
    personal = frames[PRODUCTS.index("personal")].merge(truth, on="application_id")
    assert len(personal) > 100 and personal["label"].sum() > 0
    assert (personal["label"].astype(bool) == personal["defaulted"]).all()
    label, bad = matured["label"].astype(int), matured["defaulted"].astype(int)
    # (a line can first miss only from a month after it opens: few defaults in a tiny year)
    assert len(matured) > 500 and label.sum() >= 8
    assert (label == bad).mean() >= 0.99
    # the same defaults, but for a few at the window's edge (the default day is drawn within
    # a month, the label reads month-end rows; a borrower's reviews share its default)
    assert (label & bad).sum() >= 0.6 * max(label.sum(), bad.sum())
    # the oracle's expected count of defaults holds the observed one within Poisson noise
    # (a tiny year: about 17 expected; a line's reviews share one default, so rows cluster)
    expected = float(matured["true_pd"].sum())
    assert poisson.ppf(0.0005, expected) <= label.sum() <= poisson.ppf(0.9995, expected)
