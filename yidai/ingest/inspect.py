"""Checks of a whole file before any row is read: checksum, readability, columns and types.

A file that fails here is reported as failed with a one-line reason; its rows never reach
the row-level checks.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from yidai.contracts import Contract, DType
from yidai.ingest.discovery import LandingFile

_INTEGER_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
}
_FLOAT_TYPES = {"FLOAT", "DOUBLE"}
_TIME_TYPES = {
    "TIMESTAMP",
    "TIMESTAMP_NS",
    "TIMESTAMP_MS",
    "TIMESTAMP_S",
    "TIMESTAMP WITH TIME ZONE",
    "DATE",
}
_NULL_TYPE = '"NULL"'


class FileProblem(Exception):
    """A whole-file problem: the message says what is wrong (the caller adds the path)."""


@dataclass(frozen=True)
class InspectedFile:
    """A readable file whose columns match its contract."""

    file: LandingFile
    checksum: str
    size: int
    rows: int
    column_types: dict[str, str]  # name -> DuckDB type as read (all VARCHAR for CSV)

    @property
    def batch_id(self) -> str:
        """Deterministic id of this file's batch: source, delivery day, content hash."""
        return f"{self.file.source}:{self.file.day}:{self.checksum[:16]}"


ParquetFooter = tuple[dict[str, str], int]  # column name -> DuckDB type, row count


@dataclass(frozen=True)
class PreparedFile:
    """What is read of a file ahead of loading (in a worker thread): its checksum and, for
    Parquet, its footer (or the problem reading it)."""

    checksum: str | None  # None: not found or unreadable
    footer: ParquetFooter | FileProblem | None = None


