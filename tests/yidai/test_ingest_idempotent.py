"""Re-ingesting is a no-op, changed files are refused, and a crash mid-batch leaves no partial
batch (the re-run completes it with exact counts)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb

from tests.support.samples import landing_file, sample_rows, write_rows, write_sample_file
from yidai.core.contracts import CONTRACTS
from yidai.ingest import ingest_landing

D1, D2, D3 = date(2025, 10, 1), date(2025, 10, 2), date(2025, 10, 3)
MASTERS = {"merchants": 10, "terminals": 15}
POS = CONTRACTS["pos_transactions"]
COUNTS_SQL = (
    "SELECT (SELECT count(*) FROM pos_transactions), (SELECT count(*) FROM quarantine), "
    "(SELECT count(*) FROM ingest_manifest)"
)


def _masters(landing: Path) -> None:
    for source, n in MASTERS.items():
        write_sample_file(
            landing_file(landing, source, D1), CONTRACTS[source], n, D1, master_counts=MASTERS
        )


def _counts(warehouse: Path) -> tuple[int, ...]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return tuple(con.execute(COUNTS_SQL).fetchone())  # type: ignore[arg-type]


def test_reingest_changes_nothing_and_changed_files_are_refused(tmp_path: Path) -> None:
    landing, warehouse = tmp_path / "landing", tmp_path / "wh.duckdb"
    _masters(landing)
    first = sample_rows(POS, 50, D1, master_counts=MASTERS)
    first[3]["amount"] = -1.0
    write_rows(landing_file(landing, "pos_transactions", D1), POS, first)
    report = ingest_landing(landing, warehouse)
    assert report.ok and report.rows_loaded == 25 + 49 and report.rows_quarantined == 1
    before = _counts(warehouse)
    assert before == (49, 1, 3)

    again = ingest_landing(landing, warehouse)
    assert [f.status for f in again.files] == ["skipped"] * 3
    assert again.rows_loaded == 0 and _counts(warehouse) == before

    # a new delivery repeating a key already in the warehouse: quarantined, not loaded twice
    later = sample_rows(POS, 5, D2, start=1000, master_counts=MASTERS)
    later[0]["txn_id"] = first[0]["txn_id"]
    write_rows(landing_file(landing, "pos_transactions", D2), POS, later)
    # the same path delivered again with other content: refused, nothing loaded twice
    changed = sample_rows(POS, 50, D1, start=5000, master_counts=MASTERS)
    write_rows(landing_file(landing, "pos_transactions", D1), POS, changed)
    third = ingest_landing(landing, warehouse)
    by_path = {f.path: f for f in third.files}
    refused = by_path[f"pos_transactions/dt={D1}/part-0.parquet"]
    assert refused.status == "failed" and "content changed" in (refused.error or "")
    new = by_path[f"pos_transactions/dt={D2}/part-0.parquet"]
    assert (new.status, new.rows_loaded, new.rows_quarantined) == ("loaded", 4, 1)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        reason = con.execute(
            "SELECT reason FROM quarantine WHERE file LIKE '%2025-10-02%'"
        ).fetchall()
        loaded_d1 = con.execute(
            "SELECT count(*) FROM ingest_manifest WHERE status = 'loaded' AND path LIKE '%10-01%'"
            " AND source = 'pos_transactions'"
        ).fetchone()
    assert reason == [("duplicate key (txn_id): already loaded from an earlier file",)]
    assert loaded_d1 == (1,)
    assert _counts(warehouse)[:2] == (49 + 4, 2)


def _start_ingest(landing: Path, warehouse: Path, home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "YIDAI_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [
            sys.executable, "-m", "yidai.cli", "-v", "ingest", "--no-progress",
            "--landing", str(landing), "--warehouse", str(warehouse), "--batch-rows", "1",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def test_crash_mid_batch_leaves_no_partial_batch_and_rerun_completes(tmp_path: Path) -> None:
    landing, warehouse = tmp_path / "landing", tmp_path / "wh.duckdb"
    _masters(landing)
    write_sample_file(landing_file(landing, "pos_transactions", D1), POS, 1_000, D1,
                      master_counts=MASTERS)  # fmt: skip
    big_rows = 1_500_000
    write_sample_file(landing_file(landing, "pos_transactions", D3), POS, big_rows, D3,
                      start=10_000, master_counts=MASTERS)  # fmt: skip

    proc = _start_ingest(landing, warehouse, tmp_path / "home")
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    for line in proc.stderr:  # kill as soon as the big file's transaction starts
        if f"({big_rows} rows)" in line:
            proc.send_signal(signal.SIGKILL)
            break
        assert time.monotonic() < deadline, "ingest never reached the big file"
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    with duckdb.connect(str(warehouse), read_only=True) as con:
        manifest = con.execute(
            "SELECT path FROM ingest_manifest WHERE source = 'pos_transactions'"
        ).fetchall()
        batches = con.execute(
            "SELECT _batch_id, count(*) FROM pos_transactions GROUP BY ALL"
        ).fetchall()
        assert con.execute("SELECT count(*) FROM quarantine").fetchone() == (0,)
    assert manifest == [(f"pos_transactions/dt={D1}/part-0.parquet",)]
    assert [n for _, n in batches] == [1_000]  # the killed batch left nothing behind

    rerun = ingest_landing(landing, warehouse)
    assert {f.path: f.status for f in rerun.files}[
        f"pos_transactions/dt={D3}/part-0.parquet"
    ] == "loaded"
    assert _counts(warehouse) == (1_000 + big_rows, 0, 4)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute(
            "SELECT count(*) FROM ingest_reconciliation WHERE NOT balanced"
        ).fetchone() == (0,)
