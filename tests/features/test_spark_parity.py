"""The Spark engine against DuckDB on one tiny simulation (one SparkSession, local mode):
ingestion into the lake under the same contracts (same loaded rows, same quarantine reasons,
idempotent re-ingest, crash leftovers ignored and removed), DuckDB reading the lake, and
every feature of every active set equal between the engines."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

import simulator
from features import publish_snapshot
from features.definitions import CREDIT_FEATURE_SETS, FRAUD_FEATURE_SET
from features.engine import active_feature_sets, build_features, resolve_feature_sets
from features.inputs import require_warehouse_day
from features.spark import build_features_spark, parity, publish_snapshot_spark
from features.training import build_training_set
from yidai.cli import app
from yidai.core import lake as lake_layout
from yidai.core.contracts import CONTRACTS
from yidai.core.settings import reset_settings_cache
from yidai.core.spark import get_spark, stop_spark
from yidai.core.warehouse import connect_tables
from yidai.ingest import IngestReport, ingest_landing
from yidai.ingest.spark import ingest_landing_spark

DAYS = [dt.date(2025, 10, 1) + dt.timedelta(days=i) for i in range(10)]
AS_OF = DAYS[-1]


@pytest.fixture(scope="module")
def engines(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, Path, IngestReport, IngestReport]]:
    """A tiny simulation's first days ingested by both engines: (warehouse, lake, reports);
    one SparkSession for the module (local[2], two shuffle partitions)."""
    root = tmp_path_factory.mktemp("spark")
    mp = pytest.MonkeyPatch()
    mp.setenv("YIDAI_HOME", str(root / "home"))
    mp.setenv("YIDAI_SPARK_SHUFFLE_PARTITIONS", "2")
    reset_settings_cache()
    simulator.simulate(simulator.SimConfig.preset("tiny", months=3), root / "landing", root / "t")
    duck = ingest_landing(root / "landing", root / "wh.duckdb", days=DAYS)
    get_spark()
    spark = ingest_landing_spark(root / "landing", root / "lake", days=DAYS)
    yield root / "wh.duckdb", root / "lake", duck, spark
    stop_spark()
    mp.undo()
    reset_settings_cache()


def _lake_con(lake: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    lake_layout.attach_duckdb(con, lake)
    return con


def test_spark_ingest_reconciles_like_duckdb(engines) -> None:
    _, _, duck, spark = engines
    assert spark.rows_landed == duck.rows_landed > 0
    assert spark.rows_loaded == duck.rows_loaded
    assert spark.rows_quarantined == duck.rows_quarantined > 0
    assert spark.rows_landed == spark.rows_loaded + spark.rows_quarantined
    by_path = {f.path: f for f in duck.files}
    for f in spark.files:
        assert (f.status, f.rows_loaded, f.rows_quarantined, f.rows_late, f.batch_id) == (
            by_path[f.path].status,
            by_path[f.path].rows_loaded,
            by_path[f.path].rows_quarantined,
            by_path[f.path].rows_late,
            by_path[f.path].batch_id,
        ), f.path


def test_same_rows_quarantined_for_the_same_reasons(engines) -> None:
    warehouse, lake, _, _ = engines
    sql = "SELECT source, file, row_number, reason FROM {} ORDER BY ALL"
    con = _lake_con(lake)
    wh = duckdb.connect(str(warehouse), read_only=True)
    from_lake = con.execute(sql.format("quarantine")).fetchall()
    assert from_lake == wh.execute(sql.format("quarantine")).fetchall()
    assert len({r[3] for r in from_lake}) >= 2  # several reasons, not one kind


def test_duckdb_reads_the_lake_rows_equal_to_its_warehouse(engines) -> None:
    warehouse, lake, _, _ = engines
    con = _lake_con(lake)
    con.execute(f"ATTACH '{warehouse}' AS wh (READ_ONLY)")
    for name, contract in CONTRACTS.items():
        cols = ", ".join(f'"{c}"' for c in [*contract.column_names, "_batch_id"])
        for a, b in ((name, f"wh.{name}"), (f"wh.{name}", name)):
            missing = con.execute(
                f"SELECT count(*) FROM (SELECT {cols} FROM {a} EXCEPT ALL SELECT {cols} FROM {b})"
            ).fetchone()
            assert missing == (0,), f"{name}: {a} has rows {b} lacks"
    files = list((lake / "pos_transactions").glob("event_date=*/*.parquet"))
    assert files and all(p.parent.name.startswith("event_date=2025-") for p in files)


def test_reingest_is_a_no_op(engines) -> None:
    _, lake, _, first = engines
    landing = lake.parent / "landing"
    again = ingest_landing_spark(landing, lake, days=DAYS)
    assert again.rows_loaded == 0
    assert len(again.with_status("skipped")) == len(first.with_status("loaded"))
    assert len(again.failed) == len(first.failed)


def test_a_crashed_run_is_never_read_and_is_removed(engines, tmp_path: Path) -> None:
    _, lake, _, _ = engines
    before = _lake_con(lake).execute("SELECT count(*) FROM pos_transactions").fetchone()
    partition = next((lake / "pos_transactions").glob("event_date=*"))
    committed = next(partition.glob("*.parquet"))
    orphan = partition / "20990101T000000-deadbeef-0.parquet"  # a run without a manifest
    orphan.write_bytes(committed.read_bytes())
    (lake / lake_layout.STAGING / "x").mkdir(parents=True)
    after = _lake_con(lake).execute("SELECT count(*) FROM pos_transactions").fetchone()
    assert after == before
    assert lake_layout.clean_uncommitted(lake) == [orphan]
    assert not orphan.exists() and not (lake / lake_layout.STAGING).exists()


def test_every_feature_of_every_active_set_is_equal_on_both_engines(engines) -> None:
    _, lake, _, _ = engines
    results = parity(AS_OF, lake=lake)
    expected = {
        f"{fs.name}/{entity}"
        for fs in resolve_feature_sets(active_feature_sets())
        for entity in fs.profile_entities
    }
    assert {r.name for r in results} == expected
    for r in results:
        assert r.rows_duckdb == r.rows_spark > 0, r.name
        fs = resolve_feature_sets([r.name.split("/")[0]])[0]
        assert set(r.max_rel_diff) == set(fs.profile_columns(r.name.split("/")[1]))
        assert r.ok, (r.name, {k: v for k, v in r.max_rel_diff.items() if v > 1e-9})


def test_parity_command_exits_zero_and_prints_each_set(engines) -> None:
    _, lake, _, _ = engines
    out = CliRunner().invoke(
        app,
        [
            "features",
            "parity",
            "--engine",
            "spark",
            "--as-of",
            AS_OF.isoformat(),
            "--lake",
            str(lake),
            "-f",
            "merchant_credit_v2",
        ],
    )
    assert out.exit_code == 0, out.output
    assert "parity ok: 1 profile(s)" in out.output


def test_training_set_profiles_many_days_are_equal_on_both_engines(engines) -> None:
    """A training spine (entities at several decision days): DuckDB's daily layer and
    Spark's declared sliding windows give the same point-in-time features."""
    # deferred: pandas only for the spine
    import pandas as pd

    from features.engine import compute_profiles_sql
    from features.spark import compare_profiles, profiles_for_keys_spark

    _, lake, _, _ = engines
    con = _lake_con(lake)
    spark = get_spark()
    lake_layout.attach_spark(spark, lake, CONTRACTS)
    days = [DAYS[2], DAYS[6], DAYS[-1]]
    for fs in resolve_feature_sets(active_feature_sets()):
        for entity in fs.profile_entities:
            daily = compute_profiles_sql(con, fs, entity, "__k0", AS_OF, AS_OF, all_entities=True)
            del daily
            ids = con.execute("SELECT entity_id FROM __k0 ORDER BY entity_id LIMIT 60").df()
            con.execute("DROP TABLE __k0")
            spine = pd.concat([ids.assign(as_of=d) for d in days], ignore_index=True)
            con.register("__spine", spine)
            con.execute("CREATE OR REPLACE TEMP TABLE __keys AS SELECT * FROM __spine")
            spark.createDataFrame(spine).createOrReplaceTempView("__keys")
            a = con.sql(compute_profiles_sql(con, fs, entity, "__keys", days[0], days[-1])).df()
            b = profiles_for_keys_spark(spark, fs, entity, "__keys", days[0], days[-1]).toPandas()
            r = compare_profiles(f"{fs.name}/{entity}", a, b)
            assert r.rows_duckdb == r.rows_spark == len(spine) > 0, r.name
            assert r.ok, (r.name, {k: v for k, v in r.max_rel_diff.items() if v > 1e-9})


