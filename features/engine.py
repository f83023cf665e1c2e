"""Offline computation: profile features for a table of (entity_id, as_of) keys, in DuckDB.

One SQL generator serves the daily build (every entity, one day), the history build (every
entity-day with activity) and training sets (the spine's entity and day before the decision),
so the three can never disagree.  A profile as of day D uses events with ``ts < D + 1 day``.
One day runs the declared queries; many days (history, training sets) run an implementation
over one daily layer per entity (:func:`_layer_profiles_sql`) that the tests prove equal.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import duckdb

from features.declarations import Feature, FeatureSet, check_locked
from features.definitions import CREDIT_FEATURE_SETS, FRAUD_FEATURE_SET, get_feature_set
from features.sources import ENTITY_MASTERS, SOURCES
from yidai.core.errors import YidaiError
from yidai.core.settings import get_settings
from yidai.core.warehouse import ensure_tables

log = logging.getLogger(__name__)
SCHEMA = "feat"
# DuckDB memory limit while a history is built (lowered, never raised): past it the window
# passes spill.  10M POS, personal set: peak RSS 5.3 GB unlimited, 3.2 GB at 3 GB (same
# time), 2.2 GB at 2 GB (+30% time).
HISTORY_MEMORY_LIMIT_BYTES = 3 * 1024**3
_UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4}
_UNITS |= {"KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4}


def fetch_one(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None
) -> tuple[Any, ...] | None:
    """The first row of a query, consuming the whole result (DuckDB 2 needs that)."""
    rows = con.execute(sql, params).fetchall() if params else con.execute(sql).fetchall()
    return rows[0] if rows else None


_AGG_CALL = re.compile(r"\b(sum|count|max|min|arg_max)\s*\(", re.IGNORECASE)
# What a windowed expression over the daily layer may call (aggregates and the scalars
# around them); anything else is computed by the declared query instead.
_LAYER_CALLS = {"sum", "count", "max", "min", "arg_max", "sqrt", "greatest", "nullif", "date_diff"}
_LAYER_CALLS.add("filter")  # the FILTER clause of an aggregate
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


def windowed_expr(expr: str, window: str = "w", *, as_of_outside: bool = False) -> str | None:
    """``expr`` with every aggregate turned into a window aggregate over ``window`` (and
    ``count(*)`` into ``count(__n)``), or None if it cannot be (uses as_of, DISTINCT...).
    ``FILTER (WHERE day > as_of - N)`` becomes the window ``w<N>`` (the last N days).

    With ``as_of_outside`` (the daily layer: one row per entity-day), ``as_of`` may be used
    outside the aggregates (the day the windows end at) and so may ``arg_max`` (no ties)."""
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
        if as_of_outside and re.search(r"\bas_of\b|\bDISTINCT\b", call, re.IGNORECASE):
            return None
        call = call.replace("count(*)", "count(__n)")
        out.append(f"{expr[pos : m.start()]}{call} OVER {name}")
        pos = end
    out.append(expr[pos:])
    result = "".join(out)
    if as_of_outside:
        calls = {c.lower() for c in re.findall(r"\b(\w+)\s*\(", expr)}
        return result if calls <= _LAYER_CALLS else None
    return None if _NOT_WINDOWABLE.search(result) else result


def _window_name(days: int | None) -> str:
    """The named window of a ``days``-long sliding window (``wlife``: everything so far)."""
    return "wlife" if days is None else f"w{days}"


def profile_table(fs: FeatureSet, entity: str) -> str:
    return f"{SCHEMA}.{fs.name}__{entity}"


def active_feature_sets() -> list[str]:
    """The sets built and published by default: those the models train on (one version per
    product) plus ``YIDAI_EXTRA_FEATURE_SETS``.  Older versions stay declared and locked, and
    build on request."""
    names = [*CREDIT_FEATURE_SETS.values(), FRAUD_FEATURE_SET]
    extra = [n.strip() for n in get_settings().extra_feature_sets.split(",") if n.strip()]
    return names + [n for n in extra if n not in names]


def resolve_feature_sets(names: Iterable[str] | None) -> list[FeatureSet]:
    """Feature sets by name (the active ones when None), checked against the lock file."""
    names = active_feature_sets() if names is None else list(names)
    sets = [get_feature_set(n) for n in names]
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
    history: bool = False,
    declared: bool = False,
) -> str:
    """A SELECT of (entity_id, as_of, <profile columns>) for every row of table ``keys``.

    Materialises the needed daily sources as temporary tables on ``con`` first.  With
    ``all_entities`` (a daily build, ``first_day == last_day``) it first creates ``keys``
    itself: every entity of the master table or with rows in any source window.  With
    ``history`` the keys are every entity-day with rows in a (non-master) source in
    ``[first_day, last_day]``; ``keys`` is then created only if a feature needs it.
    With ``declared`` (the Spark engine) many days use the declared queries' sliding
    windows and range joins rather than the daily layer (proven equal by the tests).
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
    if (history or first_day != last_day) and not declared:
        return _layer_profiles_sql(
            con, feats, src_tables, keys, first_day, last_day, history=history
        )
    ctes, joins, where_is = _declared_ctes(feats, src_tables, keys, first_day, last_day)
    select = [_output_column(f, where_is[f.name]) for f in feats]
    return (
        f"WITH {', '.join(ctes)} SELECT k.entity_id, k.as_of, {', '.join(select)} "
        f"FROM {keys} k {' '.join(joins)}"
    )


