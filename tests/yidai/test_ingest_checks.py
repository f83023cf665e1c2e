"""Each contract check sends the right rows to quarantine with the right reason; batches
reconcile; late rows load into their event day; CSV is accepted."""

from __future__ import annotations

import json
import math
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from tests.support.samples import landing_file, sample_rows, write_rows, write_sample_file
from yidai.core.contracts import CONTRACTS, MASTER_SOURCES
from yidai.ingest import IngestReport, ingest_landing

MASTERS = {"customers": 50, "cards": 60, "merchants": 10, "terminals": 15, "smes": 5}
MASTERS["mall_sellers"] = 8
D0 = date(2025, 10, 1)
D1 = date(2025, 10, 2)
D2 = date(2025, 10, 3)
AT_D1 = datetime(2025, 10, 2, 12, 0)

POS_EXPECTED = {
    2: "merchant_id: missing value in a non-nullable column",
    3: "mcc: value not in the allowed set",
    4: "amount: below the minimum 0.01",
    5: "merchant_id: unknown id (not in merchants)",
    6: "ts: later than the day after the delivery day",
    8: "duplicate key (txn_id): repeated within the file",
    10: "amount: not a finite number",
    11: "amount: below the minimum 0.01; status: value not in the allowed set",
}
CSV_EXPECTED = {
    2: "amount: not a valid DOUBLE",
    3: "due_date: not a valid DATE",
    4: "ts: missing value in a non-nullable column",
}


def _rows(source: str, n: int, day: date, start: int = 0) -> list[dict[str, object]]:
    return sample_rows(CONTRACTS[source], n, day, start=start, master_counts=MASTERS)


def _build(landing: Path) -> None:
    for source in MASTER_SOURCES:
        write_sample_file(
            landing_file(landing, source, D0),
            CONTRACTS[source],
            MASTERS[source],
            D0,
            master_counts=MASTERS,
        )
    pos = _rows("pos_transactions", 20, D1)
    for row in pos:
        row["ts"] = AT_D1
    pos[1]["merchant_id"] = None
    pos[2]["mcc"] = "0000"
    pos[3]["amount"] = -5.0
    pos[4]["merchant_id"] = "MER999"
    pos[5]["ts"] = AT_D1 + timedelta(days=3)
    pos[6]["customer_id"] = None  # nullable: loads
    pos[7]["txn_id"] = pos[0]["txn_id"]
    pos[8]["ts"] = AT_D1 - timedelta(days=3)  # late row: loads, counted late
    pos[9]["amount"] = math.nan
    pos[10]["amount"], pos[10]["status"] = 0.0, "lost"
    pos[11]["ts"] = datetime(2025, 10, 3, 23, 0)  # the day after delivery: allowed
    write_rows(landing_file(landing, "pos_transactions", D1), CONTRACTS["pos_transactions"], pos)
    pos2 = _rows("pos_transactions", 5, D2, start=100)
    pos2[0]["txn_id"] = pos[0]["txn_id"]
    write_rows(landing_file(landing, "pos_transactions", D2), CONTRACTS["pos_transactions"], pos2)

    payments = _rows("payments", 6, D1)
    payments[1]["amount"] = "abc"
    payments[2]["due_date"] = "not-a-date"
    payments[3]["ts"] = None
    write_rows(landing_file(landing, "payments", D1, "part-0.csv"), CONTRACTS["payments"], payments)
    draws = _rows("loan_drawdowns", 3, D1)
    draws[1]["term_months"] = "1.5"
    write_rows(
        landing_file(landing, "loan_drawdowns", D1, "part-0.csv"),
        CONTRACTS["loan_drawdowns"],
        draws,
    )


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, IngestReport]:
    root = tmp_path_factory.mktemp("checks")
    landing, warehouse = root / "landing", root / "wh.duckdb"
    _build(landing)
    return landing, warehouse, ingest_landing(landing, warehouse)


def _quarantine(warehouse: Path, file: str) -> dict[int, tuple[str, dict[str, object]]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            "SELECT row_number, reason, record_json FROM quarantine WHERE file = ?", [file]
        ).fetchall()
    return {int(n): (reason, json.loads(record)) for n, reason, record in rows}


def test_each_check_quarantines_the_right_rows_with_the_reason(ingested) -> None:
    _, warehouse, report = ingested
    assert report.ok, [f.describe_error() for f in report.failed]
    got = _quarantine(warehouse, "pos_transactions/dt=2025-10-02/part-0.parquet")
    assert {n: reason for n, (reason, _) in got.items()} == POS_EXPECTED
    assert got[5][1]["merchant_id"] == "MER999"  # the record is kept as delivered
    second = _quarantine(warehouse, "pos_transactions/dt=2025-10-03/part-0.parquet")
    assert {n: r for n, (r, _) in second.items()} == {
        1: "duplicate key (txn_id): already loaded from an earlier file"
    }


def test_csv_values_that_do_not_cast_are_quarantined_as_delivered(ingested) -> None:
    _, warehouse, _ = ingested
    got = _quarantine(warehouse, "payments/dt=2025-10-02/part-0.csv")
    assert {n: reason for n, (reason, _) in got.items()} == CSV_EXPECTED
    assert got[2][1]["amount"] == "abc"
    draws = _quarantine(warehouse, "loan_drawdowns/dt=2025-10-02/part-0.csv")
    assert {n: r for n, (r, _) in draws.items()} == {2: "term_months: not a valid INTEGER"}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        n_payments, amount_type = con.execute(
            "SELECT count(*), any_value(typeof(amount)) FROM payments"
        ).fetchone()  # type: ignore[misc]
    assert (n_payments, amount_type) == (3, "DOUBLE")


def test_every_batch_reconciles(ingested) -> None:
    _, warehouse, report = ingested
    with duckdb.connect(str(warehouse), read_only=True) as con:
        manifest = con.execute(
            "SELECT path, rows_landed, rows_loaded, rows_quarantined FROM ingest_manifest "
            "WHERE status = 'loaded'"
        ).fetchall()
        unbalanced = con.execute(
            "SELECT path FROM ingest_reconciliation WHERE NOT balanced"
        ).fetchall()
        pos_rows = con.execute("SELECT count(*) FROM pos_transactions").fetchone()[0]  # type: ignore[index]
    assert len(manifest) == len(report.files) == 10
    assert all(landed == loaded + quarantined for _, landed, loaded, quarantined in manifest)
    assert unbalanced == []
    assert pos_rows == 20 - len(POS_EXPECTED) + 5 - 1
    by_path = {path: (landed, loaded) for path, landed, loaded, _ in manifest}
    assert by_path["pos_transactions/dt=2025-10-02/part-0.parquet"] == (20, 12)


def test_late_rows_land_in_their_event_day(ingested) -> None:
    _, warehouse, report = ingested
    first = next(f for f in report.files if f.path.endswith("dt=2025-10-02/part-0.parquet"))
    assert first.source == "pos_transactions" and first.rows_late == 1
    with duckdb.connect(str(warehouse), read_only=True) as con:
        late = con.execute(
            "SELECT count(*) FROM pos_transactions p JOIN ingest_manifest m "
            "ON m.batch_id = p._batch_id WHERE CAST(p.ts AS DATE) = DATE '2025-09-29' "
            "AND m.delivery_day = DATE '2025-10-02'"
        ).fetchone()[0]  # type: ignore[index]
    assert late == 1
