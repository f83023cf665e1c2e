"""The Spark engine's ground: one lazily started SparkSession, and DuckDB SQL run on Spark.

The SQL of the contracts and the features is written once, in DuckDB's dialect; on Spark it
is transpiled with sqlglot (``duckdb`` -> ``spark``) by :func:`to_spark_sql`, and a few
DuckDB idioms that sqlglot leaves as they are are rewritten here, in one place.

pyspark and sqlglot are imported inside the functions (``# heavy:``): this module is
imported by light code (the CLI, DAG parsing) that must not start a JVM.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from typing import Any

from yidai.core.errors import YidaiError
from yidai.core.settings import get_settings

log = logging.getLogger(__name__)
_lock = threading.Lock()
_session: Any = None
ENGINES = ("duckdb", "spark")
#: File-source settings of a local session (``local[N]``): the lake is read by listing its
#: committed files (thousands of small ones: one per event day and run), which Spark lists
#: with a job of one task per path beyond 32 paths and packs one small file per task at its
#: 4 MB open cost; on one machine the driver lists them in milliseconds and a task can read
#: many (docs/benchmarks.md, "The Spark demo, second attempt").  A cluster keeps Spark's
#: defaults (listing on the executors suits an object store).
LOCAL_FILE_CONFIG = {
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "1000000",
    "spark.sql.files.openCostInBytes": str(32 * 1024),
}


def engine_name(engine: str | None = None) -> str:
    """The batch engine to use: ``engine`` if given, else the ``YIDAI_ENGINE`` setting."""
    name = (engine or get_settings().engine).lower()
    if name not in ENGINES:
        raise YidaiError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}")
    return name


def get_spark() -> Any:
    """The process's SparkSession, started on first use.

    ``YIDAI_SPARK_REMOTE`` (``sc://host:15002``) connects to a Spark Connect server;
    otherwise a classic session on ``YIDAI_SPARK_MASTER`` (``local[2]`` by default).  The
    session time zone is UTC (event times are UTC wall-clock times without zone).
    """
    global _session
    with _lock:
        if _session is not None and not _stopped(_session):
            return _session
        settings = get_settings()
        # py4j logs every socket it closes at INFO, also from finalisers at interpreter exit
        # (when the log stream may already be closed): its warnings are enough
        logging.getLogger("py4j").setLevel(logging.WARNING)
        # heavy: pyspark starts a JVM (or a Connect client)
        from pyspark.sql import SparkSession

        builder: Any = SparkSession.builder.appName("yidai")
        if settings.spark_remote:
            builder = builder.remote(settings.spark_remote)
        else:
            os.environ.setdefault("PYSPARK_PYTHON", _python())
            builder = (
                builder.master(settings.spark_master)
                .config("spark.driver.memory", settings.spark_driver_memory)
                .config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            )
        if not settings.spark_remote and settings.spark_master.startswith("local"):
            for key, value in LOCAL_FILE_CONFIG.items():
                builder = builder.config(key, value)
        builder = (
            builder.config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.shuffle.partitions", str(settings.spark_shuffle_partitions))
            # decimal products keep their scale as in DuckDB (sums of squares stay exact)
            .config("spark.sql.decimalOperations.allowPrecisionLoss", "false")
        )
        session = builder.getOrCreate()
        if not settings.spark_remote:
            session.sparkContext.setLogLevel("ERROR")
        log.info("Spark session started (%s)", settings.spark_remote or settings.spark_master)
        _session = session
        return session


def stop_spark() -> None:
    """Stop the process's SparkSession (if started)."""
    global _session
    with _lock:
        if _session is not None:
            _session.stop()
            _session = None


def _stopped(session: Any) -> bool:
    try:
        jsc = getattr(session.sparkContext, "_jsc", None)
        return jsc is None or bool(jsc.sc().isStopped())
    except Exception:  # Spark Connect sessions have no sparkContext
        return False


def _python() -> str:
    import sys  # deferred: only needed when a local session starts

    return sys.executable


_CREATE_TEMP = re.compile(
    r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?TEMP(?:ORARY)?\s+TABLE\s+(\w+)\s+AS\s+(.*)$",
    re.IGNORECASE | re.DOTALL,
)


def to_spark_sql(duckdb_sql: str, schema: Any = None) -> str:
    """One DuckDB statement transpiled to Spark SQL (sqlglot).

    ``SELECT * REPLACE (...)`` has no Spark form: such a statement is first qualified
    against ``schema`` (``schema(table) -> {column: type}``), which expands the stars."""
    # heavy: sqlglot
    import sqlglot
    from sqlglot import exp
    from sqlglot.optimizer.qualify import qualify

    try:
        tree = sqlglot.parse_one(duckdb_sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise YidaiError(f"cannot transpile to Spark SQL: {exc}") from exc
    if any(star.args.get("replace") for star in tree.find_all(exp.Star)) and schema is not None:
        tables = {t.name for t in tree.find_all(exp.Table)}
        known = {name: schema(name) for name in tables}
        tree = qualify(
            tree,
            schema={k: v for k, v in known.items() if v},
            dialect="duckdb",
            quote_identifiers=False,
            identify=False,
            validate_qualify_columns=False,
        )
    for table in list(tree.find_all(exp.Table)):
        series = table.this
        if isinstance(series, exp.GenerateSeries) and series.args.get("is_end_exclusive"):
            # DuckDB range(n) t(c): Spark's range(start, end) table function, same columns
            start, end = series.args["start"], series.args["end"]
            series.replace(exp.Anonymous(this="range", expressions=[start.copy(), end.copy()]))
    _duckdb_decimal_casts(tree)
    _duckdb_functions(tree)
    _union_by_name(tree, schema)
    for window in list(tree.find_all(exp.Window)):
        if isinstance(window.this, exp.Median):
            # Spark's median takes no window frame; its exact percentile does (same
            # interpolation as DuckDB's median: the mean of the two middle values)
            value = window.this.this
            window.set(
                "this",
                exp.Anonymous(
                    this="percentile", expressions=[value.copy(), exp.Literal.number(0.5)]
                ),
            )
        count = window.this
        if isinstance(count, exp.Count) and isinstance(count.this, exp.Distinct):
            # no DISTINCT window aggregate on Spark: the size of the window's set of values
            (value,) = count.this.expressions
            window.set("this", exp.Anonymous(this="collect_set", expressions=[value.copy()]))
            window.replace(exp.Anonymous(this="size", expressions=[window.copy()]))
    for div in list(tree.find_all(exp.Div)):
        # DuckDB divides in DOUBLE (also decimals); Spark keeps a decimal of limited scale
        for side in ("this", "expression"):
            operand = div.args[side]
            div.set(side, exp.Cast(this=operand, to=exp.DataType.build("DOUBLE")))
    return tree.sql(dialect="spark")


def _duckdb_decimal_casts(tree: Any) -> None:
    """``CAST(x AS DECIMAL(p, s))`` rounded as DuckDB does: ``x * 10^s`` in DOUBLE, rounded
    half away from zero (Spark rounds the exact binary value: 12.345 -> 12.34, not 12.35)."""
    # heavy: sqlglot
    import sqlglot
    from sqlglot import exp

    for cast in list(tree.find_all(exp.Cast)):
        to = cast.args["to"]
        if to.this != exp.DataType.Type.DECIMAL or len(to.expressions) != 2:
            continue
        precision, scale = (int(e.this.this) for e in to.expressions)
        if scale <= 0 or isinstance(cast.this, exp.Literal):
            continue
        unit = "0." + "0" * (scale - 1) + "1"
        template = sqlglot.parse_one(
            f"CAST(CAST(round(CAST(__x AS DOUBLE) * {10**scale}) AS DECIMAL({precision}, 0)) "
            f"* {unit} AS DECIMAL({precision}, {scale}))",
            read="spark",
        )
        template.find(exp.Column).replace(cast.this.copy())  # type: ignore[union-attr]
        cast.replace(template)


def _select_names(side: Any, schema: Any) -> list[str]:
    """The output column names of one SELECT, a star expanded from its one FROM (a subquery's
    columns, or a table's from ``schema``)."""
    # heavy: sqlglot
    from sqlglot import exp

    out: list[str] = []
    for e in side.expressions:
        if isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star)):
            clause = side.args.get("from_") or side.args.get("from")
            source = clause.this if clause is not None else None
            if isinstance(source, exp.Subquery):
                out.extend(_select_names(source.this, schema))
            elif isinstance(source, exp.Table) and schema is not None and schema(source.name):
                out.extend(schema(source.name))
            else:
                raise YidaiError("UNION BY NAME over a star of unknown columns")
        else:
            out.append(e.alias_or_name)
    return out