def _output_column(f: Feature, value: str) -> str:
    fill = "NULL" if f.fill is None else repr(float(f.fill))
    return f"CAST(coalesce({value}, {fill}) AS DOUBLE) AS {_q(f.name)}"


def _declared_ctes(
    feats: Sequence[Feature],
    src_tables: dict[str, str],
    keys: str,
    first_day: dt.date,
    last_day: dt.date,
) -> tuple[list[str], list[str], dict[str, str]]:
    """CTEs computing ``feats`` for the rows of ``keys`` (aliased ``k``) from their declared
    queries, the LEFT JOINs that bring them to ``k``, and where each value is."""
    ctes: list[str] = []
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
            window_sql = _windows_sql(exprs.values())
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
        body = f.windowed if f.windowed and not one_day else f.expr
        template = body.replace("{keys}", keys).replace("{source}", src_tables[f.source])
        ctes.append(f"s{j} AS ({template})")
        joins.append(f"LEFT JOIN s{j} ON s{j}.entity_id = k.entity_id AND s{j}.as_of = k.as_of")
        where_is[f.name] = f"s{j}.value"
    return ctes, joins, where_is


def _windows_sql(exprs: Iterable[str | None]) -> str:
    """The WINDOW clause of the named windows (``w<N>``, ``wlife``) that ``exprs`` use, over
    the entity's rows ordered by day."""
    order = "ORDER BY date_diff('day', DATE '1970-01-01', as_of)"
    frames = {}
    for e in exprs:
        for n in re.findall(r"OVER w(\d+|life)\b", e or ""):
            frames[f"w{n}"] = "UNBOUNDED PRECEDING" if n == "life" else f"{int(n) - 1} PRECEDING"
        for n in re.findall(r"OVER wend(\d+)\b", e or ""):  # up to n days before
            frames[f"wend{n}"] = f"UNBOUNDED PRECEDING AND {n} PRECEDING"
    return ", ".join(
        f"{name} AS (PARTITION BY entity_id {order} RANGE BETWEEN {frame}"
        f"{'' if name.startswith('wend') else ' AND CURRENT ROW'})"
        for name, frame in frames.items()
    )


_DISTINCT_COUNT = re.compile(r"\s*count\s*\(\s*DISTINCT\s+(\w+)\s*\)\s*", re.IGNORECASE)


def _renamed(expr: str, columns: Iterable[str], alias: str) -> str:
    """``expr`` with each of a source's ``columns`` named ``"<alias>.<column>"`` (outside
    string literals), as in the daily layer."""
    names = sorted(set(columns), key=len, reverse=True)
    pattern = re.compile(r"(?<![\w\".])(" + "|".join(map(re.escape, names)) + r")(?![\w\"])")
    parts = re.split(r"('[^']*')", expr)
    return "".join(
        p if i % 2 else pattern.sub(lambda m: _q(f"{alias}.{m.group(1)}"), p)
        for i, p in enumerate(parts)
    )


