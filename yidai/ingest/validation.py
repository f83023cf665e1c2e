"""The contract checks, written as DuckDB SQL over whole files (no row-by-row Python).

Every check yields a reason string for a bad row; a row's ``_reason`` joins all the reasons
it breaks (``; ``-separated) and is NULL for a good row.  Reasons name the column and what is
wrong, so the quarantine table can be grouped by reason.
"""

from __future__ import annotations

from collections.abc import Sequence

from yidai.core.contracts import EARLIEST_EVENT_TIME, NUMERIC_DTYPES, Column, Contract
from yidai.ingest.inspect import InspectedFile, reader_sql, sql_str

# The only number literals accepted in CSV text (no spaces, ``_``, hex, ``inf`` or booleans).
NUMBER_LITERALS = {
    "DOUBLE": r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?",
    "BIGINT": r"[+-]?[0-9]+",
    "INTEGER": r"[+-]?[0-9]+",
}
_POS_SHIFT = 40  # position of a row within a batch: (file index << 40) + row number


def q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def reason_missing(col: Column) -> str:
    return f"{col.name}: missing value in a non-nullable column"


def reason_cast(col: Column) -> str:
    return f"{col.name}: not a valid {col.dtype}"


def reason_allowed(col: Column) -> str:
    return f"{col.name}: value not in the allowed set"


def reason_min(col: Column) -> str:
    return f"{col.name}: below the minimum {col.min_value:g}"


def reason_reference(col: Column) -> str:
    assert col.references is not None
    table = col.references.split(".")[0]
    return f"{col.name}: unknown id (not in {table})"


def reason_future(contract: Contract) -> str:
    return f"{contract.event_time}: later than the day after the delivery day"


def reason_too_late(contract: Contract, max_lateness_days: int) -> str:
    return f"{contract.event_time}: more than {max_lateness_days} days before the delivery day"


def reason_too_early(contract: Contract) -> str:
    return f"{contract.event_time}: before {EARLIEST_EVENT_TIME}"


def reason_duplicate(contract: Contract, *, within_file: bool) -> str:
    where = "repeated within the file" if within_file else "already loaded from an earlier file"
    return f"duplicate key ({', '.join(contract.key)}): {where}"


def _raw(col: Column) -> str:
    return q(col.name + "__raw")


def _needs_cast(col: Column, actual_type: str) -> bool:
    return actual_type not in (col.dtype, '"NULL"')


def _typed(col: Column, actual_type: str) -> str:
    if actual_type == col.dtype:
        return q(col.name)
    if actual_type == '"NULL"':
        return f"CAST(NULL AS {col.dtype})"
    return f"TRY_CAST({q(col.name)} AS {col.dtype})"


def typed_sql(
    contract: Contract, files: Sequence[InspectedFile], indices: Sequence[int] | None = None
) -> str:
    """Subquery over ``files``: ``_f``, ``_row``, ``_day``, the typed contract columns, and
    ``<col>__raw`` (the value as delivered) for every column that needs a cast (CSV text).

    With ``indices``, only ``files[i]`` for ``i`` in ``indices`` are read (``_f`` unchanged)."""
    types = files[0].column_types
    cols = [f"{_typed(c, types[c.name])} AS {q(c.name)}" for c in contract.columns]
    cols += [f"{q(c.name)} AS {_raw(c)}" for c in contract.columns if _needs_cast(c, types[c.name])]
    read = [f.file for f in files] if indices is None else [files[i].file for i in indices]
    return f"(SELECT _f, _row, _day, {', '.join(cols)} FROM {reader_sql(read, indices)})"


def key_hash_sql(contract: Contract, alias: str) -> str:
    """The 64-bit hash of a row's key (the same for the typed batch and the warehouse table)."""
    return "hash(" + ", ".join(f"{alias}.{q(k)}" for k in contract.key) + ")"


def _reference_join(col: Column, alias: str) -> str:
    assert col.references is not None
    table, ref_col = col.references.split(".")
    return (
        f"LEFT JOIN (SELECT DISTINCT {q(ref_col)} AS _ref FROM {q(table)}) {alias} "
        f"ON t.{q(col.name)} = {alias}._ref"
    )


