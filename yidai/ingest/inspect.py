"""Checks of a whole file before any row is read: checksum, readability, columns and types.

A file that fails here is reported as failed with a one-line reason; its rows never reach
the row-level checks.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from yidai.core.contracts import Contract, DType
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
CSV_ENCODING = "UTF-8"
MAX_CSV_LINE_BYTES = 1 << 20
"""Longest CSV line (and so field) accepted: 1 MiB (contract rows are a few hundred bytes)."""
_LIMIT_TEXT = "1 MiB"


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
    # O_NOFOLLOW: a file swapped for a symbolic link after discovery is not followed
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
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
            f"null_padding=false, hive_partitioning=false, max_line_size={MAX_CSV_LINE_BYTES}) "
            "WITH ORDINALITY)"
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
    # heavy: pyarrow
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
    # heavy: pyarrow
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


def _measure_long_line(handle: Any, start: bytes) -> tuple[int, int]:
    """Length in bytes of a too-long line (``start`` already read) and of its longest
    comma-free run (its biggest field), reading the rest in chunks without keeping it."""
    size, longest, run = 0, 0, 0
    chunk = start
    while chunk:
        body = chunk.rstrip(b"\r\n")
        pieces = body.split(b",")
        run += len(pieces[0])
        if len(pieces) > 1:
            longest = max(longest, run, *(len(p) for p in pieces[1:-1]))
            run = len(pieces[-1])
        size += len(body)
        if chunk.endswith(b"\n"):
            break
        chunk = handle.readline(MAX_CSV_LINE_BYTES)
    return size, max(longest, run)


def _csv_lines(handle: Any) -> Iterator[str]:
    """The physical lines of a CSV file, decoded; a :class:`FileProblem` naming the line for
    a line over :data:`MAX_CSV_LINE_BYTES` or bytes that are not :data:`CSV_ENCODING`."""
    line_no = 0
    while chunk := handle.readline(MAX_CSV_LINE_BYTES + 1):
        line_no += 1
        if len(chunk) > MAX_CSV_LINE_BYTES and not chunk.endswith(b"\n"):
            size, field = _measure_long_line(handle, chunk)
            if field > MAX_CSV_LINE_BYTES:
                raise FileProblem(
                    f"field of {field:,} bytes on line {line_no} exceeds the {_LIMIT_TEXT} limit"
                )
            raise FileProblem(
                f"line {line_no} is {size:,} bytes long, over the {_LIMIT_TEXT} line limit"
            )
        try:
            yield chunk.decode(CSV_ENCODING)
        except UnicodeDecodeError as exc:
            raise FileProblem(
                f"line {line_no} is not valid {CSV_ENCODING}: byte 0x{chunk[exc.start]:02x} "
                f"at position {exc.start + 1}"
            ) from None


class _CsvRecords:
    """Records of a CSV file with the physical line each one ends on; a
    :class:`FileProblem` naming the line for malformed CSV (see :func:`_csv_lines`)."""

    def __init__(self, handle: Any) -> None:
        self._reader = csv.reader(_csv_lines(handle), delimiter=",", quotechar='"', strict=True)

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        limit = csv.field_size_limit()
        csv.field_size_limit(MAX_CSV_LINE_BYTES)
        try:
            while True:
                try:
                    record = next(self._reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    line = self._reader.line_num
                    if "field limit" in str(exc):
                        raise FileProblem(
                            f"a field ending on line {line} exceeds the {_LIMIT_TEXT} limit"
                        ) from None
                    raise FileProblem(f"line {line} is not well-formed CSV ({exc})") from None
                yield self._reader.line_num, record
        finally:
            csv.field_size_limit(limit)


def _csv_header(path: Path) -> list[str]:
    """Column names of a CSV header (DuckDB's sniffer would invent names for odd headers)."""
    with path.open("rb") as handle:
        for _, header in _CsvRecords(handle):
            return header
    return []


def diagnose_csv(path: Path) -> str | None:
    """The first problem of a CSV file that DuckDB could not read, named by line: a line or
    field over the size limit, bytes that are not UTF-8, malformed quoting, or a row whose
    field count differs from the header's.  None if none is found.  Reads the file once,
    streaming (only called after DuckDB failed, so loading good files costs nothing)."""
    try:
        with path.open("rb") as handle:
            records = iter(_CsvRecords(handle))
            header = next(records, (0, []))[1]
            for line, record in records:
                if record and len(record) != len(header):
                    return f"line {line} has {len(record)} fields, the header has {len(header)}"
    except FileProblem as exc:
        return str(exc)
    return None


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
    if path.is_symlink():  # replaced by a link since discovery
        raise FileProblem("refused: symbolic link (links are never followed)")
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
            cause = diagnose_csv(path) or _clean_duckdb_message(exc, path)
            raise FileProblem(f"corrupt or unreadable CSV file ({cause})") from None
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