def _narrow_types(
    con: duckdb.DuckDBPyConnection, table: str, cols: Sequence[str], used: str, alias: str
) -> dict[str, str]:
    """Columns of ``table`` that the layer can hold in 8 instead of 16 bytes: 128-bit
    DECIMAL(38, s) / HUGEINT measures only ever summed (``sum(c)``, ``sum(c * c)``).  A sum
    of DECIMAL(18, s) is DECIMAL(38, s) and one of BIGINT is HUGEINT, as before, with the
    same exact value; a value that does not fit fails the cast instead of changing."""
    narrow: dict[str, str] = {}
    for name, dtype, *_ in con.execute(f"DESCRIBE {table}").fetchall():
        if name not in cols:
            continue
        c = _q(f"{alias}.{name}")
        rest = used.replace(f"sum({c} * {c})", "").replace(f"sum({c})", "")
        if c in rest:
            continue
        decimal = re.fullmatch(r"DECIMAL\(38,\s*(\d+)\)", dtype)
        if decimal:
            narrow[name] = f"DECIMAL(18, {decimal.group(1)})"
        elif dtype == "HUGEINT":
            narrow[name] = "BIGINT"
    return narrow


def _sparse_sources(
    con: duckdb.DuckDBPyConnection, src_tables: dict[str, str], alias: dict[str, str], used: str
) -> set[str]:
    """Sources of the layer with under a quarter of the rows of its largest one: their
    windows run over their own rows instead of every layer row (DuckDB's window cost is
    rows x aggregates) and are looked up for each key day."""
    rows: dict[str, int] = {}
    for name, table in src_tables.items():
        if not SOURCES[name].dims and f'"{alias[name]}.' in used:
            row = fetch_one(con, f"SELECT count(*) FROM {table}")
            rows[name] = int(row[0]) if row else 0
    largest = max(rows.values(), default=0)
    return {name for name, n in rows.items() if 4 * n < largest}


def _lifted_calls(expr: str, calls: dict[str, str]) -> str:
    """``expr`` with each window aggregate ``agg(...) [FILTER (...)] OVER w`` replaced by a
    column ``"__a<k>"`` (recorded in ``calls``: call -> column); counts stay 0 when absent."""
    out, pos = [], 0
    for m in _AGG_CALL.finditer(expr):
        if m.start() < pos:
            continue
        end = _close(expr, m.end() - 1)
        f = re.match(r"\s*FILTER\s*\(", expr[end:], re.IGNORECASE)
        if f:
            end = _close(expr, end + f.end() - 1)
        over = re.match(r"\s*OVER\s+\w+", expr[end:])
        if over is None:
            raise YidaiError(f"not a window aggregate in {expr!r}")
        end += over.end()
        call = expr[m.start() : end]
        col = calls.setdefault(call, f"__a{len(calls)}")
        ref = _q(col)
        if m.group(1).lower() == "count":
            ref = f"coalesce({ref}, 0)"
        out.append(f"{expr[pos : m.start()]}{ref}")
        pos = end
    out.append(expr[pos:])
    return "".join(out)


def _is_master(source_name: str) -> bool:
    return source_name.endswith("_master")


def _layer_profiles_sql(
    con: duckdb.DuckDBPyConnection,
    feats: Sequence[Feature],
    src_tables: dict[str, str],
    keys: str,
    first_day: dt.date,
    last_day: dt.date,
    *,
    history: bool,
) -> str:
    """Many as-of days at once over one daily layer of the entity (:func:`layer_query`).

    Reads what the query depends on from the source tables (:class:`SourceFacts`), creates
    the temporary tables it reads (the distinct-count runs; with ``history``, ``keys`` when
    a feature keeps its declared query) and returns the query.
    """
    plan = layer_plan(feats, src_tables)
    facts = _source_facts(con, plan, src_tables)
    for statement in runs_tables_sql(plan, src_tables):
        con.execute(statement)
    if history and plan.declared:  # the declared queries read the keys
        con.execute(history_keys_sql(src_tables, keys, first_day, last_day))
    return layer_query(feats, plan, facts, src_tables, keys, first_day, last_day, history=history)


