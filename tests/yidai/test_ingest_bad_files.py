"""Missing, empty, corrupt and wrongly-typed files: one clear error naming the file, and the
rest of the run is loaded."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.samples import landing_file, sample_rows, write_rows, write_sample_file
from yidai.core.contracts import CONTRACTS
from yidai.core.errors import YidaiError
from yidai.ingest import ingest_landing

DAY = date(2025, 10, 1)
MASTERS = {"merchants": 10, "terminals": 15}


def _good_pos_rows(n: int = 10, start: int = 0) -> list[dict[str, object]]:
    return sample_rows(CONTRACTS["pos_transactions"], n, DAY, start=start, master_counts=MASTERS)


def _landing_with_bad_files(landing: Path) -> dict[str, str]:
    """Masters, one good POS file, and one bad file of each kind: path -> expected error."""
    for source, n in MASTERS.items():
        write_sample_file(
            landing_file(landing, source, DAY), CONTRACTS[source], n, DAY, master_counts=MASTERS
        )
    pos = CONTRACTS["pos_transactions"]
    write_rows(
        landing_file(landing, "pos_transactions", DAY, "part-0.parquet"), pos, _good_pos_rows()
    )
    folder = landing / "pos_transactions" / f"dt={DAY}"
    (folder / "part-1-empty.parquet").write_bytes(b"")
    good = (folder / "part-0.parquet").read_bytes()
    (folder / "part-2-truncated.parquet").write_bytes(good[: len(good) // 2])
    table = pq.read_table(folder / "part-0.parquet")
    amount = table.column_names.index("amount")
    pq.write_table(
        table.set_column(amount, "amount", table["amount"].cast(pa.string())),
        folder / "part-3-typed.parquet",
    )
    pq.write_table(table.drop_columns(["mcc"]), folder / "part-4-missing.parquet")
    pq.write_table(
        table.append_column("note", pa.array(["x"] * table.num_rows)),
        folder / "part-5-extra.parquet",
    )
    pq.write_table(table.slice(0, 0), folder / "part-6-norows.parquet")
    (folder / "part-7.json").write_text("{}")
    (folder / "part-8-header.csv").write_text("")
    prefix = f"pos_transactions/dt={DAY}/"
    return {
        prefix + "part-1-empty.parquet": "empty file (0 bytes)",
        prefix + "part-2-truncated.parquet": "corrupt or unreadable Parquet file",
        prefix + "part-3-typed.parquet": "wrong column type(s): amount is VARCHAR, expected DOUBLE",
        prefix + "part-4-missing.parquet": "missing column(s) mcc",
        prefix + "part-5-extra.parquet": "unexpected column(s) note",
        prefix + "part-6-norows.parquet": "empty file (no rows)",
        prefix + "part-7.json": "unsupported file type",
        prefix + "part-8-header.csv": "empty file (0 bytes)",
    }


def test_bad_files_fail_clearly_and_the_rest_loads(tmp_path: Path) -> None:
    landing, warehouse = tmp_path / "landing", tmp_path / "wh.duckdb"
    expected = _landing_with_bad_files(landing)
    report = ingest_landing(landing, warehouse)
    failed = {f.path: f.error or "" for f in report.failed}
    assert set(failed) == set(expected)
    for path, fragment in expected.items():
        assert fragment in failed[path], (path, failed[path])
        assert "\n" not in failed[path]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM pos_transactions").fetchone() == (10,)
        statuses = dict(con.execute("SELECT path, status FROM ingest_manifest").fetchall())
    assert all(statuses[p] == "failed" for p in expected)
    with pytest.raises(YidaiError, match="8 files failed"):
        report.raise_for_failures()


def test_cli_exits_non_zero_naming_the_bad_file(tmp_path: Path) -> None:
    landing, warehouse = tmp_path / "landing", tmp_path / "wh.duckdb"
    for source, n in MASTERS.items():
        write_sample_file(
            landing_file(landing, source, DAY), CONTRACTS[source], n, DAY, master_counts=MASTERS
        )
    bad = landing_file(landing, "pos_transactions", DAY, "part-0.parquet")
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"PAR1 not really parquet")
    env = {**os.environ, "YIDAI_HOME": str(tmp_path / "home")}
    args = [sys.executable, "-m", "yidai.cli", "ingest", "--no-progress"]
    done = subprocess.run(
        [*args, "--landing", str(landing), "--warehouse", str(warehouse)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 1 file failed: pos_transactions/dt=2025-10-01/part-0.parquet")
    assert "Traceback" not in done.stderr
    with duckdb.connect(str(warehouse), read_only=True) as con:  # the masters were loaded
        assert con.execute("SELECT count(*) FROM merchants").fetchone() == (10,)
    missing = subprocess.run(
        [*args, "--landing", str(tmp_path / "nowhere"), "--warehouse", str(warehouse)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"error: landing directory {tmp_path / 'nowhere'} does not exist"
    ]


def test_unknown_source_and_bad_day_are_user_errors(tmp_path: Path) -> None:
    (tmp_path / "landing").mkdir()
    with pytest.raises(YidaiError, match="unknown source 'atm'"):
        ingest_landing(tmp_path / "landing", tmp_path / "wh.duckdb", sources=["atm"])
    with pytest.raises(YidaiError, match="invalid day"):
        ingest_landing(tmp_path / "landing", tmp_path / "wh.duckdb", days=["2025-13-01"])
    with pytest.raises(YidaiError, match="no landing files"):
        ingest_landing(tmp_path / "landing", tmp_path / "wh.duckdb")
