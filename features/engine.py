"""Offline computation: profile features for a table of (entity_id, as_of) keys, in DuckDB.

One SQL generator serves the daily build (every entity, one day), the history build (every
entity-day with activity) and training sets (the spine's entity and day before the decision),
so the three can never disagree.  A profile as of day D uses events with ``ts < D + 1 day``.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import duckdb

from features.registry import Feature, FeatureSet, check_locked
from features.request import get_feature_set
from features.sources import ENTITY_MASTERS, SOURCES
from yidai.errors import YidaiError
from yidai.warehouse import ensure_tables

log = logging.getLogger(__name__)
SCHEMA = "feat"


def fetch_one(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None
) -> tuple[Any, ...] | None:
    """The first row of a query, consuming the whole result (DuckDB 2 needs that)."""
    rows = con.execute(sql, params).fetchall() if params else con.execute(sql).fetchall()
    return rows[0] if rows else None


_AGG_CALL = re.compile(r"\b(sum|count|max|min)\s*\(", re.IGNORECASE)
_NOT_WINDOWABLE = re.compile(r"\bas_of\b|\barg_max\b|\bavg\b", re.IGNORECASE)


def _close(expr: str, open_at: int) -> int:
    """Index just after the parenthesis matching the one at ``open_at``."""
    depth = 0
    for i in range(open_at, len(expr)):
        if expr[i] == "(":
            depth += 1
        elif expr[i] == ")":
            depth -= 1
            if depth == 0:
                return i + 1
    raise ValueError(f"unbalanced parentheses in {expr!r}")


_RECENT_FILTER = re.compile(r"\s*FILTER\s*\(WHERE day > as_of - (\d+)\)", re.IGNORECASE)


def windowed_expr(expr: str, window: str = "w") -> str | None:
    """``expr`` with every aggregate turned into a window aggregate over ``window`` (and
    ``count(*)`` into ``count(__n)``), or None if it cannot be (uses as_of, DISTINCT...).
    ``FILTER (WHERE day > as_of - N)`` becomes the window ``w<N>`` (the last N days)."""
    out, pos = [], 0
    for m in _AGG_CALL.finditer(expr):
        if m.start() < pos:
            return None  # nested aggregate
        end = _close(expr, m.end() - 1)
        name = window
        recent = _RECENT_FILTER.match(expr, end)
        call = expr[m.start() : end]
        if recent:
            name, end = f"w{recent.group(1)}", recent.end()
        else:
            f = re.match(r"\s*FILTER\s*\(", expr[end:], re.IGNORECASE)
            if f:
                end = _close(expr, end + f.end() - 1)
                call = expr[m.start() : end]
        call = call.replace("count(*)", "count(__n)")
        out.append(f"{expr[pos : m.start()]}{call} OVER {name}")
        pos = end
    out.append(expr[pos:])
    result = "".join(out)
    return None if _NOT_WINDOWABLE.search(result) else result


def _window_name(days: int | None) -> str:
    """The named window of a ``days``-long sliding window (``wlife``: everything so far)."""
    return "wlife" if days is None else f"w{days}"


def profile_table(fs: FeatureSet, entity: str) -> str:
    return f"{SCHEMA}.{fs.name}__{entity}"


def resolve_feature_sets(names: Iterable[str] | None) -> list[FeatureSet]:
    """Feature sets by name (all when None), checked against the lock file."""
    from features.definitions import FEATURE_SETS

    sets = list(FEATURE_SETS.values()) if names is None else [get_feature_set(n) for n in names]
    for fs in sets:
        check_locked(fs)
    return sets


def _lit(day: dt.date) -> str:
    return f"DATE '{day.isoformat()}'"


def _q(name: str) -> str:
    return '"' + name + '"'


def compute_profiles_sql(
    con: duckdb.DuckDBPyConnection,
    fs: FeatureSet,
    entity: str,
    keys: str,
    first_day: dt.date,
    last_day: dt.date,
    *,
    all_entities: bool = False,
) -> str:
    """A SELECT of (entity_id, as_of, <profile columns>) for every row of table ``keys``.

    Materialises the needed daily sources as temporary tables on ``con`` first.  With
    ``all_entities`` (a daily build, ``first_day == last_day``) it first creates ``keys``
    itself: every entity of the master table or with rows in any source window.
    """
    feats = [f for f in fs.profile_features if f.entity == entity]
    if not feats:
        raise YidaiError(f"feature set {fs.name} has no {entity} profile")
    hi = f"CAST({_lit(last_day + dt.timedelta(days=1))} AS TIMESTAMP)"
    tag = uuid.uuid4().hex[:8]
    src_tables: dict[str, str] = {}
    for source_name in dict.fromkeys(f.source for f in feats):
        src = SOURCES[source_name]
        windows = [f.window_days for f in feats if f.source == source_name]
        if any(w is None for w in windows):
            lo = "TIMESTAMP '1900-01-01'"
        else:
            start = first_day - dt.timedelta(days=max(w for w in windows if w is not None) - 1)
            lo = f"CAST({_lit(start)} AS TIMESTAMP)"
        table = f"__src_{source_name}_{tag}"
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {src.daily_sql(lo, hi)}")
        src_tables[source_name] = table
    if all_entities:
        seen = " UNION ".join(f"SELECT entity_id FROM {t}" for t in src_tables.values())
        master = ENTITY_MASTERS.get(entity)
        if master:
            seen += " UNION " + master.format(hi=hi)
        con.execute(
            f"CREATE TEMP TABLE {keys} AS SELECT DISTINCT entity_id, {_lit(last_day)} AS as_of "
            f"FROM ({seen}) WHERE entity_id IS NOT NULL"
        )

    ctes: list[str] = []
    select: list[str] = []
    joins: list[str] = []
    one_day = first_day == last_day
    groups: dict[tuple[str, int | str | None, bool], list[Feature]] = {}
    for f in feats:
        if f.kind == "agg":
            slides = windowed_expr(f.expr) is not None
            # many days: one sorted pass per source serves all its window lengths
            span = "all" if slides and not one_day else f.window_days
            groups.setdefault((f.source, span, slides), []).append(f)
    for i, ((source_name, days, slides), group) in enumerate(groups.items()):
        cols = ", ".join(f"{f.expr} AS {_q(f.name)}" for f in group)
        if one_day:  # one as-of day: aggregate the window, no range join
            day = _lit(last_day)
            cond = f"day <= {day}" + (f" AND day > {day} - {days}" if days else "")
            ctes.append(
                f"g{i} AS (SELECT entity_id, as_of, {cols} FROM (SELECT *, {day} AS as_of "
                f"FROM {src_tables[source_name]} WHERE {cond}) GROUP BY entity_id, as_of)"
            )
        elif slides:
            # many days: sliding windows over the entity's daily rows (one pass, no join)
            exprs = {f.name: windowed_expr(f.expr, _window_name(f.window_days)) for f in group}
            wcols = ", ".join(f"{e} AS {_q(name)}" for name, e in exprs.items())
            src = SOURCES[source_name]
            measures = ", ".join([*src.dims, *(name for name, _ in src.measures)])
            order = "ORDER BY date_diff('day', DATE '1970-01-01', as_of)"
            frames = {}
            for e in exprs.values():
                for n in re.findall(r"OVER w(\d+|life)", e or ""):
                    frames[f"w{n}"] = (
                        "UNBOUNDED PRECEDING" if n == "life" else f"{int(n) - 1} PRECEDING"
                    )
            window_sql = ", ".join(
                f"{name} AS (PARTITION BY entity_id {order} RANGE BETWEEN {frame} AND CURRENT ROW)"
                for name, frame in frames.items()
            )
            ctes.append(
                f"g{i} AS (SELECT entity_id, as_of, {wcols} FROM ("
                f"SELECT entity_id, day AS as_of, {measures}, 1 AS __n, false AS __key "
                f"FROM {src_tables[source_name]} UNION ALL BY NAME "
                f"SELECT entity_id, as_of, true AS __key FROM {keys}) "
                f"WINDOW {window_sql} QUALIFY __key)"
            )
        else:
            cond = "d.day <= k.as_of" + (f" AND d.day > k.as_of - {days}" if days else "")
            ctes.append(
                f"g{i} AS (SELECT k.entity_id, k.as_of, {cols} FROM {keys} k "
                f"JOIN {src_tables[source_name]} d ON d.entity_id = k.entity_id AND {cond} "
                "GROUP BY k.entity_id, k.as_of)"
            )
        joins.append(f"LEFT JOIN g{i} ON g{i}.entity_id = k.entity_id AND g{i}.as_of = k.as_of")
    where_is: dict[str, str] = {}
    for i, group in enumerate(groups.values()):
        for f in group:
            where_is[f.name] = f"g{i}.{_q(f.name)}"
    for j, f in enumerate(x for x in feats if x.kind == "sql"):
        # one as-of day: the declared query (a small range join); many: its windowed twin
        body = f.windowed if f.windowed and first_day != last_day else f.expr
        template = body.replace("{keys}", keys).replace("{source}", src_tables[f.source])
        ctes.append(f"s{j} AS ({template})")
        joins.append(f"LEFT JOIN s{j} ON s{j}.entity_id = k.entity_id AND s{j}.as_of = k.as_of")
        where_is[f.name] = f"s{j}.value"
    for f in feats:
        fill = "NULL" if f.fill is None else repr(float(f.fill))
        select.append(f"CAST(coalesce({where_is[f.name]}, {fill}) AS DOUBLE) AS {_q(f.name)}")
    return (
        f"WITH {', '.join(ctes)} SELECT k.entity_id, k.as_of, {', '.join(select)} "
        f"FROM {keys} k {' '.join(joins)}"
    )


def _ensure_feature_tables(con: duckdb.DuckDBPyConnection, fs: FeatureSet) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {SCHEMA}.builds (feature_set VARCHAR, entity VARCHAR, "
        "as_of DATE, fingerprint VARCHAR, n_rows BIGINT, complete BOOLEAN, "
        "built_at TIMESTAMP)"
    )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {SCHEMA}.registry (feature_set VARCHAR PRIMARY KEY, "
        "version INTEGER, fingerprint VARCHAR, columns VARCHAR)"
    )
    row = fetch_one(
        con, f"SELECT fingerprint FROM {SCHEMA}.registry WHERE feature_set = ?", [fs.name]
    )
    if row is None:
        con.execute(
            f"INSERT INTO {SCHEMA}.registry VALUES (?, ?, ?, ?)",
            [fs.name, fs.version, fs.fingerprint, ",".join(fs.columns)],
        )
    elif row[0] != fs.fingerprint:
        raise YidaiError(
            f"the warehouse holds {fs.name} built with fingerprint {row[0]}, the code declares "
            f"{fs.fingerprint}: declare a new version instead of changing {fs.name}"
        )
    for entity in fs.profile_entities:
        cols = ", ".join(f"{_q(c)} DOUBLE" for c in fs.profile_columns(entity))
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {profile_table(fs, entity)} "
            f"(entity_id VARCHAR, as_of DATE, {cols})"
        )


def _write_profiles(
    con: duckdb.DuckDBPyConnection,
    fs: FeatureSet,
    entity: str,
    keys: str,
    first_day: dt.date,
    last_day: dt.date,
    complete: bool,
    all_entities: bool = False,
) -> int:
    """Replace the rows of ``[first_day, last_day]`` with the profiles of ``keys``."""
    sql = compute_profiles_sql(
        con, fs, entity, keys, first_day, last_day, all_entities=all_entities
    )
    table = profile_table(fs, entity)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DELETE FROM {table} WHERE as_of BETWEEN ? AND ?", [first_day, last_day])
        con.execute(f"INSERT INTO {table} {sql}")
        n_rows = fetch_one(
            con, f"SELECT count(*) FROM {table} WHERE as_of BETWEEN ? AND ?", [first_day, last_day]
        )
        con.execute(
            f"DELETE FROM {SCHEMA}.builds WHERE feature_set = ? AND entity = ? "
            "AND as_of BETWEEN ? AND ?",
            [fs.name, entity, first_day, last_day],
        )
        con.execute(
            f"INSERT INTO {SCHEMA}.builds SELECT ?, ?, CAST(d AS DATE), ?, "
            f"(SELECT count(*) FROM {table} WHERE as_of = CAST(d AS DATE)), ?, now() "
            "FROM range(CAST(? AS TIMESTAMP), CAST(? AS TIMESTAMP) + INTERVAL 1 DAY, "
            "INTERVAL 1 DAY) t(d)",
            [fs.name, entity, fs.fingerprint, complete, first_day, last_day],
        )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return int(n_rows[0]) if n_rows else 0


def _drop_temp(con: duckdb.DuckDBPyConnection) -> None:
    for (name,) in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE temporary AND table_name LIKE '\\_\\_%' "
        "ESCAPE '\\'"
    ).fetchall():
        con.execute(f"DROP TABLE IF EXISTS {name}")


def build_features(
    con: duckdb.DuckDBPyConnection,
    as_of: dt.date,
    feature_sets: Sequence[str] | None = None,
) -> dict[str, int]:
    """Build every profile of the feature sets as of the close of ``as_of`` (all entities).

    Re-running a day replaces it.  Returns rows written per ``<feature_set>/<entity>``.
    """
    sets = resolve_feature_sets(feature_sets)
    ensure_tables(con)
    written: dict[str, int] = {}
    for fs in sets:
        _ensure_feature_tables(con, fs)
        for entity in fs.profile_entities:
            keys = f"__keys_{uuid.uuid4().hex[:8]}"
            written[f"{fs.name}/{entity}"] = _write_profiles(
                con, fs, entity, keys, as_of, as_of, complete=True, all_entities=True
            )
            _drop_temp(con)
        log.info("built %s as of %s", fs.name, as_of)
    return written


def build_features_history(
    con: duckdb.DuckDBPyConnection,
    start: dt.date,
    end: dt.date,
    feature_sets: Sequence[str] | None = None,
) -> dict[str, int]:
    """Point-in-time history in one pass: a profile for every entity-day with activity in
    ``[start, end]`` (marked incomplete; a snapshot needs :func:`build_features` of its day).

    Much faster than one daily build per day: each source is read once for the whole range.
    """
    if end < start:
        raise YidaiError(f"history end {end} is before its start {start}")
    sets = resolve_feature_sets(feature_sets)
    ensure_tables(con)
    written: dict[str, int] = {}
    lo = f"CAST({_lit(start)} AS TIMESTAMP)"
    hi = f"CAST({_lit(end + dt.timedelta(days=1))} AS TIMESTAMP)"
    for fs in sets:
        _ensure_feature_tables(con, fs)
        for entity in fs.profile_entities:
            sources = dict.fromkeys(f.source for f in fs.profile_features if f.entity == entity)
            activity = " UNION ".join(
                f"SELECT entity_id, day AS as_of FROM ({SOURCES[s].daily_sql(lo, hi)})"
                for s in sources
                if not SOURCES[s].name.endswith("_master")
            )
            keys = f"__keys_{uuid.uuid4().hex[:8]}"
            con.execute(f"CREATE TEMP TABLE {keys} AS {activity}")
            written[f"{fs.name}/{entity}"] = _write_profiles(
                con, fs, entity, keys, start, end, complete=False
            )
            _drop_temp(con)
        log.info("built %s history %s..%s", fs.name, start, end)
    return written


def compute_profiles_for_keys(
    con: duckdb.DuckDBPyConnection, fs: FeatureSet, entity: str, keys: str
) -> duckdb.DuckDBPyRelation:
    """Profiles of the (entity_id, as_of) rows of temp table ``keys`` (for training sets)."""
    row = fetch_one(con, f"SELECT min(as_of), max(as_of) FROM {keys}")
    if row is None or row[0] is None:
        raise YidaiError("no keys to compute features for")
    sql = compute_profiles_sql(con, fs, entity, keys, row[0], row[1])
    return con.sql(sql)