@dataclass(frozen=True)
class LayerPlan:
    """How each feature is computed over the daily layer: a window expression over the
    layer's columns (``"s<i>.<column>"``, ``alias``), a count of distinct values from runs
    (``covers``: source, column, window days; columns ``"c<i>"``/``"e<i>"``), or its declared
    query (``declared``)."""

    alias: dict[str, str]
    exprs: dict[str, str]
    covers: list[tuple[str, str, int | None]]
    declared: list[Feature]

    @property
    def used(self) -> str:
        """Every layer expression (to look up which layer columns are used)."""
        return " ".join(self.exprs.values())


def layer_plan(feats: Sequence[Feature], src_tables: dict[str, str]) -> LayerPlan:
    """The layer plan of ``feats`` (pure).

    ``count(DISTINCT v)`` over W days is the number of (entity, v) runs open on the day (a run
    merges occurrences less than W days apart and stays open W - 1 days after its last one):
    the runs started so far minus those whose last occurrence is W or more days back, two
    running sums, no extra rows and no DISTINCT window.  The rest (the ``sql`` features'
    windowed twins, aggregates that cannot slide) keeps its declared query.
    """
    alias = {name: f"s{i}" for i, name in enumerate(src_tables)}
    plan = LayerPlan(alias, {}, [], [])
    for f in feats:
        src = SOURCES.get(f.source)
        distinct = _DISTINCT_COUNT.fullmatch(f.expr) if f.kind == "agg" else None
        if src is not None and distinct and distinct.group(1) in src.dims:
            c, w = f'"c{len(plan.covers)}"', f.window_days
            ended = f' - coalesce(sum("e{len(plan.covers)}") OVER wend{w}, 0)' if w else ""
            plan.exprs[f.name] = f"coalesce(sum({c}) OVER wlife, 0){ended}"
            plan.covers.append((f.source, distinct.group(1), f.window_days))
            continue
        e = None
        if f.kind == "agg" and src is not None and not src.dims:
            e = windowed_expr(f.expr, _window_name(f.window_days), as_of_outside=True)
        if e is None:
            plan.declared.append(f)
        else:
            columns = ["day", "__n", *(name for name, _ in src.measures)]  # type: ignore[union-attr]
            plan.exprs[f.name] = _renamed(e, columns, alias[f.source])
    return plan


def _layer_columns(source_name: str, alias: str, used: str) -> list[str]:
    """The columns of a source (without dimensions) that the layer expressions use."""
    src = SOURCES[source_name]
    if src.dims:
        return []
    return [c for c in ("day", "__n", *(m for m, _ in src.measures)) if f'"{alias}.{c}"' in used]


@dataclass(frozen=True)
class SourceFacts:
    """What the layer query depends on in the source tables' contents: the sparse sources
    (:func:`_sparse_sources`) and the columns that fit a narrower type (:func:`_narrow_types`)
    of each dense one."""

    sparse: set[str]
    narrow: dict[str, dict[str, str]]


def _source_facts(
    con: duckdb.DuckDBPyConnection, plan: LayerPlan, src_tables: dict[str, str]
) -> SourceFacts:
    used = plan.used
    sparse = _sparse_sources(con, src_tables, plan.alias, used)
    narrow: dict[str, dict[str, str]] = {}
    for name, table in src_tables.items():
        cols = _layer_columns(name, plan.alias[name], used)
        if cols and name not in sparse:
            narrow[name] = _narrow_types(con, table, cols, used, plan.alias[name])
    return SourceFacts(sparse, narrow)