def _union_by_name(tree: Any, schema: Any = None) -> None:
    """``a UNION ALL BY NAME b`` as a positional union: each side re-projected onto every
    column of both (NULL where a side lacks one), in the order DuckDB gives them."""
    # heavy: sqlglot
    from sqlglot import exp

    unions = [u for u in tree.find_all(exp.Union) if u.args.get("by_name")]
    for union in reversed(unions):  # innermost first
        left, right = union.this, union.expression
        if not isinstance(left, exp.Select) or not isinstance(right, exp.Select):
            raise YidaiError("UNION BY NAME of more than two SELECTs is not supported on Spark")
        sides = {id(left): _select_names(left, schema), id(right): _select_names(right, schema)}
        names = list(dict.fromkeys([*sides[id(left)], *sides[id(right)]]))
        for side in (left, right):
            have = set(sides[id(side)])
            cols = [
                exp.column(n, quoted=True) if n in have else exp.alias_(exp.null(), n, quoted=True)
                for n in names
            ]
            side.replace(exp.select(*cols).from_(exp.Subquery(this=side.copy(), alias="_bn")))
        union.set("by_name", None)


_FUNCTION_TEMPLATES = {
    # DuckDB function -> Spark expression over __a, __b (the call's arguments)
    "REGEXP_FULL_MATCH": "__a RLIKE concat('^(?:', __b, ')$')",
    "ISFINITE": "NOT (isnan(__a) OR abs(__a) = CAST('Infinity' AS DOUBLE))",
}