def prepare_file(file: LandingFile) -> PreparedFile:
    """Checksum and Parquet footer of ``file``; thread-safe, never raises for a bad file."""
    try:
        checksum = sha256_of(file.path)
    except OSError:
        return PreparedFile(None)
    if file.fmt != "parquet" or file.path.stat().st_size == 0:
        return PreparedFile(checksum)
    try:
        return PreparedFile(checksum, _parquet_footer(file.path))
    except FileProblem as exc:
        return PreparedFile(checksum, exc)


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sql_str(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def reader_sql(files: Sequence[LandingFile], indices: Sequence[int] | None = None) -> str:
    """A subquery reading ``files`` with ``_f`` (index in ``files``), 1-based ``_row``, ``_day``.

    With ``indices``, ``_f`` of the ``i``-th file is ``indices[i]`` instead (to re-read a few
    files of a batch under their batch positions).  Parquet files are read by one multi-file
    scan (they must share their schema); a CSV subquery reads exactly one file.
    """
    days = "[" + ", ".join(f"DATE '{(f.day or date(1970, 1, 1)).isoformat()}'" for f in files) + "]"
    if files[0].fmt == "csv":
        if len(files) != 1:
            raise ValueError("a CSV reader reads exactly one file")
        index = indices[0] if indices else 0
        return (
            f"(SELECT * EXCLUDE (ordinality), {int(index)} AS _f, ordinality AS _row, "
            f"{days}[1] AS _day FROM read_csv({sql_str(str(files[0].path))}, header=true, "
            "all_varchar=true, delim=',', quote='\"', escape='\"', auto_detect=true, "
            "null_padding=false, hive_partitioning=false) WITH ORDINALITY)"
        )
    paths = "[" + ", ".join(sql_str(str(f.path)) for f in files) + "]"
    position = "CAST(file_index AS INTEGER)"
    if indices is not None:
        listed = ", ".join(str(int(i)) for i in indices)
        position = f"[{listed}][CAST(file_index AS BIGINT) + 1]"
    return (
        f"(SELECT * EXCLUDE (file_row_number), {position} AS _f, "
        f"file_row_number + 1 AS _row, {days}[CAST(file_index AS BIGINT) + 1] AS _day "
        f"FROM read_parquet({paths}, file_row_number=true, hive_partitioning=false))"
    )


def _compatible(actual: str, expected: DType) -> bool:
    """Whether a column read as ``actual`` can be cast to the contract type value by value."""
    if actual in (_NULL_TYPE, expected):
        return True
    numeric = actual in _INTEGER_TYPES or actual in _FLOAT_TYPES or actual.startswith("DECIMAL")
    if expected in ("DOUBLE", "BIGINT", "INTEGER"):
        return numeric
    if expected in ("TIMESTAMP", "DATE"):
        return actual in _TIME_TYPES
    return False


def _clean_duckdb_message(exc: BaseException, path: Path) -> str:
    text = str(exc).splitlines()[0]
    text = re.sub(r"^[A-Za-z ]*Error: ", "", text)
    text = text.replace(f'"{path}"', "").replace(f"'{path}'", "").replace(str(path), "")
    return re.sub(r"\s+", " ", text).strip(" :")


def _duckdb_type(arrow_type: Any) -> str:
    """The DuckDB type name ``read_parquet`` gives a column of this Arrow type."""
    import pyarrow as pa

    t: Any = arrow_type
    if isinstance(t, pa.DictionaryType):
        t = t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "VARCHAR"
    if pa.types.is_null(t):
        return _NULL_TYPE
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_integer(t):
        names = {8: "TINYINT", 16: "SMALLINT", 32: "INTEGER", 64: "BIGINT"}
        name = names[t.bit_width]
        return ("U" + name) if pa.types.is_unsigned_integer(t) else name
    if pa.types.is_floating(t):
        return "DOUBLE" if t.bit_width == 64 else "FLOAT"
    if pa.types.is_decimal(t):
        return "DECIMAL"
    if pa.types.is_timestamp(t):
        if t.tz is not None:
            return "TIMESTAMP WITH TIME ZONE"
        return {"s": "TIMESTAMP_S", "ms": "TIMESTAMP_MS", "us": "TIMESTAMP", "ns": "TIMESTAMP_NS"}[
            t.unit
        ]
    if pa.types.is_date(t):
        return "DATE"
    return str(t).upper()


def _parquet_footer(path: Path) -> ParquetFooter:
    """Column types and row count from a Parquet footer (nothing else is read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_metadata(path)
        schema = metadata.schema.to_arrow_schema()
    except (pa.ArrowException, OSError) as exc:
        message = str(exc).replace(str(path), "").replace("''", "").strip().rstrip(".")
        raise FileProblem(f"corrupt or unreadable Parquet file ({message})") from None
    names = list(schema.names)
    if len(set(names)) != len(names):
        raise FileProblem("duplicate column names in the Parquet schema")
    return {f.name: _duckdb_type(f.type) for f in schema}, int(metadata.num_rows)


def _csv_header(path: Path) -> list[str]:
    """Column names of a CSV header (DuckDB's sniffer would invent names for odd headers)."""
    import csv

    with path.open(newline="", encoding="utf-8") as handle:
        try:
            return next(csv.reader(handle))
        except StopIteration:
            return []
        except (UnicodeDecodeError, csv.Error) as exc:
            raise FileProblem(f"unreadable CSV header ({exc})") from None


def inspect_file(
    con: duckdb.DuckDBPyConnection,
    file: LandingFile,
    contract: Contract,
    checksum: str,
    footer: ParquetFooter | FileProblem | None = None,
) -> InspectedFile:
    """Check that ``file`` is readable, non-empty and has exactly the contract's columns.

    ``footer``: the Parquet footer already read by :func:`prepare_file` (read here if None).
    """
    path = file.path
    if not path.exists():
        raise FileProblem("file not found")
    size = path.stat().st_size
    if size == 0:
        raise FileProblem("empty file (0 bytes)")
    if file.fmt == "csv":
        header = _csv_header(path)
        if not any(h.strip() for h in header):
            raise FileProblem("empty CSV file (no header row)")
        columns = dict.fromkeys(header, "VARCHAR")
        if len(columns) != len(header):
            raise FileProblem("duplicate column names in the CSV header")
        _check_columns(columns, contract, typed=False)
        try:
            row = con.execute(f"SELECT count(*) FROM {reader_sql([file])}").fetchone()
        except duckdb.Error as exc:
            raise FileProblem(
                f"corrupt or unreadable CSV file ({_clean_duckdb_message(exc, path)})"
            ) from None
        rows = int(row[0]) if row else 0
    else:
        if isinstance(footer, FileProblem):
            raise footer
        columns, rows = footer if footer is not None else _parquet_footer(path)
        _check_columns(columns, contract)
    if rows == 0:
        raise FileProblem("empty file (no rows)")
    return InspectedFile(file, checksum, size, rows, columns)


def _check_columns(columns: dict[str, str], contract: Contract, *, typed: bool = True) -> None:
    """Exactly the contract's columns; with ``typed``, of castable types (text is castable
    to anything, value by value, so CSV columns are checked row by row instead)."""
    expected = contract.column_names
    missing = [c for c in expected if c not in columns]
    extra = [c for c in columns if c not in expected]
    problems = []
    if missing:
        problems.append("missing column(s) " + ", ".join(missing))
    if extra:
        problems.append("unexpected column(s) " + ", ".join(extra))
    if problems:
        raise FileProblem(f"does not match the {contract.name} contract: " + "; ".join(problems))
    if not typed:
        return
    wrong = [
        f"{col.name} is {columns[col.name]}, expected {col.dtype}"
        for col in contract.columns
        if not _compatible(columns[col.name], col.dtype)
    ]
    if wrong:
        raise FileProblem("wrong column type(s): " + "; ".join(wrong))