def runs_tables_sql(plan: LayerPlan, src_tables: dict[str, str]) -> list[str]:
    """The statements creating each distinct count's runs table: per (entity, value) run,
    whether a day starts one and whether a run ends on it (pure)."""
    statements = []
    for i, (name, col, days) in enumerate(plan.covers):
        occ = f"SELECT DISTINCT entity_id, day, {col} FROM {src_tables[name]}"
        occ = src_tables[name] if SOURCES[name].dims == (col,) else f"({occ})"
        gap = f" OR day - prv >= {days}" if days else ""
        ends = f"(nxt IS NULL OR nxt - day >= {days})" if days else "false"
        statements.append(
            f"CREATE OR REPLACE TEMP TABLE {src_tables[name]}_runs{i} AS SELECT entity_id, day, "
            f"CASE WHEN {col} IS NOT NULL AND (prv IS NULL{gap}) THEN 1 ELSE 0 END AS start, "
            f"{col} IS NOT NULL AND {ends} AS ends FROM (SELECT entity_id, day, {col}, "
            f"lag(day) OVER r AS prv, lead(day) OVER r AS nxt FROM {occ} "
            f"WINDOW r AS (PARTITION BY entity_id, {col} ORDER BY day))"
        )
    return statements


def history_keys_sql(
    src_tables: dict[str, str], keys: str, first_day: dt.date, last_day: dt.date
) -> str:
    """The statement creating ``keys``: every entity-day with rows in a (non-master) source."""
    first, last = _lit(first_day), _lit(last_day)
    active = " UNION ".join(
        f"SELECT entity_id, day AS as_of FROM {t} WHERE day BETWEEN {first} AND {last}"
        for n, t in src_tables.items()
        if not _is_master(n)
    )
    return f"CREATE OR REPLACE TEMP TABLE {keys} AS {active}"


def layer_query(
    feats: Sequence[Feature],
    plan: LayerPlan,
    facts: SourceFacts,
    src_tables: dict[str, str],
    keys: str,
    first_day: dt.date,
    last_day: dt.date,
    *,
    history: bool,
) -> str:
    """The profiles query over the daily layer (pure): a row per entity-day with rows in any
    source (or a key), every source's measures side by side, so that one sorted window pass
    computes every windowable ``agg`` feature without a join; the sparse sources' windows
    looked up per key day; the declared queries joined to the key rows.
    ``tests/features/test_features_layer.py`` proves all of it equal to the declared queries.
    """
    parts, sparse_parts = _layer_parts(plan, facts, src_tables, keys, first_day, last_day, history)
    sparse_aliases = tuple(f'"{plan.alias[n]}.' for n in facts.sparse)
    dense = {n: e for n, e in plan.exprs.items() if not any(a in e for a in sparse_aliases)}
    wsql = _windows_sql(dense.values())
    window = f" WINDOW {wsql}" if wsql else ""
    out = {n: _output_column(f, dense[n]) for f in feats if (n := f.name) in dense}
    columns = "".join(f", {v}" for v in out.values())
    base = f"SELECT entity_id, as_of{columns} FROM ({_layer_sql(parts)})"
    base += f"{window} QUALIFY __key" if window else " WHERE __key"
    if sparse_parts:
        base = _sparse_lookup_sql(base, feats, plan, dense, out, sparse_parts)
    if not plan.declared:
        return base
    ctes, joins, where_is = _declared_ctes(plan.declared, src_tables, keys, first_day, last_day)
    ctes.insert(0, f"k AS ({base})")
    select = ", ".join(
        f"k.{_q(f.name)}" if f.name in out else _output_column(f, where_is[f.name]) for f in feats
    )
    return f"WITH {', '.join(ctes)} SELECT k.entity_id, k.as_of, {select} FROM k {' '.join(joins)}"


def _key_col(expr: str, part: int) -> str:
    """The key column ``"k<part>"`` of a layer part (none if it marks no row)."""
    return "" if expr == "false" else f', {expr} AS "k{part}"'