def checks(
    contract: Contract, column_types: dict[str, str], max_lateness_days: int
) -> list[tuple[str, str]]:
    """Every row check as ``(SQL condition true for a bad row, reason)``, over ``typed_sql``
    aliased ``t`` and the reference joins aliased ``ref<i>``.

    Text (CSV) is strict for numbers: only a plain number literal casts (``true``, `` 100``,
    ``1_000`` or ``0x10`` do not), so a DuckDB cast never decides alone what a number is."""
    out: list[tuple[str, str]] = []
    ref_index = 0
    for col in contract.columns:
        name = f"t.{q(col.name)}"
        cast = _needs_cast(col, column_types[col.name])
        delivered = f"t.{_raw(col)}" if cast else name
        if not col.nullable:
            out.append((f"{delivered} IS NULL", reason_missing(col)))
        if cast:
            bad = f"{delivered} IS NOT NULL AND {name} IS NULL"
            if col.dtype in NUMERIC_DTYPES:
                literal = sql_str(NUMBER_LITERALS[col.dtype])
                bad = (
                    f"{delivered} IS NOT NULL AND ({name} IS NULL "
                    f"OR NOT regexp_full_match({delivered}, {literal}))"
                )
            out.append((bad, reason_cast(col)))
        if col.dtype == "DOUBLE":
            out.append((f"NOT isfinite({name})", f"{col.name}: not a finite number"))
        if col.allowed:
            values = ", ".join(sql_str(v) for v in col.allowed)
            out.append((f"{name} NOT IN ({values})", reason_allowed(col)))
        if col.min_value is not None:
            out.append((f"{name} < {col.min_value!r}", reason_min(col)))
        if col.references:
            out.append(
                (f"{name} IS NOT NULL AND ref{ref_index}._ref IS NULL", reason_reference(col))
            )
            ref_index += 1
    if contract.event_time and not contract.future_event_time:
        limit = "CAST(t._day AS TIMESTAMP) + INTERVAL 2 DAY"
        out.append((f"t.{q(contract.event_time)} >= {limit}", reason_future(contract)))
    if contract.event_time:
        event_time = f"t.{q(contract.event_time)}"
        floor = f"TIMESTAMP '{EARLIEST_EVENT_TIME}'"
        out.append((f"{event_time} < {floor}", reason_too_early(contract)))
        if contract.bounded_lateness:
            oldest = f"CAST(t._day AS TIMESTAMP) - INTERVAL {int(max_lateness_days)} DAY"
            out.append((f"{event_time} < {oldest}", reason_too_late(contract, max_lateness_days)))
    for reason, expression in contract.extra_checks:
        out.append((f"({expression})", reason))
    return out


def record_json_sql(contract: Contract, column_types: dict[str, str]) -> str:
    """JSON of a row as delivered (raw text where a value needed a cast)."""
    parts = [
        f"{sql_str(c.name)}: t.{_raw(c) if _needs_cast(c, column_types[c.name]) else q(c.name)}"
        for c in contract.columns
    ]
    return "CAST(to_json({" + ", ".join(parts) + "}) AS VARCHAR)"


def scan_sql(contract: Contract, files: Sequence[InspectedFile], max_lateness_days: int) -> str:
    """Create ``_scan``: one small row per delivered row, from a single pass over the files.

    Columns: ``_f``, ``_row``, ``_h`` (hash of the key, for duplicate detection), ``_reason``
    (NULL for a row passing every row check), ``record_json`` (bad rows only) and ``_late``
    (event day before the delivery day).  Reasons are only built for bad rows.
    """
    select = scan_select_sql(
        contract, files[0].column_types, max_lateness_days, typed_sql(contract, files)
    )
    return f"CREATE OR REPLACE TEMP TABLE _scan AS {select}"


def scan_select_sql(
    contract: Contract,
    column_types: dict[str, str],
    max_lateness_days: int,
    typed: str,
    *,
    with_columns: Sequence[str] = (),
) -> str:
    """The SELECT of :func:`scan_sql` over ``typed`` (a subquery or table of the typed rows,
    aliased ``t``); ``with_columns``: columns of ``t`` to add (the Spark engine writes the good
    rows from it).  One statement for both engines: Spark runs it transpiled."""
    conditions = checks(contract, column_types, max_lateness_days)
    joins = [
        _reference_join(col, f"ref{i}")
        for i, col in enumerate(c for c in contract.columns if c.references)
    ]
    any_bad = " OR ".join(f"coalesce({cond}, false)" for cond, _ in conditions)
    reason = ", ".join(f"CASE WHEN {cond} THEN {sql_str(r)} END" for cond, r in conditions)
    key_hash = key_hash_sql(contract, "t")
    late = (
        f"coalesce(CAST(t.{q(contract.event_time)} AS DATE) < t._day, false)"
        if contract.event_time and contract.kind == "event"
        else "false"
    )
    columns = "".join(f", t.{q(c)}" for c in with_columns)
    return (
        f"SELECT t._f, t._row, {key_hash} AS _h, "
        f"CASE WHEN {any_bad} THEN concat_ws('; ', {reason}) END AS _reason, "
        f"CASE WHEN {any_bad} THEN {record_json_sql(contract, column_types)} END AS record_json, "
        f"{late} AS _late{columns} "
        f"FROM {typed} t {' '.join(joins)}"
    )