def _engine_spark(mp: pytest.MonkeyPatch, lake: Path, home: Path) -> None:
    """The Spark engine over ``lake``, its serving area under ``home``."""
    mp.setenv("YIDAI_ENGINE", "spark")
    mp.setenv("YIDAI_LAKE_DIR", str(lake))
    mp.setenv("YIDAI_HOME", str(home))
    reset_settings_cache()


def _snapshot_tables(serving: Path, feature_set: str) -> dict[str, pd.DataFrame]:
    """The live snapshot's tables of one set (its entities' profiles and the pairs)."""
    meta = json.loads((serving / "features" / feature_set / "CURRENT").read_text())
    folder = next(p for p in (serving / "features" / feature_set).iterdir() if p.is_dir())
    assert meta["as_of"] == AS_OF.isoformat()
    return {p.stem: pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))}


def test_the_spark_build_publishes_the_duckdb_snapshot(engines, tmp_path: Path) -> None:
    """The daily build and the serving publish of the Spark engine (the pipeline's dispatch):
    the snapshot published from its profiles in the lake equals DuckDB's, table by table (the
    fraud set: three entities and the payers' pairs)."""
    warehouse, lake, _, _ = engines
    sets = [FRAUD_FEATURE_SET]
    copy = tmp_path / "wh.duckdb"
    shutil.copy(warehouse, copy)
    con = duckdb.connect(str(copy))
    build_features(con, AS_OF, sets)
    publish_snapshot(con, tmp_path / "duck-serving", AS_OF, sets)
    con.close()
    mp = pytest.MonkeyPatch()
    try:
        _engine_spark(mp, lake, tmp_path / "spark-home")
        require_warehouse_day(None, AS_OF)  # the input check reads the lake
        built = build_features_spark(AS_OF, sets)
        assert built and all(n > 0 for n in built.values())
        publish_snapshot_spark(tmp_path / "spark-home" / "serving", AS_OF, sets)
    finally:
        mp.undo()
        reset_settings_cache()
    duck = _snapshot_tables(tmp_path / "duck-serving", FRAUD_FEATURE_SET)
    spark = _snapshot_tables(tmp_path / "spark-home" / "serving", FRAUD_FEATURE_SET)
    assert set(duck) == set(spark) and "pairs" in duck
    for table, frame in duck.items():
        other = spark[table]
        if table == "pairs":  # a set of (payer, field, value): order is not meaningful
            frame = frame.sort_values(list(frame.columns)).reset_index(drop=True)
            other = other.sort_values(list(other.columns)).reset_index(drop=True)
        assert len(frame) == len(other) > 0, table
        pd.testing.assert_frame_equal(frame, other, check_dtype=False, rtol=1e-9)


