"""The landing zone honours the contracts; defects are injected, recorded and caught."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow.parquet as pq
import pytest

from simulator import SimConfig, simulate
from simulator.landing import arrow_schema
from yidai.core.contracts import CONTRACTS, EVENT_SOURCES, MASTER_SOURCES

if TYPE_CHECKING:
    from conftest import SimRun


def _files(landing: Path, source: str) -> list[str]:
    return [
        str(f)
        for f in sorted((landing / source).glob("dt=*/part-*.parquet"))
        if not f.name.startswith("part-zz-")
    ]


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.parquet"))
    }


def _violations(con: duckdb.DuckDBPyConnection, source: str, landing: Path) -> set[str]:
    """Keys of rows that break the contract (nulls, ranges, allowed values, references, keys)."""
    contract = CONTRACTS[source]
    files = _files(landing, source)
    con.execute(f"create or replace temp view t as select * from read_parquet({files!r})")
    key = " || '|' || ".join(
        f"strftime({k}, '%Y-%m-%d')" if CONTRACTS[source].column(k).dtype == "TIMESTAMP" else k
        for k in contract.key
    )
    bad: set[str] = set()
    conds = []
    for col in contract.columns:
        if not col.nullable:
            conds.append(f"{col.name} is null")
        if col.allowed is not None:
            allowed = ", ".join(f"'{v}'" for v in col.allowed)
            conds.append(f"({col.name} is not null and {col.name} not in ({allowed}))")
        if col.min_value is not None:
            conds.append(f"{col.name} < {col.min_value}")
        if col.references is not None:
            ref_source, ref_col = col.references.split(".")
            ref_files = _files(landing, ref_source)
            conds.append(
                f"({col.name} is not null and {col.name} not in "
                f"(select {ref_col} from read_parquet({ref_files!r})))"
            )
    rows = con.execute(f"select {key} from t where {' or '.join(conds)}").fetchall()
    bad |= {r[0] for r in rows if r[0] is not None}
    dups = con.execute(f"select {key} from t group by all having count(*) > 1").fetchall()
    bad |= {r[0] for r in dups}
    return bad


def test_files_have_exact_contract_schema(tiny_run: SimRun) -> None:
    for source, contract in CONTRACTS.items():
        files = _files(tiny_run.landing, source)
        assert files, f"no files for {source}"
        for path in files[:: max(len(files) // 7, 1)]:
            assert pq.read_schema(path) == arrow_schema(contract), path
    masters_day0 = {p.parent.name for p in (tiny_run.landing / "customers").glob("*/*.parquet")}
    assert f"dt={tiny_run.config.start.isoformat()}" in masters_day0
    assert len(masters_day0) > 1, "customers joining during the period land on their own day"


def test_every_written_row_is_on_disk_exactly_once(tiny_run: SimRun) -> None:
    """Files are written in the background: none is lost, overwritten or left half-written."""
    for source in CONTRACTS:
        files = _files(tiny_run.landing, source)
        on_disk = sum(pq.read_metadata(f).num_rows for f in files)
        assert on_disk == tiny_run.summary.rows[source], source
        assert len(files) + (source == "payments") == tiny_run.summary.files[source], source


def test_clean_rows_honour_contracts_and_defects_are_all_recorded(tiny_run: SimRun) -> None:
    defects = pq.read_table(tiny_run.truth / "defects.parquet").to_pandas()
    con = duckdb.connect()
    for source in MASTER_SOURCES + EVENT_SOURCES:
        found = _violations(con, source, tiny_run.landing)
        recorded = set(defects.loc[defects["source"] == source, "key"])
        missed = found - recorded
        assert not missed, f"{source}: {len(missed)} contract violations not in defects.parquet"
        if source in MASTER_SOURCES:
            assert not found, f"master {source} must be clean"


def test_defects_at_the_configured_rate(tiny_run: SimRun) -> None:
    defects = pq.read_table(tiny_run.truth / "defects.parquet").to_pandas()
    event_rows = sum(tiny_run.summary.rows[s] for s in EVENT_SOURCES)
    row_defects = defects[defects["defect"] != "malformed_file"]
    share = len(row_defects) / event_rows
    assert 0.5 * tiny_run.config.defect_rate < share < 1.5 * tiny_run.config.defect_rate
    kinds = set(defects["defect"])
    assert kinds == {
        "duplicate",
        "null",
        "negative_amount",
        "unknown_id",
        "late_arrival",
        "malformed_file",
    }
    # every recorded row defect points at a row that exists in the landing zone
    con = duckdb.connect()
    for source in EVENT_SOURCES:
        keys = set(row_defects.loc[row_defects["source"] == source, "key"])
        if not keys:
            continue
        contract = CONTRACTS[source]
        key = " || '|' || ".join(
            f"strftime({k}, '%Y-%m-%d')" if contract.column(k).dtype == "TIMESTAMP" else k
            for k in contract.key
        )
        present = {
            r[0]
            for r in con.execute(
                f"select {key} from read_parquet({_files(tiny_run.landing, source)!r})"
            ).fetchall()
        }
        assert keys <= present, source
    # late rows land after their event day
    late = row_defects[row_defects["defect"] == "late_arrival"]
    pos_late = late[late["source"] == "pos_transactions"]
    if len(pos_late):
        rows = con.execute(
            "select txn_id, ts::date, regexp_extract(filename, 'dt=([0-9-]+)', 1)::date "
            f"from read_parquet({_files(tiny_run.landing, 'pos_transactions')!r}, filename=true) "
            f"where txn_id in ({', '.join(repr(k) for k in pos_late['key'])})"
        ).fetchall()
        assert rows and all(1 <= (dt - day).days <= 3 for _, day, dt in rows)


def test_exactly_one_malformed_file_only_with_defects(
    tiny_run: SimRun, clean_short_run: SimRun
) -> None:
    broken = list(tiny_run.landing.rglob("part-zz-*.parquet"))
    assert len(broken) == 1
    with pytest.raises(Exception):  # noqa: B017 - any Arrow error: the file is unreadable
        pq.read_table(broken[0])
    defects = pq.read_table(tiny_run.truth / "defects.parquet").to_pandas()
    assert (defects["defect"] == "malformed_file").sum() == 1
    assert str(broken[0].relative_to(tiny_run.landing)) in set(defects["key"])
    assert not list(clean_short_run.landing.rglob("part-zz-*.parquet"))
    assert pq.read_table(clean_short_run.truth / "defects.parquet").num_rows == 0
    con = duckdb.connect()
    for source in MASTER_SOURCES + EVENT_SOURCES:
        assert not _violations(con, source, clean_short_run.landing), source


def test_same_seed_same_bytes_other_seed_differs(clean_short_run: SimRun, tmp_path: Path) -> None:
    again = simulate(clean_short_run.config, tmp_path / "a" / "landing", tmp_path / "a" / "truth")
    assert again.rows == clean_short_run.summary.rows
    assert _digest(tmp_path / "a") == _digest(clean_short_run.landing.parent)
    other = clean_short_run.config.replace(seed=12)
    simulate(other, tmp_path / "b" / "landing", tmp_path / "b" / "truth")
    first, second = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    common = set(first) & set(second)
    assert any(first[k] != second[k] for k in common)


def test_bad_config_is_a_clear_error() -> None:
    from yidai.core.errors import YidaiError

    with pytest.raises(YidaiError, match="unknown preset"):
        SimConfig.preset("huge")
    with pytest.raises(YidaiError, match="defect_rate"):
        SimConfig.preset("tiny", defect_rate=0.9)
    with pytest.raises(YidaiError, match="months"):
        SimConfig.preset("tiny", months=1)