def typed_columns_sql(contract: Contract, column_types: dict[str, str]) -> str:
    """The typed contract columns and the ``<col>__raw`` columns of :func:`typed_sql`, over
    rows read as delivered (``_f``, ``_row``, ``_day`` kept)."""
    cols = [f"{_typed(c, column_types[c.name])} AS {q(c.name)}" for c in contract.columns]
    cols += [
        f"{q(c.name)} AS {_raw(c)}"
        for c in contract.columns
        if _needs_cast(c, column_types[c.name])
    ]
    return f"_f, _row, _day, {', '.join(cols)}"


def seen_sql(contract: Contract) -> str:
    """Create ``_seen(_h)``: the key hashes of the rows already in the warehouse table.

    Built once per source and run, then kept current with :data:`ADD_SEEN_SQL` inside each
    batch's transaction, so the warehouse keys are not re-read and re-hashed for every batch.
    """
    return (
        "CREATE OR REPLACE TEMP TABLE _seen AS "
        f"SELECT {key_hash_sql(contract, 'w')} AS _h FROM {q(contract.name)} w"
    )


# Every good row's key is in the warehouse after the batch (duplicates repeat a loaded key).
ADD_SEEN_SQL = "INSERT INTO _seen SELECT _h FROM _scan WHERE _reason IS NULL"

CANDIDATES_SQL = """
CREATE OR REPLACE TEMP TABLE _cand AS
WITH ok AS (SELECT _h, _f, _row FROM _scan WHERE _reason IS NULL),
repeated AS (SELECT _h FROM ok GROUP BY _h HAVING count(*) > 1),
seen AS (SELECT DISTINCT _h FROM _seen WHERE _h IN (SELECT _h FROM ok))
SELECT ok._f, ok._row, s._h IS NOT NULL AS _seen
FROM ok LEFT JOIN seen s ON s._h = ok._h
WHERE s._h IS NOT NULL OR ok._h IN (SELECT _h FROM repeated)
"""
"""Create ``_cand(_f, _row, _seen)``: good rows whose key hash repeats in the batch or is in
``_seen`` (then ``_seen`` is true).  A superset of the duplicates, usually empty, so exact keys
are compared only for these few rows."""


def duplicates_sql(
    contract: Contract, files: Sequence[InspectedFile], indices: Sequence[int], *, seen: bool
) -> str:
    """Add to ``_bad`` the candidate rows whose key really repeats in the batch or exists in
    the warehouse, with their records.

    Reads only the files ``indices`` (those with candidate rows), once.  The first occurrence
    (in delivery order) of a key new to the warehouse is kept; every other occurrence is a
    duplicate.  Only rows that pass every other check compete for a key.  Without ``seen``
    (no candidate's hash is in the warehouse) the warehouse table is not read at all.
    """
    key = ", ".join(q(k) for k in contract.key)
    on = " AND ".join(f"w.{q(k)} = c.{q(k)}" for k in contract.key)
    first_key = q(contract.key[0])
    in_warehouse = (
        f"SELECT DISTINCT {', '.join(f'w.{q(k)}' for k in contract.key)} "
        f"FROM {q(contract.name)} w SEMI JOIN (SELECT * FROM cand WHERE _seen) c ON {on}"
        if seen
        else f"SELECT {key} FROM cand WHERE false"
    )
    return f"""
INSERT INTO _bad
WITH cand AS MATERIALIZED (
    SELECT t.*, c._seen, (CAST(t._f AS BIGINT) << {_POS_SHIFT}) + t._row AS _pos
    FROM {typed_sql(contract, files, indices)} t JOIN _cand c USING (_f, _row)
),
in_warehouse AS ({in_warehouse}),
repeated AS (
    SELECT {key}, min(_pos) AS _first FROM cand GROUP BY {key} HAVING count(*) > 1
)
SELECT t._f, t._row,
    CASE WHEN w.{first_key} IS NULL AND (r._first >> {_POS_SHIFT}) = t._f
         THEN {sql_str(reason_duplicate(contract, within_file=True))}
         ELSE {sql_str(reason_duplicate(contract, within_file=False))} END AS _reason,
    {record_json_sql(contract, files[0].column_types)} AS record_json
FROM cand t
LEFT JOIN in_warehouse w USING ({key})
LEFT JOIN repeated r USING ({key})
WHERE w.{first_key} IS NOT NULL OR (r._first IS NOT NULL AND t._pos <> r._first)
"""


BAD_ROWS_SQL = (
    "CREATE OR REPLACE TEMP TABLE _bad AS "
    "SELECT _f, _row, _reason, record_json FROM _scan WHERE _reason IS NOT NULL"
)