def test_a_training_set_on_spark_equals_duckdb(engines) -> None:
    """build_training_set through the engine dispatch: the spine and labels read from the
    lake, the point-in-time profiles computed on Spark; equal to the DuckDB warehouse's."""
    warehouse, lake, _, _ = engines
    con = duckdb.connect(str(warehouse), read_only=True)
    ids = con.execute("SELECT merchant_id FROM merchants ORDER BY merchant_id LIMIT 40").df()
    spine = pd.concat(
        [
            ids.rename(columns={"merchant_id": "entity_id"}).assign(
                decision_ts=pd.Timestamp(day) + pd.Timedelta(hours=10),
                label=i % 2,
                requested_amount=20_000.0 * (i + 1),
            )
            for i, day in enumerate([DAYS[3], DAYS[7], DAYS[-1]])
        ],
        ignore_index=True,
    )
    name = CREDIT_FEATURE_SETS["merchant"]
    on_duckdb = build_training_set(con, spine, name)
    con.close()
    mp = pytest.MonkeyPatch()
    try:
        _engine_spark(mp, lake, lake.parent / "spark-home")
        tables = connect_tables()
        on_spark = build_training_set(tables, spine, name)
        tables.close()
    finally:
        mp.undo()
        reset_settings_cache()
    assert len(on_spark) == len(on_duckdb) == len(spine)
    pd.testing.assert_frame_equal(on_duckdb, on_spark, check_dtype=False, rtol=1e-9)


