"""Ingestion on Spark: the landing zone into the Parquet lake (``yidai.core.lake``) under the
same contracts, with the same quarantine reasons and the same reconciliation.

The row checks are the DuckDB statement of :func:`yidai.ingest.validation.scan_select_sql`
(one declaration of every rule) transpiled to Spark SQL; the whole-file checks (readable,
non-empty, the contract's columns) are :func:`yidai.ingest.inspect.inspect_file`, as for
DuckDB.  The new files of a source are one run: written under ``_staging``, moved into the
event-date partitions and committed by their manifest (``yidai.core.lake``), so a crash leaves
whole runs or nothing, and re-ingesting is a no-op.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb

from yidai.core import lake as lake_layout
from yidai.core.contracts import Contract, get_contract
from yidai.core.errors import YidaiError
from yidai.core.settings import get_settings
from yidai.core.spark import SparkSql, get_spark
from yidai.ingest.discovery import LandingFile, discover
from yidai.ingest.inspect import FileProblem, InspectedFile, inspect_file, prepare_file
from yidai.ingest.report import FileResult, IngestReport
from yidai.ingest.validation import (
    reason_duplicate,
    scan_select_sql,
    typed_columns_sql,
)

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def ingest_landing_spark(
    landing_dir: Path | str,
    lake_dir: Path | str | None = None,
    *,
    sources: Iterable[str] | None = None,
    days: Iterable[str | date] | None = None,
    max_lateness_days: int | None = None,
) -> IngestReport:
    """Ingest every new landing file into the lake with Spark (see the module docstring).

    Same report and the same per-file outcomes as :func:`yidai.ingest.ingest_landing`.
    """
    settings = get_settings()
    lake = Path(lake_dir) if lake_dir is not None else settings.lake
    if max_lateness_days is None:
        max_lateness_days = settings.ingest_max_lateness_days
    started = time.perf_counter()
    landing = Path(landing_dir)
    found = discover(landing, sources, days)
    if not found.files:
        raise YidaiError(f"no landing files to ingest under {landing} (for the given filters)")
    report = IngestReport(landing, lake, ignored=found.ignored, skipped_entries=found.skipped)
    removed = lake_layout.clean_uncommitted(lake)
    if removed:
        log.warning("removed %d file(s) of an unfinished earlier run", len(removed))
    loaded = {
        r["path"]: (r["checksum"], r["finished_at"])
        for r in lake_layout.manifest_records(lake)
        if r["status"] == "loaded"
    }
    spark = get_spark()
    inspector = duckdb.connect()
    try:
        for source in dict.fromkeys(f.source for f in found.files):
            contract = get_contract(source)
            run: list[InspectedFile] = []
            for file in (f for f in found.files if f.source == source):
                inspected = _admit(lake, report, loaded, inspector, contract, file)
                if inspected is None:
                    continue
                if run and not _same_scan(run[0], inspected):
                    _load_run(spark, lake, report, contract, run, max_lateness_days)
                    run = []
                run.append(inspected)
            if run:
                _load_run(spark, lake, report, contract, run, max_lateness_days)
    finally:
        inspector.close()
    report.seconds = time.perf_counter() - started
    log.info("spark ingest: %s", report.describe())
    return report


def _same_scan(first: InspectedFile, other: InspectedFile) -> bool:
    return first.file.fmt == other.file.fmt and list(first.column_types.items()) == list(
        other.column_types.items()
    )


def _admit(
    lake: Path,
    report: IngestReport,
    loaded: dict[str, tuple[str, str]],
    inspector: duckdb.DuckDBPyConnection,
    contract: Contract,
    file: LandingFile,
) -> InspectedFile | None:
    """The inspected file if it must be loaded; records skips and failures otherwise."""
    started = _now()
    if file.problem is not None:
        _fail(lake, report, file, None, file.problem, started)
        return None
    prepared = prepare_file(file)
    if prepared.checksum is None:
        _fail(lake, report, file, None, "file not found or unreadable", started)
        return None
    previous = loaded.get(file.rel_path)
    if previous is not None:
        if previous[0] == prepared.checksum:
            report.files.append(FileResult(file.rel_path, file.source, file.day, "skipped"))
            return None
        _fail(
            lake,
            report,
            file,
            prepared.checksum,
            f"content changed since it was ingested at {previous[1]} (sha256 "
            f"{previous[0][:12]}… now {prepared.checksum[:12]}…); refusing to load it twice: "
            "deliver corrections as a new file",
            started,
        )
        return None
    try:
        return inspect_file(inspector, file, contract, prepared.checksum, prepared.footer)
    except FileProblem as exc:
        _fail(lake, report, file, prepared.checksum, str(exc), started)
        return None


def _fail(
    lake: Path,
    report: IngestReport,
    file: LandingFile,
    checksum: str | None,
    error: str,
    started: datetime,
) -> None:
    log.error("%s: %s", file.rel_path, error)
    record = dict.fromkeys(lake_layout.MANIFEST_COLUMNS)
    record |= {
        "path": file.rel_path,
        "source": file.source,
        "delivery_day": file.day,
        "checksum": checksum,
        "status": "failed",
        "started_at": started,
        "finished_at": _now(),
        "error": error,
    }
    lake_layout.write_json_atomic(lake_layout.failed_record_path(lake, file.rel_path), record)
    report.files.append(FileResult(file.rel_path, file.source, file.day, "failed", error=error))


def _read_files(spark: Any, run: Sequence[InspectedFile]) -> Any:
    """The run's rows as delivered, with ``_f`` (index in ``run``), 1-based ``_row`` (file
    order) and ``_day`` (delivery day)."""
    # heavy: pyspark
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    paths = [str(f.file.path) for f in run]
    if run[0].file.fmt == "csv":
        reader = spark.read.option("header", "true").option("inferSchema", "false")
        frame = reader.option("multiLine", "true").option("escape", '"').csv(paths)
    else:
        frame = spark.read.parquet(*paths)
    files = spark.createDataFrame(
        [(f.file.rel_path, i, f.file.day, f.batch_id) for i, f in enumerate(run)],
        "__rel string, _f int, _day date, _batch_id string",
    )
    # <source>/dt=<day>/<name>: the path's last three parts (a string cut, not a regular
    # expression searched on every row: that was a hot spot of a large history's ingest)
    rel = F.substring_index(F.input_file_name(), "/", -3)
    frame = frame.withColumn("__rel", rel).join(F.broadcast(files), "__rel").drop("__rel")
    frame = frame.withColumn("__id", F.monotonically_increasing_id())
    order = Window.partitionBy("_f").orderBy("__id")
    frame = frame.withColumn("_row", F.row_number().over(order).cast("bigint")).drop("__id")
    return frame.withColumnRenamed("_batch_id", "__batch_id")


def _duplicates_sql(contract: Contract) -> str:
    """Spark SQL over ``__scan`` (good rows: ``_reason IS NULL``) and the lake table: the
    duplicate reason of each good row whose key is already loaded or repeats in the run (the
    first occurrence in delivery order of a key new to the lake is kept)."""
    key = ", ".join(f"`{k}`" for k in contract.key)
    on = " AND ".join(f"w.`{k}` = s.`{k}`" for k in contract.key)
    within = reason_duplicate(contract, within_file=True).replace("'", "\\'")
    earlier = reason_duplicate(contract, within_file=False).replace("'", "\\'")
    return f"""
