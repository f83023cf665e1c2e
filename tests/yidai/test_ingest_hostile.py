"""Hostile landing zones: links out of the zone, hidden files, files that break the CSV
reader, loosely typed numbers and placeholder event times.  Each case is a real file in
``tmp_path`` ingested into a real DuckDB warehouse."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.samples import landing_file, sample_rows, write_rows, write_sample_file
from yidai.core.contracts import CONTRACTS
from yidai.ingest import IngestReport, ingest_landing

DAY = date(2025, 10, 1)
MASTERS = {"merchants": 10, "terminals": 15}
POS = CONTRACTS["pos_transactions"]
SECRET = "TOP-SECRET-FIRST-LINE"


def _landing(tmp_path: Path) -> Path:
    """A landing zone with the masters POS rows refer to, and one good POS file."""
    landing = tmp_path / "landing"
    for source, n in MASTERS.items():
        write_sample_file(
            landing_file(landing, source, DAY), CONTRACTS[source], n, DAY, master_counts=MASTERS
        )
    write_rows(landing_file(landing, "pos_transactions", DAY, "part-0.parquet"), POS, _pos(5))
    return landing


def _pos(n: int, start: int = 0) -> list[dict[str, object]]:
    return sample_rows(POS, n, DAY, start=start, master_counts=MASTERS)


def _ingest(landing: Path, tmp_path: Path, max_lateness_days: int = 365) -> IngestReport:
    return ingest_landing(landing, tmp_path / "wh.duckdb", max_lateness_days=max_lateness_days)


def _errors(report: IngestReport) -> dict[str, str]:
    return {f.path: f.error or "" for f in report.failed}


def _manifest_errors(tmp_path: Path) -> dict[str, str]:
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT path, error FROM ingest_manifest WHERE status = 'failed'"
        ).fetchall()
    return {path: error for path, error in rows}


def _quarantine(tmp_path: Path, file: str) -> dict[int, tuple[str, dict[str, object]]]:
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT row_number, reason, record_json FROM quarantine WHERE file = ?", [file]
        ).fetchall()
    return {int(n): (reason, json.loads(record)) for n, reason, record in rows}


def _pos_count(tmp_path: Path) -> int:
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        return int(con.execute("SELECT count(*) FROM pos_transactions").fetchone()[0])  # type: ignore[index]


def _clean_env(tmp_path: Path) -> dict[str, str]:
    """The environment for a CLI run, without the caller's YIDAI_/MLFLOW_/AIRFLOW_ settings."""
    prefixes = ("YIDAI_", "MLFLOW_", "AIRFLOW_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return {**env, "YIDAI_HOME": str(tmp_path / "home")}


# ---------------------------------------------------------------- links and special files
def test_links_out_of_the_landing_zone_are_refused_and_never_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    landing = _landing(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.csv"
    secret.write_text(f"{SECRET},x\n1,2\n")
    day_outside = outside / f"dt={DAY}"
    write_rows(day_outside / "part-0.csv", POS, _pos(3, start=100))
    folder = landing_file(landing, "pos_transactions", DAY, "x").parent
    (folder / "part-1-link.csv").symlink_to(secret)
    (folder / "part-2-inside-link.parquet").symlink_to(folder / "part-0.parquet")
    (landing / "pos_transactions" / "dt=2025-10-02").symlink_to(day_outside)
    (landing / "mall_orders").symlink_to(outside)

    with caplog.at_level(logging.INFO):
        report = _ingest(landing, tmp_path)

    refused = {
        "pos_transactions/dt=2025-10-01/part-1-link.csv",
        "pos_transactions/dt=2025-10-01/part-2-inside-link.parquet",
        "pos_transactions/dt=2025-10-02",
        "mall_orders",
    }
    errors = _errors(report)
    assert set(errors) == refused
    for path in refused:
        assert errors[path] == "refused: symbolic link (links are never followed)"
    assert _manifest_errors(tmp_path) == errors
    assert SECRET not in caplog.text
    assert _pos_count(tmp_path) == 5  # the good file loaded, nothing through the links
    assert [f.path for f in report.with_status("loaded")][-1].endswith("part-0.parquet")


def test_a_fifo_is_refused_without_opening_it(tmp_path: Path) -> None:
    landing = _landing(tmp_path)
    fifo = landing_file(landing, "pos_transactions", DAY, "part-1.csv")
    os.mkfifo(fifo)  # opening it for reading would block the run forever
    report = _ingest(landing, tmp_path)
    assert _errors(report) == {
        "pos_transactions/dt=2025-10-01/part-1.csv": (
            "refused: not a regular file (FIFO, socket or device)"
        )
    }
    assert _pos_count(tmp_path) == 5


# ---------------------------------------------------------------- hidden and temporary names
def _landing_with_hidden_entries(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    landing = _landing(tmp_path)
    folder = landing_file(landing, "pos_transactions", DAY, "x").parent
    write_rows(folder / ".part-9.csv", POS, _pos(3, start=50))
    (folder / "_SUCCESS").write_text("")
    (folder / "_temporary").mkdir()
    write_rows(folder / "_temporary" / "part-0.parquet", POS, _pos(3, start=60))
    (landing / "pos_transactions" / ".staging").mkdir()
    (landing / ".DS_Store").write_bytes(b"\0")
    prefix = f"pos_transactions/dt={DAY}/"
    expected = {
        ".DS_Store": "hidden file (name starts with '.'): not ingested",
        "pos_transactions/.staging": "hidden folder (name starts with '.'): not ingested",
        prefix + ".part-9.csv": "hidden file (name starts with '.'): not ingested",
        prefix + "_SUCCESS": "file name starts with '_' (marker or temporary file): not ingested",
        prefix + "_temporary": (
            "folder name starts with '_' (marker or temporary file): not ingested"
        ),
    }
    return landing, expected


def test_hidden_and_temporary_entries_are_reported_with_the_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    landing, expected = _landing_with_hidden_entries(tmp_path)
    with caplog.at_level(logging.WARNING):
        report = _ingest(landing, tmp_path)
    assert report.ok
    assert {e.path: e.reason for e in report.skipped_entries} == expected
    for path, reason in expected.items():
        assert f"skipping {path}: {reason}" in caplog.text
    assert _pos_count(tmp_path) == 5


def test_cli_lists_and_counts_the_skipped_entries(tmp_path: Path) -> None:
    landing, expected = _landing_with_hidden_entries(tmp_path)
    warehouse = tmp_path / "wh.duckdb"
    args = ["ingest", "--no-progress", "--landing", str(landing), "--warehouse", str(warehouse)]
    done = subprocess.run(
        [sys.executable, "-m", "yidai.cli", *args],
        capture_output=True,
        text=True,
        env=_clean_env(tmp_path),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert "5 landing entries skipped for their names:" in lines
    for path, reason in expected.items():
        assert f"skipped {path}: {reason}" in lines


# ---------------------------------------------------------------- CSV errors name the cause
def _write_csv_lines(path: Path, lines: list[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(lines) + b"\n")


def _csv_lines(rows: list[dict[str, object]]) -> list[bytes]:
    """The header and rows of a POS CSV file, one UTF-8 line each (no line ends)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=POS.column_names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return [line.encode("utf-8") for line in buffer.getvalue().splitlines()]


def test_csv_errors_name_the_line_and_the_cause(tmp_path: Path) -> None:
    landing = _landing(tmp_path)
    folder = landing_file(landing, "pos_transactions", DAY, "x").parent

    big = _pos(3, start=10)
    big[0]["card_token"] = "X" * 31_457_280  # 30 MiB in one field of the first data row
    _write_csv_lines(folder / "part-1-big.csv", _csv_lines(big))

    gbk = _csv_lines(_pos(6, start=20))
    head = gbk[4].rsplit(b",", 1)[0] + b","  # line 5, up to its last field (status)
    gbk[4] = head + "已批准".encode("gbk")  # GBK D2 D1 ...: not UTF-8
    _write_csv_lines(folder / "part-2-gbk.csv", gbk)

    uneven = _csv_lines(_pos(8, start=30))
    uneven[6] = b",".join(uneven[6].split(b",")[:-3])  # line 7: 7 fields instead of 10
    _write_csv_lines(folder / "part-3-uneven.csv", uneven)

    report = _ingest(landing, tmp_path)
    prefix = f"pos_transactions/dt={DAY}/"
    assert _errors(report) == {
        prefix + "part-1-big.csv": "corrupt or unreadable CSV file "
        "(field of 31,457,280 bytes on line 2 exceeds the 1 MiB limit)",
        prefix + "part-2-gbk.csv": "corrupt or unreadable CSV file "
        f"(line 5 is not valid UTF-8: byte 0xd2 at position {len(head) + 1})",
        prefix + "part-3-uneven.csv": "corrupt or unreadable CSV file "
        "(line 7 has 7 fields, the header has 10)",
    }
    assert _manifest_errors(tmp_path) == _errors(report)
    assert _pos_count(tmp_path) == 5


def test_bad_bytes_in_the_csv_header_name_line_1(tmp_path: Path) -> None:
    landing = _landing(tmp_path)
    lines = _csv_lines(_pos(2, start=40))
    position = lines[0].index(b"amount") + 1
    lines[0] = lines[0].replace(b"amount", "金额".encode("gbk"))  # GBK BD F0 ...
    _write_csv_lines(landing_file(landing, "pos_transactions", DAY, "part-1.csv"), lines)
    assert _errors(_ingest(landing, tmp_path)) == {
        f"pos_transactions/dt={DAY}/part-1.csv": (
            f"line 1 is not valid UTF-8: byte 0xbd at position {position}"
        )
    }


# ---------------------------------------------------------------- numbers follow the contract
def test_csv_numbers_must_be_plain_literals(tmp_path: Path) -> None:
    landing = _landing(tmp_path)
    rows = _pos(9, start=200)
    loose = ["true", " 100 ", "1_000", "1e", " 100 abc", "0x10", "inf", "１００"]
    for row, value in zip(rows, loose, strict=False):
        row["amount"] = value
    rows[8]["amount"] = "1.5e2"  # a valid literal: loads
    write_rows(landing_file(landing, "pos_transactions", DAY, "part-1.csv"), POS, rows)
    draws = sample_rows(CONTRACTS["loan_drawdowns"], 4, DAY, start=0)
    for row, value in zip(draws, ["0x10", "1_2", "12.0", "+12"], strict=True):
        row["term_months"] = value
    write_rows(
        landing_file(landing, "loan_drawdowns", DAY, "part-0.csv"),
        CONTRACTS["loan_drawdowns"],
        draws,
    )
    report = _ingest(landing, tmp_path)
    assert report.ok, _errors(report)
    got = _quarantine(tmp_path, f"pos_transactions/dt={DAY}/part-1.csv")
    assert {n: reason.split("; ")[0] for n, (reason, _) in got.items()} == {
        n: "amount: not a valid DOUBLE" for n in range(1, 9)
    }
    assert [got[n][1]["amount"] for n in range(1, 9)] == loose  # kept as delivered
    drawn = _quarantine(tmp_path, f"loan_drawdowns/dt={DAY}/part-0.csv")
    assert {n: reason for n, (reason, _) in drawn.items()} == {
        n: "term_months: not a valid INTEGER" for n in (1, 2, 3)
    }
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        assert con.execute(
            "SELECT amount FROM pos_transactions WHERE txn_id = 'POS208'"
        ).fetchall() == [(150.0,)]
        assert con.execute("SELECT term_months FROM loan_drawdowns").fetchall() == [(12,)]


@pytest.mark.parametrize(
    ("arrow_type", "values", "actual"),
    [(pa.string(), ["100", "12.5"], "VARCHAR"), (pa.bool_(), [True, False], "BOOLEAN")],
)
def test_parquet_text_or_boolean_where_a_number_is_contracted_fails_the_file(
    tmp_path: Path, arrow_type: pa.DataType, values: list[object], actual: str
) -> None:
    landing = _landing(tmp_path)
    path = landing_file(landing, "pos_transactions", DAY, "part-1.parquet")
    table = pq.read_table(landing_file(landing, "pos_transactions", DAY, "part-0.parquet"))
    table = table.slice(0, 2)
    index = table.column_names.index("amount")
    pq.write_table(table.set_column(index, "amount", pa.array(values, arrow_type)), path)
    assert _errors(_ingest(landing, tmp_path)) == {
        f"pos_transactions/dt={DAY}/part-1.parquet": (
            f"wrong column type(s): amount is {actual}, expected DOUBLE"
        )
    }


# ---------------------------------------------------------------- event times in the far past
def test_event_times_far_in_the_past_are_quarantined(tmp_path: Path) -> None:
    landing = _landing(tmp_path)
    rows = _pos(4, start=300)
    rows[0]["ts"] = datetime(1900, 1, 1)
    rows[1]["ts"] = datetime(2024, 9, 30, 23, 59)  # 366 days before the delivery day
    rows[2]["ts"] = datetime(2024, 10, 1, 0, 0)  # exactly 365 days: still a late row
    write_rows(landing_file(landing, "pos_transactions", DAY, "part-1.parquet"), POS, rows)
    report = _ingest(landing, tmp_path)
    got = _quarantine(tmp_path, f"pos_transactions/dt={DAY}/part-1.parquet")
    assert {n: reason for n, (reason, _) in got.items()} == {
        1: "ts: before 1950-01-01; ts: more than 365 days before the delivery day",
        2: "ts: more than 365 days before the delivery day",
    }
    result = next(f for f in report.files if f.path.endswith("part-1.parquet"))
    assert (result.rows_loaded, result.rows_quarantined, result.rows_late) == (2, 2, 1)


def test_the_maximum_lateness_is_configurable_and_masters_keep_old_times(
    tmp_path: Path,
) -> None:
    landing = _landing(tmp_path)
    merchants = CONTRACTS["merchants"]
    extra = sample_rows(merchants, 2, DAY, start=900, master_counts=MASTERS)
    extra[0]["onboarded_at"] = datetime(1990, 5, 1)  # old, and loads
    extra[1]["onboarded_at"] = datetime(1900, 1, 1)
    write_rows(landing_file(landing, "merchants", DAY, "part-1.parquet"), merchants, extra)
    rows = _pos(2, start=400)
    rows[0]["ts"] = datetime(2025, 9, 20)  # 11 days late
    write_rows(landing_file(landing, "pos_transactions", DAY, "part-1.parquet"), POS, rows)
    report = _ingest(landing, tmp_path, max_lateness_days=10)
    assert report.ok, _errors(report)
    got = _quarantine(tmp_path, f"merchants/dt={DAY}/part-1.parquet")
    assert {n: reason for n, (reason, _) in got.items()} == {2: "onboarded_at: before 1950-01-01"}
    got = _quarantine(tmp_path, f"pos_transactions/dt={DAY}/part-1.parquet")
    assert {n: reason for n, (reason, _) in got.items()} == {
        1: "ts: more than 10 days before the delivery day"
    }