def test_the_contract_views_follow_the_committed_runs(engines) -> None:
    """attach_spark keeps a view over unchanged files and re-reads a table whose committed
    files changed (a new run seen, a removed one gone)."""
    _, lake, _, _ = engines
    spark = get_spark()
    lake_layout.attach_spark(spark, lake, ["pos_transactions"])
    before = spark.table("pos_transactions").count()
    lake_layout.attach_spark(spark, lake, ["pos_transactions"])  # the same files: kept
    assert spark.table("pos_transactions").count() == before > 0
    committed = next((lake / "pos_transactions").glob("event_date=*/*.parquet"))
    run = "20990101T000000-feedface"
    copy = committed.parent / f"{run}-0.parquet"
    copy.write_bytes(committed.read_bytes())
    row = duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{committed}')").fetchone()
    extra = int(row[0]) if row else 0
    manifest = lake / lake_layout.MANIFEST / f"{run}.json"
    record = dict.fromkeys(lake_layout.MANIFEST_COLUMNS)
    record |= {"path": "x", "source": "pos_transactions", "status": "loaded", "run_id": run}
    try:
        lake_layout.attach_spark(spark, lake, ["pos_transactions"])  # uncommitted: not read
        assert spark.table("pos_transactions").count() == before
        lake_layout.write_json_atomic(manifest, [record])
        lake_layout.attach_spark(spark, lake, ["pos_transactions"])
        assert spark.table("pos_transactions").count() == before + extra > before
    finally:
        manifest.unlink(missing_ok=True)
        copy.unlink()
    lake_layout.attach_spark(spark, lake, ["pos_transactions"])
    assert spark.table("pos_transactions").count() == before


def test_a_training_set_asked_again_reuses_its_spark_profiles(engines) -> None:
    """The scorecard challenger asks for the champion's training set again: the same set,
    spine and committed lake runs are answered from the last Spark build (a copy, equal);
    another spine, entity or committed run has another key, so is computed again."""
    # deferred: the module under test, its helper patched with a counting wrapper
    import features.spark as spark_features

    _, lake, _, _ = engines
    fs = resolve_feature_sets([CREDIT_FEATURE_SETS["merchant"]])[0]
    con = _lake_con(lake)
    ids = con.execute("SELECT merchant_id FROM merchants ORDER BY merchant_id LIMIT 30").df()
    known = pd.concat(
        [ids.rename(columns={"merchant_id": "entity_id"}).assign(as_of=d) for d in DAYS[4:7]],
        ignore_index=True,
    )
    computed: list[int] = []
    original = spark_features._profiles_for_spine
    mp = pytest.MonkeyPatch()

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        computed.append(1)
        return original(*args, **kwargs)

    run = "20990102T000000-beefcafe"
    manifest = lake / lake_layout.MANIFEST / f"{run}.json"
    try:
        _engine_spark(mp, lake, lake.parent / "reuse-home")
        mp.setattr(spark_features, "_profiles_for_spine", counting)
        first = spark_features.profiles_for_keys_frame(fs, "merchant", known)
        feature = fs.profile_columns("merchant")[0]
        first[feature] = -1.0  # the caller's frame is its own
        again = spark_features.profiles_for_keys_frame(fs, "merchant", known)
        assert len(computed) == 1
        assert len(again) == len(known) > 0
        assert not (again[feature] == -1.0).all()
        pd.testing.assert_frame_equal(
            again, spark_features.profiles_for_keys_frame(fs, "merchant", known)
        )
        # what is computed again (the key differs; no Spark job needed to show it)
        spine = known.assign(entity_id=known["entity_id"].astype(str))
        key = spark_features._profiles_key(lake, fs, "merchant", spine)
        assert spark_features._profiles_key(lake, fs, "merchant", spine) == key
        assert spark_features._profiles_key(lake, fs, "merchant", spine.iloc[1:]) != key
        assert spark_features._profiles_key(lake, fs, "payer", spine) != key
        other_day = spine.assign(as_of=DAYS[0])
        assert spark_features._profiles_key(lake, fs, "merchant", other_day) != key
        record = dict.fromkeys(lake_layout.MANIFEST_COLUMNS)
        record |= {"path": "y", "source": "smes", "status": "loaded", "run_id": run}
        lake_layout.write_json_atomic(manifest, [record])
        assert spark_features._profiles_key(lake, fs, "merchant", spine) != key  # a new run
    finally:
        manifest.unlink(missing_ok=True)
        mp.undo()
        reset_settings_cache()
