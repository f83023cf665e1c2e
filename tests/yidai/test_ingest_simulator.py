"""Ingesting the simulator's landing zone: every injected defect is quarantined (or, for late
rows, loaded into its event day), nothing else is, and the malformed file fails alone."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

import simulator
from yidai.core.contracts import CONTRACTS
from yidai.ingest import IngestReport, ingest_landing

REASON_OF_DEFECT = {
    "null": "missing value",
    "negative_amount": "below the minimum",
    "unknown_id": "unknown id",
    "duplicate": "duplicate key",
}


def _key_sql(source: str, record: str) -> str:
    """SQL for the defect-log key of a row (composite keys joined by ``|``, times as dates)."""
    contract = CONTRACTS[source]
    parts = []
    for name in contract.key:
        value = (
            f"{record}.{name}"
            if record != "json"
            else f"json_extract_string(record_json, '$.{name}')"
        )
        if contract.column(name).dtype == "TIMESTAMP":
            value = f"CAST(CAST({value} AS TIMESTAMP) AS DATE)"
        parts.append(f"CAST({value} AS VARCHAR)")
    return " || '|' || ".join(parts)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, IngestReport]:
    root = tmp_path_factory.mktemp("sim")
    config = simulator.SimConfig.preset("tiny", months=3)
    simulator.simulate(config, root / "landing", root / "truth")
    report = ingest_landing(root / "landing", root / "wh.duckdb")
    return root, root / "wh.duckdb", report


def test_malformed_file_fails_alone(simulated) -> None:
    root, _, report = simulated
    defects = duckdb.sql(
        f"SELECT key FROM read_parquet('{root / 'truth' / 'defects.parquet'}') "
        "WHERE defect = 'malformed_file'"
    ).fetchall()
    assert len(defects) == 1
    assert [f.path for f in report.failed] == [key for (key,) in defects]
    assert "corrupt or unreadable Parquet file" in (report.failed[0].error or "")
    assert len(report.with_status("loaded")) == len(report.files) - len(defects)


def test_every_injected_defect_is_handled_and_nothing_else_quarantined(simulated) -> None:
    root, warehouse, _ = simulated
    con = duckdb.connect(str(warehouse), read_only=True)
    con.execute(
        f"CREATE TEMP TABLE defects AS SELECT * FROM "
        f"read_parquet('{root / 'truth' / 'defects.parquet'}') WHERE defect <> 'malformed_file'"
    )
    quarantined = " UNION ALL ".join(
        f"SELECT '{s}' AS source, {_key_sql(s, 'json')} AS key, reason FROM quarantine "
        f"WHERE source = '{s}'"
        for s in CONTRACTS
    )
    con.execute(f"CREATE TEMP TABLE q AS {quarantined}")
    kinds = dict(con.execute("SELECT defect, count(*) FROM defects GROUP BY ALL").fetchall())
    assert set(kinds) >= {"null", "negative_amount", "unknown_id", "duplicate", "late_arrival"}
    for defect, fragment in REASON_OF_DEFECT.items():
        missed = con.execute(
            "SELECT d.source, d.key FROM defects d WHERE d.defect = ? AND NOT EXISTS ("
            "SELECT 1 FROM q WHERE q.source = d.source AND q.key = d.key "
            "AND q.reason LIKE '%' || ? || '%')",
            [defect, fragment],
        ).fetchall()
        assert missed == [], f"{defect} rows not quarantined: {missed[:5]}"
    loaded = " UNION ALL ".join(
        f"SELECT '{s}' AS source, {_key_sql(s, 't')} AS key FROM {s} t"
        for s in CONTRACTS
        if CONTRACTS[s].kind == "event"
    )
    late_missing = con.execute(
        f"SELECT d.source, d.key FROM defects d WHERE d.defect = 'late_arrival' "
        f"AND NOT EXISTS (SELECT 1 FROM ({loaded}) l WHERE l.source = d.source AND l.key = d.key)"
    ).fetchall()
    assert late_missing == []
    false_positives = con.execute(
        "SELECT q.source, q.key, q.reason FROM q WHERE NOT EXISTS ("
        "SELECT 1 FROM defects d WHERE d.source = q.source AND d.key = q.key)"
    ).fetchall()
    assert false_positives == []
    assert con.execute(
        "SELECT count(*) FROM ingest_reconciliation WHERE NOT balanced"
    ).fetchone() == (0,)
    con.close()