def _layer_parts(
    plan: LayerPlan,
    facts: SourceFacts,
    src_tables: dict[str, str],
    keys: str,
    first_day: dt.date,
    last_day: dt.date,
    history: bool,
) -> tuple[list[str], list[str]]:
    """The layer's parts, one row per entity-day each (full-joined on (entity_id, as_of);
    a part's key column marks the rows whose profile is wanted), and the sparse sources'
    own rows with the days their windows change on."""
    first, last = _lit(first_day), _lit(last_day)
    parts: list[str] = []
    sparse_parts: list[str] = []
    in_layer: set[str] = set()
    for name, table in src_tables.items():
        a = plan.alias[name]
        cols = _layer_columns(name, a, plan.used)
        if not cols:
            continue
        if name in facts.sparse:
            sparse_parts.extend(_sparse_source_parts(plan, table, a, cols, last))
            continue
        key = "false" if not history or _is_master(name) else f"day BETWEEN {first} AND {last}"
        narrow = facts.narrow.get(name, {})
        sel = _measures_sql(a, cols, {c: f"CAST({c} AS {t})" for c, t in narrow.items()})
        parts.append(
            f"SELECT entity_id, day AS as_of, {sel}{_key_col(key, len(parts))} FROM {table}"
        )
        in_layer.add(name)
    for i, (name, _, _) in enumerate(plan.covers):
        if history and name not in in_layer:  # every occurrence day is a key day
            key, where = f"bool_or(day BETWEEN {first} AND {last})", ""
            in_layer.add(name)
        else:
            key, where = "false", " WHERE start = 1 OR ends"
        parts.append(
            f'SELECT entity_id, day AS as_of, sum(start) AS "c{i}", '
            f'sum(CASE WHEN ends THEN 1 ELSE 0 END) AS "e{i}"{_key_col(key, len(parts))} '
            f"FROM {src_tables[name]}_runs{i}{where} GROUP BY entity_id, day"
        )
    if not history:
        parts.append(f"SELECT DISTINCT entity_id, as_of{_key_col('true', len(parts))} FROM {keys}")
    for name, table in src_tables.items():
        if history and name not in in_layer and not _is_master(name):
            parts.append(
                f"SELECT DISTINCT entity_id, day AS as_of{_key_col('true', len(parts))} "
                f"FROM {table} WHERE day BETWEEN {first} AND {last}"
            )
    return parts, sparse_parts


def _measures_sql(alias: str, cols: list[str], values: dict[str, str]) -> str:
    """A source's layer columns ``"<alias>.<column>"`` (``__n`` = 1 a row, ``values``: other
    expressions than the column itself)."""
    value = {"day": "day", "__n": "1", **values}
    return ", ".join(f"{value.get(c, c)} AS {_q(f'{alias}.{c}')}" for c in cols)


def _sparse_source_parts(
    plan: LayerPlan, table: str, alias: str, cols: list[str], last: str
) -> list[str]:
    """A sparse source's rows, and the days its windows' contents change on (W days later)."""
    parts = [f"SELECT entity_id, day AS as_of, {_measures_sql(alias, cols, {})} FROM {table}"]
    used_by = [e for e in plan.exprs.values() if f'"{alias}.' in e]
    ws = sorted({int(w) for e in used_by for w in re.findall(r"OVER w(\d+)\b", e)})
    if ws:
        parts.append(
            f"SELECT DISTINCT entity_id, day + w AS as_of FROM {table}, "
            f"unnest({ws}) t(w) WHERE day + w <= {last}"
        )
    return parts


def _layer_sql(parts: list[str]) -> str:
    """The layer: its parts full-joined, ``__key`` set on the rows a part marks."""
    keys_in = [f'coalesce("k{j}", false)' for j, p in enumerate(parts) if f'"k{j}"' in p]
    joined = f"({parts[0]})" + "".join(
        f" FULL JOIN ({p}) USING (entity_id, as_of)" for p in parts[1:]
    )
    return f"SELECT *, {' OR '.join(keys_in)} AS __key FROM {joined}"