SELECT s._f, s._row,
  CASE WHEN w.__in_lake IS NULL AND s.__first_f = s._f THEN '{within}' ELSE '{earlier}' END
    AS _dup
FROM (SELECT _f, _row, {key},
        first_value(_f) OVER (PARTITION BY {key} ORDER BY _f, _row) AS __first_f,
        row_number() OVER (PARTITION BY {key} ORDER BY _f, _row) AS __n
      FROM __scan WHERE _reason IS NULL) s
LEFT JOIN (SELECT DISTINCT {key}, true AS __in_lake FROM `{contract.name}`) w ON {on}
WHERE w.__in_lake IS NOT NULL OR s.__n > 1
"""


def _load_run(
    spark: Any,
    lake: Path,
    report: IngestReport,
    contract: Contract,
    run: list[InspectedFile],
    max_lateness_days: int,
) -> None:
    """Check, write and commit one run; on an error every file of it is recorded failed."""
    started = _now()
    run_id = f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    staging = lake / lake_layout.STAGING / run_id
    try:
        results = _write_run(spark, lake, staging, contract, run, run_id, max_lateness_days)
    except Exception as exc:
        shutil.rmtree(staging, ignore_errors=True)
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        for inspected in run:
            _fail(
                lake, report, inspected.file, inspected.checksum, f"load failed: {message}", started
            )
        return
    finished = _now()
    records = []
    for r, f in zip(results, run, strict=True):
        record = dict.fromkeys(lake_layout.MANIFEST_COLUMNS)
        record |= {
            "path": r.path,
            "source": r.source,
            "delivery_day": r.day,
            "checksum": f.checksum,
            "file_bytes": f.size,
            "rows_landed": r.rows_landed,
            "rows_loaded": r.rows_loaded,
            "rows_quarantined": r.rows_quarantined,
            "rows_late": r.rows_late,
            "status": "loaded",
            "batch_id": r.batch_id,
            "run_id": run_id,
            "started_at": started,
            "finished_at": finished,
        }
        records.append(record)
    # the commit point: the run's manifest, written whole
    lake_layout.write_json_atomic(lake / lake_layout.MANIFEST / f"{run_id}.json", records)
    for f in run:
        lake_layout.failed_record_path(lake, f.file.rel_path).unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    report.files.extend(results)


def _write_run(
    spark: Any,
    lake: Path,
    staging: Path,
    contract: Contract,
    run: list[InspectedFile],
    run_id: str,
    max_lateness_days: int,
) -> list[FileResult]:
    # heavy: pyspark
    from pyspark.sql import functions as F

    runner = SparkSql(spark, cache=False)
    refs = {c.references.split(".")[0] for c in contract.columns if c.references}
    lake_layout.attach_spark(spark, lake, {contract.name, *refs})
    types = run[0].column_types
    _read_files(spark, run).createOrReplaceTempView("__delivered")
    runner.sql(
        f"SELECT __batch_id, {typed_columns_sql(contract, types)} FROM __delivered"
    ).createOrReplaceTempView("__typed")
    scan = runner.sql(
        scan_select_sql(
            contract,
            types,
            max_lateness_days,
            "__typed",
            with_columns=["__batch_id", *contract.column_names],
        )
    ).cache()
    scan.createOrReplaceTempView("__scan")
    dups = spark.sql(_duplicates_sql(contract))
    checked = (
        scan.join(dups, ["_f", "_row"], "left")
        .withColumn("_reason", F.coalesce(F.col("_reason"), F.col("_dup")))
        .withColumn(
            "record_json",
            F.when(
                F.col("_dup").isNotNull() & F.col("record_json").isNull(),
                F.to_json(
                    F.struct(*[F.col(c).cast("string").alias(c) for c in contract.column_names])
                ),
            ).otherwise(F.col("record_json")),
        )
        .cache()
    )
    names = spark.createDataFrame(
        [(i, f.file.rel_path) for i, f in enumerate(run)], "_f int, __file string"
    )
    checked = checked.join(F.broadcast(names), "_f")
    batch_of, file_of = F.col("__batch_id"), F.col("__file")
    ingested_at = F.lit(_now()).cast("timestamp_ntz")
    good = checked.where(F.col("_reason").isNull())
    event = contract.event_time
    partition = F.to_date(F.col(event)) if event else F.lit(None).cast("date")
    (
        good.select(
            *[F.col(c) for c in contract.column_names],
            batch_of.alias("_batch_id"),
            ingested_at.alias("_ingested_at"),
            partition.alias(lake_layout.PARTITION),
        )
        # one file per event day and run; a given number of tasks (not coalesced into one
        # by adaptive execution: the files of a long history are written in parallel)
        .repartition(get_settings().spark_shuffle_partitions, lake_layout.PARTITION)
        .write.mode("overwrite")
        .partitionBy(lake_layout.PARTITION)
        .parquet(str(staging / "data"))
    )
    bad = checked.where(F.col("_reason").isNotNull())
    (
        bad.select(
            F.lit(contract.name).alias("source"),
            file_of.alias("file"),
            F.col("_row").alias("row_number"),
            F.col("_reason").alias("reason"),
            F.col("record_json"),
            batch_of.alias("_batch_id"),
            ingested_at.alias("_ingested_at"),
        )
        .coalesce(1)
        .write.mode("overwrite")
        .parquet(str(staging / "quarantine"))
    )
    counts = {
        int(r["_f"]): (int(r["n"]), int(r["bad"]), int(r["late"]))
        for r in checked.groupBy("_f")
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.count(F.col("_reason")).alias("bad"),
            F.sum(F.when(F.col("_reason").isNull() & F.col("_late"), 1).otherwise(0)).alias("late"),
        )
        .collect()
    }
    scan.unpersist()
    checked.unpersist()
    results = []
    for i, f in enumerate(run):
        n, n_bad, n_late = counts.get(i, (0, 0, 0))
        if n != f.rows:
            raise YidaiError(
                f"reconciliation failed for {f.file.rel_path}: {f.rows} rows in the file, "
                f"{n} read (did it change while read?)"
            )
        results.append(
            FileResult(
                f.file.rel_path,
                contract.name,
                f.file.day,
                "loaded",
                rows_landed=n,
                rows_loaded=n - n_bad,
                rows_quarantined=n_bad,
                rows_late=n_late,
                batch_id=f.batch_id,
            )
        )
    _publish_staged(staging / "data", lake / contract.name, run_id)
    _publish_staged(staging / "quarantine", lake / lake_layout.QUARANTINE / contract.name, run_id)
    return results


def _publish_staged(staged: Path, target: Path, run_id: str) -> None:
    """Move the staged Parquet files into ``target`` (keeping the partition folders), named
    ``<run_id>-<n>.parquet``: not read until the run's manifest is written."""
    for n, path in enumerate(sorted(staged.rglob("*.parquet"))):
        folder = target / path.parent.relative_to(staged)
        folder.mkdir(parents=True, exist_ok=True)
        path.rename(folder / f"{run_id}-{n}.parquet")