def _duckdb_functions(tree: Any) -> None:
    """DuckDB functions without a Spark namesake, rewritten from :data:`_FUNCTION_TEMPLATES`."""
    # heavy: sqlglot
    import sqlglot
    from sqlglot import exp

    for call in list(tree.find_all(exp.Func)):
        anonymous = isinstance(call, exp.Anonymous)
        name = str(call.this) if anonymous else call.sql_name()
        template = _FUNCTION_TEMPLATES.get(name.upper())
        if template is None:
            continue
        given = call.expressions if anonymous else [call.this, call.args.get("expression")]
        args = dict(zip(("__a", "__b"), [a for a in given if a is not None], strict=False))
        new = sqlglot.parse_one(template, read="spark")
        for column in list(new.find_all(exp.Column)):
            if column.name in args:
                column.replace(exp.Paren(this=args[column.name].copy()))
        call.replace(exp.Paren(this=new))


class SparkSql:
    """Runs DuckDB-dialect statements on Spark: ``CREATE [OR REPLACE] TEMP TABLE t AS q``
    becomes a cached temporary view; anything else a query.  Mirrors the small part of a
    DuckDB connection the SQL generators use (``execute``, ``sql``)."""

    def __init__(self, spark: Any, *, cache: bool = True) -> None:
        self.spark = spark
        self.cache = cache
        self.views: list[str] = []

    def execute(self, sql: str, params: Any = None) -> _Result:
        if params:
            raise YidaiError("parameters are not supported on the Spark engine")
        m = _CREATE_TEMP.match(sql)
        if m:
            name, query = m.group(1), m.group(2)
            frame = self.spark.sql(to_spark_sql(query, self._schema))
            if self.cache:
                frame = frame.cache()
            frame.createOrReplaceTempView(name)
            self.views.append(name)
            return _Result(None)
        return _Result(self.spark.sql(to_spark_sql(sql, self._schema)))

    def sql(self, sql: str) -> Any:
        """A DataFrame of a DuckDB-dialect query."""
        return self.spark.sql(to_spark_sql(sql, self._schema))

    def _schema(self, table: str) -> dict[str, str] | None:
        """The columns of a table or view the session knows (None if unknown)."""
        if not table or not self.spark.catalog.tableExists(table):
            return None
        fields = self.spark.table(table).schema.fields
        return {f.name: f.dataType.simpleString() for f in fields}

    def drop_views(self) -> None:
        """Uncache and drop the temporary views this runner created."""
        for name in self.views:
            with contextlib.suppress(Exception):  # already gone
                self.spark.catalog.uncacheTable(name)
            self.spark.catalog.dropTempView(name)
        self.views.clear()


class _Result:
    def __init__(self, frame: Any) -> None:
        self.frame = frame

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [] if self.frame is None else [tuple(r) for r in self.frame.collect()]

    def fetchone(self) -> tuple[Any, ...] | None:
        rows = self.fetchall()
        return rows[0] if rows else None
