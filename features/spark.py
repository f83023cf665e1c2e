"""Features on Spark, from the same declarations, and the parity of the two engines.

The daily profiles are the SQL that :func:`features.engine.compute_profiles_sql` generates
for DuckDB, run on Spark through :class:`yidai.core.spark.SparkSql` (sqlglot, ``duckdb`` ->
``spark``): no feature is written twice.  Both engines read the same lake
(:mod:`yidai.core.lake`); :func:`parity` builds the active sets with both and compares them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import tempfile
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from features.declarations import FeatureSet
from features.engine import SCHEMA, compute_profiles_sql, profile_table, resolve_feature_sets
from yidai.core import lake as lake_layout
from yidai.core.contracts import CONTRACTS
from yidai.core.errors import YidaiError
from yidai.core.spark import SparkSql, get_spark

log = logging.getLogger(__name__)
PARITY_TOLERANCE = 1e-9
FEATURES_DIR = "_features"
BUILDS_DIR = "_builds"


def profiles_duckdb(
    con: duckdb.DuckDBPyConnection, fs: FeatureSet, entity: str, as_of: dt.date
) -> pd.DataFrame:
    """The daily profiles of one entity of ``fs`` as of ``as_of`` computed by DuckDB over the
    tables (or lake views) of ``con``."""
    keys = f"__keys_{uuid.uuid4().hex[:8]}"
    sql = compute_profiles_sql(con, fs, entity, keys, as_of, as_of, all_entities=True)
    frame = con.sql(sql).df()
    con.execute(f"DROP TABLE IF EXISTS {keys}")
    return frame


def profiles_spark(
    spark: Any, fs: FeatureSet, entity: str, as_of: dt.date, *, runner: SparkSql | None = None
) -> Any:
    """The same profiles as a Spark DataFrame, from the same generated SQL (transpiled),
    over the session's contract views (:func:`yidai.core.lake.attach_spark`).  The source
    tables it caches are ``runner``'s views: drop them (``runner.drop_views()``) once the
    frame is used."""
    runner = runner or SparkSql(spark, cache=True)
    keys = f"__keys_{uuid.uuid4().hex[:8]}"
    sql = compute_profiles_sql(runner, fs, entity, keys, as_of, as_of, all_entities=True)  # type: ignore[arg-type]
    return runner.sql(sql)


def profiles_for_keys_spark(
    spark: Any,
    fs: FeatureSet,
    entity: str,
    keys: str,
    first_day: dt.date,
    last_day: dt.date,
    *,
    runner: SparkSql | None = None,
) -> Any:
    """Point-in-time profiles of the (entity_id, as_of) rows of the view ``keys`` (a training
    set's spine) on Spark: the declared queries' sliding windows over many days (DuckDB runs
    the daily layer, proven equal to them), transpiled (cached sources: ``runner``'s views)."""
    runner = runner or SparkSql(spark, cache=True)
    sql = compute_profiles_sql(
        runner,  # type: ignore[arg-type]
        fs,
        entity,
        keys,
        first_day,
        last_day,
        declared=True,
    )
    return runner.sql(sql)


#: The last point-in-time profiles :func:`profiles_for_keys_frame` built, under the key of
#: what they depend on: a credit model's scorecard challenger asks for the champion's training
#: set again in the same task (4-5 minutes of Spark per credit model in the demo).
@dataclass
class _LastBuild:
    key: tuple[Any, ...] | None = None
    frame: pd.DataFrame | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_last_build = _LastBuild()


def _profiles_key(lake: Path, fs: FeatureSet, entity: str, spine: pd.DataFrame) -> tuple[Any, ...]:
    """What a training set's profiles depend on: the set's declaration (fingerprint), the
    entity, the lake's committed runs (a committed run's files never change) and the spine."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(spine, index=False).to_numpy().tobytes())
    runs = tuple(sorted(lake_layout.committed_runs(lake)))
    return (str(lake), fs.name, fs.fingerprint, entity, runs, len(spine), digest.hexdigest())


def profiles_for_keys_frame(fs: FeatureSet, entity: str, known: pd.DataFrame) -> pd.DataFrame:
    """A training set's point-in-time profiles on Spark (the active session, over the lake):
    one row per (entity_id, as_of) of ``known``, as a pandas frame.

    The last result is kept (a copy is returned): asked again for the same set, entity, spine
    and committed lake runs, it is answered without Spark."""
    # deferred: settings are read at run time only
    from yidai.core.settings import get_settings

    lake = get_settings().lake
    spine = pd.DataFrame(
        {
            "entity_id": known["entity_id"].astype(str).to_numpy(),
            "as_of": pd.to_datetime(known["as_of"]).dt.date.to_numpy(),
        }
    )
    key = _profiles_key(lake, fs, entity, spine)
    with _last_build.lock:
        kept = _last_build.frame if _last_build.key == key else None
    if kept is not None:
        log.info(
            "%s/%s: the point-in-time profiles of the same spine and lake reused", fs.name, entity
        )
        return kept.copy()
    frame = _profiles_for_spine(lake, fs, entity, spine)
    with _last_build.lock:
        _last_build.key, _last_build.frame = key, frame.copy()
    return frame


def _profiles_for_spine(
    lake: Path, fs: FeatureSet, entity: str, spine: pd.DataFrame
) -> pd.DataFrame:
    """The point-in-time profiles of ``spine`` (entity_id, as_of) computed on Spark."""
    spark = get_spark()
    lake_layout.attach_spark(spark, lake, CONTRACTS)
    keys = f"__keys_{uuid.uuid4().hex[:8]}"
    spark.createDataFrame(spine, schema="entity_id string, as_of date").createOrReplaceTempView(
        keys
    )
    runner = SparkSql(spark, cache=True)
    try:
        first, last = min(spine["as_of"]), max(spine["as_of"])
        frame = profiles_for_keys_spark(
            spark, fs, entity, keys, first, last, runner=runner
        ).toPandas()
    finally:  # the cached sources freed: one process runs many builds (the demo's DAGs)
        runner.drop_views()
        spark.catalog.dropTempView(keys)
    return frame


def build_features_spark(
    as_of: dt.date,
    feature_sets: Sequence[str] | None = None,
    *,
    lake: Path | None = None,
) -> dict[str, int]:
    """Build the daily profiles of the feature sets on Spark from the lake and write them to
    ``<lake>/_features/<set>/<entity>/as_of=<day>/`` (replacing that day); rows per
    ``<set>/<entity>``."""
    # deferred: settings are read at run time only
    from yidai.core.settings import get_settings

    lake = lake or get_settings().lake
    spark = get_spark()
    lake_layout.attach_spark(spark, lake, CONTRACTS)
    written: dict[str, int] = {}
    for fs in resolve_feature_sets(feature_sets):
        for entity in fs.profile_entities:
            record = _build_record_path(lake, fs.name, entity, as_of)
            record.unlink(missing_ok=True)  # the day is incomplete until its record is back
            runner = SparkSql(spark, cache=True)
            frame = profiles_spark(spark, fs, entity, as_of, runner=runner).cache()
            target = lake / FEATURES_DIR / fs.name / entity / f"as_of={as_of.isoformat()}"
            try:
                frame.drop("as_of").coalesce(1).write.mode("overwrite").parquet(str(target))
                rows = int(frame.count())
            finally:  # the cached sources freed: a history builds many days in one process
                frame.unpersist()
                runner.drop_views()
            lake_layout.write_json_atomic(
                record,
                {
                    "feature_set": fs.name,
                    "entity": entity,
                    "as_of": as_of.isoformat(),
                    "fingerprint": fs.fingerprint,
                    "n_rows": rows,
                    "complete": True,
                    "built_at": dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(),
                },
            )
            written[f"{fs.name}/{entity}"] = rows
    return written


def _build_record_path(lake: Path, feature_set: str, entity: str, as_of: dt.date) -> Path:
    """Where a Spark build of one set's entity profiles as of a day is recorded (written last:
    the day's profiles are complete only with it)."""
    return lake / FEATURES_DIR / BUILDS_DIR / f"{feature_set}__{entity}__{as_of.isoformat()}.json"


def attach_features_duckdb(con: duckdb.DuckDBPyConnection, lake: Path) -> int:
    """The Spark-built profiles as DuckDB views named as the DuckDB engine's tables
    (``feat.<set>__<entity>``, read in place) and their build records as ``feat.builds``:
    what the serving snapshot publisher reads.  Returns the number of build records."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    con.execute(
        f"CREATE OR REPLACE TABLE {SCHEMA}.builds (feature_set VARCHAR, entity VARCHAR, "
        "as_of DATE, fingerprint VARCHAR, n_rows BIGINT, complete BOOLEAN, built_at TIMESTAMP)"
    )
    records = [
        json.loads(p.read_text(encoding="utf-8"))
        for p in sorted((lake / FEATURES_DIR / BUILDS_DIR).glob("*.json"))
    ]
    for r in records:
        con.execute(
            f"INSERT INTO {SCHEMA}.builds VALUES (?, ?, ?, ?, ?, ?, ?)",
            [r["feature_set"], r["entity"], r["as_of"], r["fingerprint"], r["n_rows"],
             r["complete"], r["built_at"]],
        )  # fmt: skip
        fs = resolve_feature_sets([r["feature_set"]])[0]
        folder = lake / FEATURES_DIR / fs.name / r["entity"]
        glob = str(folder / "as_of=*" / "*.parquet").replace("'", "''")
        con.execute(
            f"CREATE OR REPLACE VIEW {profile_table(fs, r['entity'])} AS SELECT * FROM "
            f"read_parquet('{glob}', hive_partitioning = true, hive_types = {{'as_of': DATE}})"
        )
    return len(records)


def publish_snapshot_spark(
    serving_dir: Path, as_of: dt.date, feature_sets: Sequence[str] | None = None
) -> dict[str, Path]:
    """Publish the serving snapshots of ``as_of`` from the profiles Spark wrote to the lake:
    the same publisher as on DuckDB (:func:`features.serving.publish_snapshot`), reading the
    lake's Parquet in place (the profiles of one day, and the payers' pairs)."""
    # deferred: settings are read at run time only; serving imports the online stores
    from features.serving import publish_snapshot
    from yidai.core.settings import get_settings
    from yidai.core.warehouse import connect_tables

    con = connect_tables(read_only=True)
    try:
        attach_features_duckdb(con, get_settings().lake)
        return publish_snapshot(con, serving_dir, as_of, feature_sets)
    finally:
        con.close()


@dataclass
class SetParity:
    """One feature set's entity profile on both engines."""

    name: str
    rows_duckdb: int
    rows_spark: int
    max_rel_diff: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        worst = max(self.max_rel_diff.values(), default=0.0)
        return self.rows_duckdb == self.rows_spark and worst <= PARITY_TOLERANCE


def compare_profiles(name: str, a: pd.DataFrame, b: pd.DataFrame) -> SetParity:
    """Rows of both and the largest relative difference per feature (``inf`` where one is
    missing or NULL and the other not), matched on (entity_id, as_of)."""
    result = SetParity(name, len(a), len(b))
    for frame in (a, b):
        frame["as_of"] = pd.to_datetime(frame["as_of"])
    merged = a.merge(b, on=["entity_id", "as_of"], how="outer", suffixes=("__d", "__s"))
    for col in [c for c in a.columns if c not in ("entity_id", "as_of")]:
        x = pd.to_numeric(merged[f"{col}__d"], errors="coerce").to_numpy(dtype=float)
        y = pd.to_numeric(merged[f"{col}__s"], errors="coerce").to_numpy(dtype=float)
        one_missing = np.isnan(x) != np.isnan(y)
        both = ~np.isnan(x) & ~np.isnan(y)
        scale = np.maximum(np.maximum(np.abs(x[both]), np.abs(y[both])), 1e-300)
        rel = np.abs(x[both] - y[both]) / scale
        worst = float(rel.max()) if rel.size else 0.0
        result.max_rel_diff[col] = math.inf if one_missing.any() else worst
    return result


def parity(
    as_of: dt.date,
    feature_sets: Sequence[str] | None = None,
    *,
    lake: Path | None = None,
    warehouse: Path | None = None,
) -> list[SetParity]:
    """Build the feature sets' daily profiles as of ``as_of`` with DuckDB and with Spark on
    the same data and compare them.

    The data is the lake if it holds committed runs; otherwise the DuckDB warehouse is
    exported once into a temporary lake (the same layout) that both engines read.
    """
    # deferred: settings are read at run time only
    from yidai.core.settings import get_settings

    settings = get_settings()
    lake = lake or settings.lake
    with tempfile.TemporaryDirectory(prefix="yidai-parity-") as tmp:
        if not lake_layout.committed_runs(lake):
            source = warehouse or settings.warehouse
            if not Path(source).exists():
                raise YidaiError(f"no data: the lake {lake} is empty and {source} does not exist")
            lake = Path(tmp) / "lake"
            lake_layout.export_warehouse(Path(source), lake)
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        lake_layout.attach_duckdb(con, lake)
        spark = get_spark()
        lake_layout.attach_spark(spark, lake, CONTRACTS)
        out = []
        for fs in resolve_feature_sets(feature_sets):
            for entity in fs.profile_entities:
                a = profiles_duckdb(con, fs, entity, as_of)
                runner = SparkSql(spark, cache=True)
                b = profiles_spark(spark, fs, entity, as_of, runner=runner).toPandas()
                runner.drop_views()
                out.append(compare_profiles(f"{fs.name}/{entity}", a, b))
        con.close()
    return out
