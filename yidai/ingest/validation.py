"""The contract checks, written as DuckDB SQL over whole files (no row-by-row Python).

Every check yields a reason string for a bad row; a row's ``_reason`` joins all the reasons
it breaks (``; ``-separated) and is NULL for a good row.  Reasons name the column and what is
wrong, so the quarantine table can be grouped by reason.
"""

from __future__ import annotations

from collections.abc import Sequence

from yidai.contracts import Column, Contract
from yidai.ingest.inspect import InspectedFile, reader_sql, sql_str

INTEGER_DTYPES = ("BIGINT", "INTEGER")
_POS_SHIFT = 40  # position of a row within a batch: (file index << 40) + row number


def q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _when(condition: str, reason: str) -> str:
    return f"CASE WHEN {condition} THEN {sql_str(reason)} END"


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


def reason_duplicate(contract: Contract, *, within_file: bool) -> str:
    where = "repeated within the file" if within_file else "already loaded from an earlier file"
    return f"duplicate key ({', '.join(contract.key)}): {where}"


def _read_checks(col: Column, actual_type: str) -> list[str]:
    """Checks on the value as read: missing values and values that do not cast."""
    raw = q(col.name)
    checks = []
    if not col.nullable:
        checks.append(_when(f"{raw} IS NULL", reason_missing(col)))
    if actual_type not in (col.dtype, '"NULL"'):
        bad_cast = f"{raw} IS NOT NULL AND TRY_CAST({raw} AS {col.dtype}) IS NULL"
        if col.dtype in INTEGER_DTYPES:
            bad_cast = (
                f"{raw} IS NOT NULL AND (TRY_CAST({raw} AS {col.dtype}) IS NULL "
                f"OR TRY_CAST({raw} AS DOUBLE) <> TRY_CAST({raw} AS {col.dtype}))"
            )
        checks.append(_when(bad_cast, reason_cast(col)))
    return checks


def _typed(col: Column, actual_type: str) -> str:
    raw = q(col.name)
    if actual_type == col.dtype:
        return raw
    if actual_type == '"NULL"':
        return f"CAST(NULL AS {col.dtype})"
    return f"TRY_CAST({raw} AS {col.dtype})"


def _value_checks(contract: Contract) -> list[str]:
    """Checks on typed values (NULL values pass; missing values are checked on read)."""
    checks = []
    for col in contract.columns:
        name = q(col.name)
        if col.dtype == "DOUBLE":
            checks.append(_when(f"NOT isfinite({name})", f"{col.name}: not a finite number"))
        if col.allowed:
            values = ", ".join(sql_str(v) for v in col.allowed)
            checks.append(_when(f"{name} NOT IN ({values})", reason_allowed(col)))
        if col.min_value is not None:
            checks.append(_when(f"{name} < {col.min_value!r}", reason_min(col)))
        if col.references:
            table, ref_col = col.references.split(".")
            checks.append(
                _when(
                    f"{name} NOT IN (SELECT {q(ref_col)} FROM {q(table)} "
                    f"WHERE {q(ref_col)} IS NOT NULL)",
                    reason_reference(col),
                )
            )
    if contract.event_time:
        limit = "CAST(_day AS TIMESTAMP) + INTERVAL 2 DAY"
        checks.append(_when(f"{q(contract.event_time)} >= {limit}", reason_future(contract)))
    for reason, expression in contract.extra_checks:
        checks.append(_when(f"({expression})", reason))
    return checks


def stage_sql(contract: Contract, files: Sequence[InspectedFile]) -> str:
    """Create ``_stage``: every row of ``files`` with its row-level reasons.

    Columns: ``_f`` (file index), ``_row``, the typed contract columns, ``_reason`` and
    ``_raw_json`` (the record as delivered when a value failed to cast, as in a CSV; the
    typed record is used otherwise).  The files must share their column types (one scan).
    """
    types = files[0].column_types
    typed = [f"{_typed(c, types[c.name])} AS {q(c.name)}" for c in contract.columns]
    read_checks = [check for c in contract.columns for check in _read_checks(c, types[c.name])]
    read_errors = f"concat_ws('; ', {', '.join(read_checks)})" if read_checks else "''"
    has_casts = any(types[c.name] not in (c.dtype, '"NULL"') for c in contract.columns)
    raw_record = "{" + ", ".join(f"{sql_str(c.name)}: {q(c.name)}" for c in contract.columns) + "}"
    raw_json = (
        f"CASE WHEN {read_errors} <> '' THEN CAST(to_json({raw_record}) AS VARCHAR) END"
        if has_casts
        else "CAST(NULL AS VARCHAR)"
    )
    inner = (
        f"SELECT _f, _row, _day, {', '.join(typed)}, {read_errors} AS _read_errors, "
        f"{raw_json} AS _raw_json FROM {reader_sql([f.file for f in files])}"
    )
    checks = ["NULLIF(_read_errors, '')", *_value_checks(contract)]
    columns = ", ".join(q(c) for c in contract.column_names)
    return (
        "CREATE OR REPLACE TEMP TABLE _stage AS "
        f"SELECT CAST(_f AS INTEGER) AS _f, CAST(_row AS BIGINT) AS _row, {columns}, "
        f"NULLIF(concat_ws('; ', {', '.join(checks)}), '') AS _reason, _raw_json "
        f"FROM ({inner})"
    )


def duplicates_sql(contract: Contract) -> str:
    """Create ``_dup``: good rows whose key repeats in the batch or exists in the warehouse.

    The first occurrence (in delivery order) of a key new to the warehouse is kept; every other
    occurrence is a duplicate.  Only rows that pass every other check compete for a key.
    """
    key = ", ".join(q(k) for k in contract.key)
    on = " AND ".join(f"t.{q(k)} = ok.{q(k)}" for k in contract.key)
    first_key = q(contract.key[0])
    return f"""
CREATE OR REPLACE TEMP TABLE _dup AS
WITH ok AS (
    SELECT {key}, _f, _row, (CAST(_f AS BIGINT) << {_POS_SHIFT}) + _row AS _pos
    FROM _stage WHERE _reason IS NULL
),
in_warehouse AS (
    SELECT DISTINCT {", ".join(f"t.{q(k)}" for k in contract.key)}
    FROM {q(contract.name)} t SEMI JOIN ok ON {on}
),
repeated AS (
    SELECT {key}, min(_pos) AS _first FROM ok GROUP BY {key} HAVING count(*) > 1
)
SELECT ok._f, ok._row,
    CASE WHEN w.{first_key} IS NULL AND (r._first >> {_POS_SHIFT}) = ok._f
         THEN {sql_str(reason_duplicate(contract, within_file=True))}
         ELSE {sql_str(reason_duplicate(contract, within_file=False))} END AS _reason
FROM ok
LEFT JOIN in_warehouse w USING ({key})
LEFT JOIN repeated r USING ({key})
WHERE w.{first_key} IS NOT NULL OR (r._first IS NOT NULL AND ok._pos <> r._first)
"""


def record_json_sql(contract: Contract) -> str:
    """JSON of a staged row as delivered (raw text if a value failed to cast)."""
    record = "{" + ", ".join(f"{sql_str(c)}: {q(c)}" for c in contract.column_names) + "}"
    return f"coalesce(_raw_json, CAST(to_json({record}) AS VARCHAR))"
