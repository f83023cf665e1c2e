"""The warehouse aggregations published for the dashboards, on hand-checked rows."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pytest

from yidai.core.errors import YidaiError
from yidai.core.settings import reset_settings_cache
from yidai.jobs.analytics import portfolio_tables
from yidai.jobs.analytics.dashboard_tables import current_version, read_meta, read_table

AS_OF = date(2025, 12, 31)


def _tables(con: duckdb.DuckDBPyConnection) -> dict[str, pd.DataFrame]:
    return portfolio_tables.portfolio_tables(con, AS_OF)


def test_applications_daily_counts_approvals_and_booked_lines(handmade_con):
    daily = _tables(handmade_con)["applications_daily"]
    day = daily[(daily["day"] == pd.Timestamp("2025-10-20")) & (daily["product"] == "personal")]
    assert day[["applications", "approved", "booked_amount"]].iloc[0].tolist() == [2, 1, 8000.0]
    assert daily["applications"].sum() == 4


def test_vintages_are_cumulative_and_stop_at_as_of(handmade_con):
    vint = _tables(handmade_con)["vintages"].set_index(["product", "booking_month", "mob"])
    october = vint.loc[("personal", pd.Timestamp("2025-10-01"))]
    assert october["accounts"].tolist() == [2, 2, 2]  # cohort of A1, A2 only (A3 declined)
    assert october["ever30"].tolist() == [0, 1, 1]  # A1 at 35 DPD at mob 1, stays counted
    assert october["ever90"].tolist() == [0, 0, 1]
    november = vint.loc[("merchant", pd.Timestamp("2025-11-01"))]
    assert november.index.tolist() == [0, 1]  # mob 2 is not reached by 2025-12-31
    assert november["ever30"].tolist() == [0, 1]


def test_exposure_monthly_sums_lines_and_balances(handmade_con):
    exp = _tables(handmade_con)["exposure_monthly"]
    dec = exp[exp["snapshot_date"] == pd.Timestamp("2025-12-31")].set_index("product")
    assert dec.loc["personal", "committed"] == 12000.0
    assert dec.loc["personal", "drawn"] == 1900.0
    assert dec.loc["personal", "dpd90_accounts"] == 1
    assert dec.loc["merchant", "dpd30_balance"] == 3000.0


def test_fraud_events_dedupe_reports_and_flag_caught(handmade_con):
    events = _tables(handmade_con)["fraud_events"].set_index("ref_id")
    assert sorted(events.index) == ["P2", "T3", "T4", "T6"]  # T3 reported twice, kept once
    assert events.loc["T3", "fraud_type"] == "skimming"  # the first report wins
    assert events["caught"].to_dict() == {"P2": False, "T3": False, "T4": True, "T6": False}
    assert events.loc["P2", "tier"] == "very large >20k"
    assert events.loc["T4", "tier"] == "medium <=2k"


def test_txn_tiers_count_card_and_outgoing_payments_only(handmade_con):
    tiers = _tables(handmade_con)["txn_tiers"]
    assert tiers.loc[tiers["ref_type"] == "pos", "txns"].sum() == 7
    assert tiers.loc[tiers["ref_type"] == "payment", "txns"].sum() == 2  # the bill is left out
    small_pos = tiers[(tiers["ref_type"] == "pos") & (tiers["tier"] == "small <=200")]
    assert small_pos["txns"].sum() == 3  # 50, 200 (inclusive bound), 37.5
    assert tiers["blocked"].sum() == 1


def test_terminal_risk_counts_cards_defrauded_after_a_genuine_swipe(handmade_con):
    risk = _tables(handmade_con)["terminal_risk"].set_index("terminal_id")
    assert risk.loc["TM1", "cards_later_defrauded"] == 2  # C1 and C2 were hit after TM1
    assert risk.loc["TM2", "cards_later_defrauded"] == 0
    assert risk.loc["TM2", "frauds"] == 2
    assert risk.loc["TM2", "fraud_amount"] == 6500.0


def test_merchant_cashout_signals(handmade_con):
    cash = _tables(handmade_con)["merchant_cashout"].set_index("merchant_id")
    assert cash.loc["M3", "round_share"] == pytest.approx(2 / 3)
    assert cash.loc["M3", "swipes_per_card"] == pytest.approx(1.5)
    assert cash.loc["M3", "top3_card_share"] == pytest.approx(1.0)
    assert cash.loc["M3", "cash_out_reports"] == 1
    assert cash.loc["M1", "cash_out_reports"] == 0


def test_publish_portfolio_reads_the_warehouse_read_only_and_publishes(
    tmp_path, monkeypatch, handmade_warehouse
):
    monkeypatch.setenv("YIDAI_HOME", str(tmp_path))
    reset_settings_cache()
    version = portfolio_tables.publish_portfolio()
    area = tmp_path / "serving" / "portfolio"
    assert current_version(area) == version
    assert read_meta(area)["as_of"] == "2025-11-03"  # latest application / transaction day
    apps = read_table(area, "applications_daily")
    assert apps is not None and apps["applications"].sum() == 4
    reset_settings_cache()


def test_publish_portfolio_names_missing_tables(tmp_path):
    warehouse = tmp_path / "empty.duckdb"
    duckdb.connect(str(warehouse)).close()
    with pytest.raises(YidaiError, match="lacks tables"):
        portfolio_tables.publish_portfolio(warehouse, tmp_path / "serving")
