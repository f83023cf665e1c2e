"""The book's definitions (yidai.decisioning.exposure) and the liquidity check built on them
(yidai.jobs.monitoring.check_liquidity, issue 16)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest

from tests.support.samples import insert_rows
from yidai.core.settings import Settings
from yidai.decisioning import exposure as book
from yidai.jobs.monitoring import check_liquidity

LINE = np.array([100.0, 100.0, 100.0, 50.0, 80.0])
OWED = np.array([30.0, 120.0, 40.0, 10.0, 0.0])
STATUS = np.array(["active", "active", "frozen", "none", "active"])


def test_each_figure_follows_its_formula() -> None:
    assert book.committed(LINE, STATUS).tolist() == [100, 100, 0, 0, 80]
    assert book.drawn(OWED, STATUS).tolist() == [30, 120, 40, 0, 0]
    assert book.available(LINE, OWED, STATUS).tolist() == [70, 0, 0, 0, 80]
    assert book.exposure(LINE, OWED, STATUS).tolist() == [100, 120, 40, 0, 80]
    assert book.utilisation(OWED, LINE, STATUS) == pytest.approx(150 / 280)
    assert book.frozen_share(STATUS) == pytest.approx(1 / 4)
    assert book.charged_off_loss([100.0], [30.0]).tolist() == [70.0]
    assert book.undrawn_commitment(LINE, OWED, STATUS) == 150.0
    assert book.drawn_share(15.0, 150.0) == pytest.approx(0.1)
    assert np.isnan(book.drawn_share(1.0, 0.0)) and np.isnan(book.frozen_share(["none"]))
    # exposure = drawn + available, line by line, so the totals reconcile
    assert np.allclose(
        book.exposure(LINE, OWED, STATUS),
        book.drawn(OWED, STATUS) + book.available(LINE, OWED, STATUS),
    )


def test_liquidity_alert_on_a_run_of_drawdowns(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, liquidity_drawn_share_alert=0.1)
    app = {"product": "merchant", "requested_amount": 1.0, "decision": "approved",
           "approved_limit": 100_000.0, "annual_rate": 0.1}  # fmt: skip
    insert_rows(
        settings.warehouse,
        "loan_applications",
        [
            {**app, "application_id": "A1", "ts": datetime(2026, 1, 2), "applicant_id": "M1",
             "account_id": "A1"},
            {**app, "application_id": "A2", "ts": datetime(2026, 1, 3), "applicant_id": "M2",
             "account_id": "A2"},
        ],
    )  # fmt: skip
    month_end = datetime(2026, 1, 31)
    perf = {"snapshot_date": month_end, "credit_limit": 100_000.0, "days_past_due": 0,
            "charged_off": 0.0, "recovered": 0.0}  # fmt: skip
    insert_rows(
        settings.warehouse,
        "loan_performance",
        [
            {**perf, "account_id": "A1", "outstanding": 40_000.0, "status": "open"},
            {**perf, "account_id": "A2", "outstanding": 90_000.0, "status": "frozen"},
        ],
    )
    insert_rows(
        settings.warehouse,
        "loan_drawdowns",
        [
            {"drawdown_id": "D1", "account_id": "A1", "ts": datetime(2026, 2, 2, 10),
             "amount": 3_000.0, "term_months": 3},
            {"drawdown_id": "D2", "account_id": "A1", "ts": datetime(2026, 2, 3, 10),
             "amount": 9_000.0, "term_months": 3},
        ],
    )  # fmt: skip
    got = check_liquidity(date(2026, 2, 3), settings=settings, days=7)
    assert got["undrawn_commitment"] == 60_000.0  # the frozen line adds nothing
    assert [d["share"] for d in got["drawn_per_day"]] == [0.05, 0.15]
    assert got["alert"] is not None and "2026-02-03" in got["alert"]
    quiet = check_liquidity(date(2026, 2, 2), settings=settings, days=7)
    assert quiet["alert"] is None and quiet["max_drawn_share"] == pytest.approx(0.05)