def _sparse_lookup_sql(
    base: str,
    feats: Sequence[Feature],
    plan: LayerPlan,
    dense: dict[str, str],
    out: dict[str, str],
    sparse_parts: list[str],
) -> str:
    """``base`` with the sparse sources' features: their windows over their own rows (and
    the days their windows change on), looked up for each key day: the last such day at or
    before it.  Adds those features' output columns to ``out``."""
    calls: dict[str, str] = {}
    outer: dict[str, str] = {}
    for n, e in plan.exprs.items():
        if n not in dense:
            outer[n] = _lifted_calls(e, calls)
    joined = f"({sparse_parts[0]})" + "".join(
        f" FULL JOIN ({p}) USING (entity_id, as_of)" for p in sparse_parts[1:]
    )
    values = ", ".join(f"{c} AS {_q(a)}" for c, a in calls.items())
    lookup = (
        f"SELECT entity_id AS __sp_entity, as_of AS __sp_day, {values} FROM {joined} "
        f"WINDOW {_windows_sql(calls)}"
    )
    for f in feats:
        if f.name in outer:
            out[f.name] = _output_column(f, outer[f.name])
    picked = ", ".join(
        f"{_q(f.name)}" if f.name in dense else out[f.name] for f in feats if f.name in out
    )
    return (
        f"SELECT entity_id, as_of, {picked} FROM ({base}) ASOF LEFT JOIN ({lookup}) sp "
        "ON sp.__sp_entity = entity_id AND sp.__sp_day <= as_of"
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
    history: bool = False,
) -> int:
    """Replace the rows of ``[first_day, last_day]`` with the profiles of ``keys``."""
    sql = compute_profiles_sql(
        con, fs, entity, keys, first_day, last_day, all_entities=all_entities, history=history
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
    return _write_sets(con, sets, as_of, as_of, complete=True, all_entities=True)


def _write_sets(
    con: duckdb.DuckDBPyConnection,
    sets: Sequence[FeatureSet],
    first_day: dt.date,
    last_day: dt.date,
    *,
    complete: bool,
    all_entities: bool = False,
    history: bool = False,
) -> dict[str, int]:
    """:func:`_write_profiles` for every entity of every set; rows written per set/entity."""
    written: dict[str, int] = {}
    for fs in sets:
        _ensure_feature_tables(con, fs)
        for entity in fs.profile_entities:
            keys = f"__keys_{uuid.uuid4().hex[:8]}"
            written[f"{fs.name}/{entity}"] = _write_profiles(
                con, fs, entity, keys, first_day, last_day, complete, all_entities, history
            )
            _drop_temp(con)
        log.info("built %s for %s..%s", fs.name, first_day, last_day)
    return written


def _bytes(setting: str) -> float | None:
    """``'18.8 GiB'`` -> bytes (None if not understood)."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]*)\s*", setting)
    unit = _UNITS.get(m.group(2).upper()) if m else None
    return float(m.group(1)) * unit if m and unit else None


@contextmanager
def _memory_limit(con: duckdb.DuckDBPyConnection, limit_bytes: int) -> Iterator[None]:
    """Lower DuckDB's memory limit to ``limit_bytes`` for the block (if it is higher)."""
    row = fetch_one(con, "SELECT current_setting('memory_limit')")
    old = str(row[0]) if row else ""
    current = _bytes(old)
    if current is None or current <= limit_bytes:
        yield
        return
    con.execute(f"SET memory_limit = '{limit_bytes // 1024**2}MiB'")
    try:
        yield
    finally:
        con.execute(f"SET memory_limit = '{math.ceil(current / 1024**2)}MiB'")


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
    with _memory_limit(con, HISTORY_MEMORY_LIMIT_BYTES):
        return _write_sets(con, sets, start, end, complete=False, history=True)


def compute_profiles_for_keys(
    con: duckdb.DuckDBPyConnection, fs: FeatureSet, entity: str, keys: str
) -> duckdb.DuckDBPyRelation:
    """Profiles of the (entity_id, as_of) rows of temp table ``keys`` (for training sets)."""
    row = fetch_one(con, f"SELECT min(as_of), max(as_of) FROM {keys}")
    if row is None or row[0] is None:
        raise YidaiError("no keys to compute features for")
    sql = compute_profiles_sql(con, fs, entity, keys, row[0], row[1])
    return con.sql(sql)
