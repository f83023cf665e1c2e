"""Duplicate keys are found whether the files share one batch or load in separate batches of
the same run: the exact re-check reads only the files with candidate rows, and keeps their
batch positions (file and row numbers in quarantine)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest

from tests.support.samples import landing_file, sample_rows, write_rows, write_sample_file
from yidai.core.contracts import CONTRACTS
from yidai.ingest import ingest_landing

D1, D2, D3 = date(2025, 10, 1), date(2025, 10, 2), date(2025, 10, 3)
MASTERS = {"merchants": 10, "terminals": 15}
POS = CONTRACTS["pos_transactions"]
WITHIN = "duplicate key (txn_id): repeated within the file"
EARLIER = "duplicate key (txn_id): already loaded from an earlier file"
EXPECTED = {
    (f"pos_transactions/dt={D2}/part-0.parquet", 6): WITHIN,
    (f"pos_transactions/dt={D3}/part-0.parquet", 4): EARLIER,
}


def _landing(root: Path) -> tuple[Path, dict[str, object]]:
    """D1 clean; D2 repeats its own row 3 at row 6; D3 repeats D2's row 1 at row 4."""
    landing = root / "landing"
    for source, n in MASTERS.items():
        write_sample_file(
            landing_file(landing, source, D1), CONTRACTS[source], n, D1, master_counts=MASTERS
        )
    write_sample_file(
        landing_file(landing, "pos_transactions", D1), POS, 30, D1, master_counts=MASTERS
    )
    d2 = sample_rows(POS, 20, D2, start=100, master_counts=MASTERS)
    d2[5]["txn_id"] = d2[2]["txn_id"]
    d2[5]["amount"] = 999.0  # the later occurrence differs: the first one must be kept
    write_rows(landing_file(landing, "pos_transactions", D2), POS, d2)
    d3 = sample_rows(POS, 10, D3, start=200, master_counts=MASTERS)
    d3[3]["txn_id"] = d2[0]["txn_id"]
    write_rows(landing_file(landing, "pos_transactions", D3), POS, d3)
    return landing, d2[2]


@pytest.mark.parametrize("batch_rows", [1_000, 1], ids=["one batch", "a batch per file"])
def test_duplicates_are_quarantined_with_their_file_and_row(
    tmp_path: Path, batch_rows: int
) -> None:
    landing, first = _landing(tmp_path)
    warehouse = tmp_path / "wh.duckdb"
    report = ingest_landing(landing, warehouse, batch_rows=batch_rows)
    assert report.ok and report.rows_quarantined == 2
    assert report.rows_loaded == 25 + 30 + 20 + 10 - 2
    with duckdb.connect(str(warehouse), read_only=True) as con:
        got = {
            (file, int(row)): reason
            for file, row, reason in con.execute(
                "SELECT file, row_number, reason FROM quarantine"
            ).fetchall()
        }
        kept = con.execute(
            "SELECT amount FROM pos_transactions WHERE txn_id = ?", [first["txn_id"]]
        ).fetchall()
        unbalanced = con.execute(
            "SELECT count(*) FROM ingest_reconciliation WHERE NOT balanced"
        ).fetchone()
        batches = con.execute(
            "SELECT count(DISTINCT batch_id) FROM ingest_manifest WHERE status = 'loaded'"
        ).fetchone()
    assert got == EXPECTED
    assert kept == [(first["amount"],)]
    assert unbalanced == (0,) and batches == (5,)
