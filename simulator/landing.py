"""Row batches, their encoding into contract-typed Arrow tables, and the landing-zone writer.

Generators build :class:`Batch` objects of plain numpy columns (ids as integer codes,
categories as indices into the contract's allowed values, timestamps as epoch microseconds),
plus the delivery day of every row.  :class:`LandingWriter` injects data-quality defects,
holds rows until their delivery day's month is complete, and writes
``<landing>/<source>/dt=YYYY-MM-DD/part-<stream>.parquet`` with the exact contract schema.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from simulator.calendar import Calendar
from yidai.core.contracts import CONTRACTS, Contract

ENTITY_WIDTH = 8
EVENT_WIDTH = 13
TOKEN_WIDTH = 16
TOKEN_MASK = (1 << 50) - 1
TOKEN_MIX = 0x9E3779B97F4A7C15

# Id columns: prefix and digit width.  A code is an entity index or a unique event number.
ID_FORMATS: dict[str, tuple[str, int]] = {
    "customer_id": ("C", ENTITY_WIDTH),
    "merchant_id": ("M", ENTITY_WIDTH),
    "terminal_id": ("T", ENTITY_WIDTH),
    "sme_id": ("S", ENTITY_WIDTH),
    "seller_id": ("L", ENTITY_WIDTH),
    "settlement_account": ("SA", ENTITY_WIDTH),
    "device_id": ("DV", 10),
    "counterparty_id": ("CP", 10),
    "txn_id": ("P", EVENT_WIDTH),
    "order_id": ("O", EVENT_WIDTH),
    "payment_id": ("Y", EVENT_WIDTH),
    "application_id": ("A", 10),
    "account_id": ("A", 10),
    "drawdown_id": ("W", 11),
    "schedule_id": ("R", 12),
    "report_id": ("F", EVENT_WIDTH),
}
# Id columns whose prefix depends on another (categorical) column of the row.
POLY_IDS: dict[str, tuple[str, dict[str, str]]] = {
    "buyer_id": ("buyer_type", {"customer": "customer_id", "sme": "sme_id"}),
    "payer_id": ("payer_type", {"customer": "customer_id", "sme": "sme_id"}),
    "applicant_id": (
        "product",
        {"personal": "customer_id", "merchant": "merchant_id", "sme": "sme_id"},
    ),
    "ref_id": ("ref_type", {"pos": "txn_id", "payment": "payment_id"}),
}
INDUSTRIES = ("retail", "wholesale", "manufacturing", "logistics", "services", "construction")
# Vocabularies of categorical columns without ``allowed`` values in the contract.
LOCAL_VOCAB: dict[str, tuple[str, ...]] = {"industry": INDUSTRIES}
UNKNOWN_ID_BASE = 90_000_000

ARROW_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "TIMESTAMP": pa.timestamp("us"),
    "DATE": pa.date32(),
    "DOUBLE": pa.float64(),
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "BOOLEAN": pa.bool_(),
}
_LOCAL_FS = pafs.LocalFileSystem()


def arrow_schema(contract: Contract) -> pa.Schema:
    """The Arrow schema of a contract (column order and types exactly as declared).

    Every field is declared nullable in the files, as in a real extract: a null where the
    contract forbids it is a data-quality defect for ingestion to catch, not a write error.
    """
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.dtype]) for c in contract.columns])


def card_tokens(codes: np.ndarray) -> np.ndarray:
    """Irreversible-looking token numbers of card codes (a bijection, so tokens stay unique)."""
    mixed = (codes.astype(np.uint64) * np.uint64(TOKEN_MIX)) & np.uint64(TOKEN_MASK)
    return mixed.astype(np.int64)


@dataclass
class Batch:
    """Rows of one source as numpy columns, with each row's delivery day index."""

    source: str
    cols: dict[str, np.ndarray]
    day: np.ndarray
    nulls: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.day)

    def take(self, idx: np.ndarray) -> Batch:
        return Batch(
            self.source,
            {k: v[idx] for k, v in self.cols.items()},
            self.day[idx],
            {k: v[idx] for k, v in self.nulls.items()},
        )

    @staticmethod
    def concat(batches: list[Batch]) -> Batch:
        """One batch of the rows of several batches of the same source."""
        first = batches[0]
        if len(batches) == 1:
            return first
        n = [len(b) for b in batches]
        null_cols = sorted({k for b in batches for k in b.nulls})
        nulls = {
            k: np.concatenate(
                [b.nulls.get(k, np.zeros(m, dtype=bool)) for b, m in zip(batches, n, strict=True)]
            )
            for k in null_cols
        }
        return Batch(
            first.source,
            {k: np.concatenate([b.cols[k] for b in batches]) for k in first.cols},
            np.concatenate([b.day for b in batches]),
            nulls,
        )


ID_CACHE_LIMIT = 1 << 21  # codes below this are formatted once and looked up afterwards


def _bitmap(valid: np.ndarray) -> pa.Buffer:
    """An Arrow validity bitmap (LSB first) of a boolean array."""
    return pa.py_buffer(np.packbits(valid, bitorder="little"))


def fixed_width_strings(data: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """An Arrow string array of the rows of an ``(n, size)`` uint8 matrix (nulls where given)."""
    n, size = data.shape
    offsets = np.arange(0, (n + 1) * size, size, dtype=np.int32)
    if null is not None and null.any():
        return pa.StringArray.from_buffers(
            n,
            pa.py_buffer(offsets),
            pa.py_buffer(np.ascontiguousarray(data)),
            _bitmap(~null),
            int(null.sum()),
        )
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data))
    )


def _format_bytes(codes: np.ndarray, prefix: str, width: int) -> np.ndarray:
    """``<prefix><code zero-padded>`` of each code as rows of an ``(n, size)`` uint8 matrix.

    Arrow casts ``10**width + code`` to text (all the same length), then numpy swaps the
    leading ``1`` for the prefix in one fixed-width copy.
    """
    n = len(codes)
    if n and (codes.min() < 0 or codes.max() >= 10**width):
        raise ValueError(f"id codes out of range for {width} digits (prefix {prefix!r})")
    shifted = codes + 10**width
    ints = pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(shifted)])
    text = pc.cast(ints, pa.string())
    digits = np.frombuffer(text.buffers()[2], np.uint8, count=n * (width + 1)).reshape(n, width + 1)
    head = np.frombuffer(prefix.encode(), np.uint8)
    data = np.empty((n, len(head) + width), np.uint8)
    data[:, : len(head)] = head
    data[:, len(head) :] = digits[:, 1:]
    return data


@lru_cache(maxsize=64)
def _id_table(kind: str, prefix: str, width: int, limit: int) -> np.ndarray:
    """Formatted ids of codes ``0..limit-1`` (one fixed-width void item per code)."""
    codes = np.arange(limit, dtype=np.int64)
    if kind == "card_token":
        codes = card_tokens(codes)
    data = _format_bytes(codes, prefix, width)
    return data.view(f"V{data.shape[1]}").ravel()


def id_bytes(codes: np.ndarray, kind: str, prefix: str, width: int) -> np.ndarray:
    """The ``(n, size)`` uint8 ids of ``codes``; small codes come from a cached table."""
    codes = np.asarray(codes, dtype=np.int64)
    n, size = len(codes), len(prefix) + width
    if n == 0:
        return np.empty((0, size), np.uint8)
    small = (codes >= 0) & (codes < ID_CACHE_LIMIT)
    top = int(codes[small].max()) + 1 if small.any() else 0
    limit = 1 << max(top - 1, 1023).bit_length()  # power of two: few cached sizes
    if small.all():
        return _id_table(kind, prefix, width, limit).take(codes).view(np.uint8).reshape(n, size)
    big = codes[~small]
    if kind == "card_token":
        big = card_tokens(big)
    data = np.empty((n, size), np.uint8)
    data[~small] = _format_bytes(big, prefix, width)
    if top:
        table = _id_table(kind, prefix, width, limit)
        data[small] = table.take(codes[small]).view(np.uint8).reshape(-1, size)
    return data


def format_ids(codes: np.ndarray, prefix: str, width: int) -> pa.Array:
    """Ids ``<prefix><code zero-padded to width digits>`` as an Arrow string array."""
    return fixed_width_strings(id_bytes(np.asarray(codes), prefix, prefix, width))


def _vocab(contract: Contract, name: str) -> tuple[str, ...]:
    allowed = contract.column(name).allowed
    if allowed is not None:
        return allowed
    return LOCAL_VOCAB[name]


def _poly_id_bytes(contract: Contract, name: str, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
    """Ids whose prefix depends on a kind column: bytes and the rows of no known kind."""
    kind_col, formats = POLY_IDS[name]
    values = np.asarray(batch.cols[name], dtype=np.int64)
    kind_codes = batch.cols[kind_col]
    sizes = {len(ID_FORMATS[f][0]) + ID_FORMATS[f][1] for f in formats.values()}
    if len(sizes) != 1:
        raise ValueError(f"the id formats of {name} must share one width")
    data = np.zeros((len(values), sizes.pop()), np.uint8)
    unknown = np.ones(len(values), dtype=bool)
    for i, kind in enumerate(_vocab(contract, kind_col)):
        if kind not in formats:
            continue
        rows = np.flatnonzero(kind_codes == i)
        target = formats[kind]
        data[rows] = id_bytes(values[rows], target, *ID_FORMATS[target])
        unknown[rows] = False
    return data, unknown


def arrow_array(
    values: np.ndarray, arrow_type: pa.DataType, null: np.ndarray | None = None
) -> pa.Array:
    """A fixed-width Arrow array straight from a numpy buffer (no pandas, no extra copy)."""
    n = len(values)
    if pa.types.is_boolean(arrow_type):
        buffer = _bitmap(np.asarray(values, dtype=bool))
    else:
        dtype = {
            pa.float64(): np.float64,
            pa.int32(): np.int32,
            pa.date32(): np.int32,
        }.get(arrow_type, np.int64)
        buffer = pa.py_buffer(np.ascontiguousarray(values, dtype=dtype))
    if null is not None and null.any():
        return pa.Array.from_buffers(arrow_type, n, [_bitmap(~null), buffer], int(null.sum()))
    return pa.Array.from_buffers(arrow_type, n, [None, buffer])


def encode_column(contract: Contract, name: str, batch: Batch) -> pa.Array:
    """The contract-typed Arrow array of one column of ``batch``."""
    col = contract.column(name)
    values = batch.cols[name]
    null = batch.nulls.get(name)
    if col.dtype != "VARCHAR":
        return arrow_array(values, ARROW_TYPES[col.dtype], null)
    if name == "card_token":
        return fixed_width_strings(id_bytes(values, name, "tk", TOKEN_WIDTH), null)
    if name in ID_FORMATS:
        return fixed_width_strings(id_bytes(values, name, *ID_FORMATS[name]), null)
    if name in POLY_IDS:
        data, unknown = _poly_id_bytes(contract, name, batch)
        return fixed_width_strings(data, unknown if null is None else unknown | null)
    return vocab_strings(_vocab(contract, name), values, null)


def encode(batch: Batch) -> pa.Table:
    """The contract-typed Arrow table of a batch."""
    contract = CONTRACTS[batch.source]
    schema = arrow_schema(contract)
    arrays = [encode_column(contract, name, batch) for name in contract.column_names]
    return pa.Table.from_arrays(arrays, schema=schema)


def string_array(values: Sequence[str | None]) -> pa.Array:
    """An Arrow string array of Python strings (built from buffers: no pandas import)."""
    encoded = [b"" if v is None else v.encode() for v in values]
    offsets = np.zeros(len(encoded) + 1, np.int32)
    offsets[1:] = np.cumsum([len(e) for e in encoded])
    null = np.array([v is None for v in values], dtype=bool)
    buffers = [pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    if null.any():
        return pa.StringArray.from_buffers(len(encoded), *buffers, _bitmap(~null), int(null.sum()))
    return pa.StringArray.from_buffers(len(encoded), *buffers)


@lru_cache(maxsize=256)
def _vocab_array(vocab: tuple[str, ...]) -> pa.Array:
    return string_array(vocab)


def vocab_strings(
    vocab: tuple[str, ...], codes: np.ndarray, null: np.ndarray | None = None
) -> pa.Array:
    """The strings ``vocab[code]`` of integer (or boolean) codes (null where ``null``)."""
    return _vocab_array(tuple(vocab)).take(arrow_array(codes, pa.int32(), null))


def is_id_column(name: str) -> bool:
    """Whether a VARCHAR column holds ids (rather than a small vocabulary)."""
    return name == "card_token" or name in ID_FORMATS or name in POLY_IDS


@cache
def parquet_options(source: str) -> dict[str, object]:
    """Writer options of a source: snappy; dictionaries for vocabularies only; no statistics
    on ids (unique strings: a dictionary attempt and min/max on them are wasted work)."""
    contract = CONTRACTS[source]
    vocab = [c.name for c in contract.columns if c.dtype == "VARCHAR" and not is_id_column(c.name)]
    stats = [c.name for c in contract.columns if not is_id_column(c.name)]
    return {"compression": "snappy", "use_dictionary": vocab, "write_statistics": stats}


def key_strings(batch: Batch) -> pa.Array:
    """The key of every row as text (composite keys joined with ``|``)."""
    contract = CONTRACTS[batch.source]
    parts = []
    for name in contract.key:
        arr = encode_column(contract, name, Batch(batch.source, batch.cols, batch.day))
        if pa.types.is_timestamp(arr.type):
            arr = arr.cast(pa.date32())
        parts.append(arr.cast(pa.string()))
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, string_array(["|"])[0])


@dataclass
class DefectLog:
    """Which rows got which defect (written to ``<truth>/defects.parquet``)."""

    tables: list[pa.Table] = field(default_factory=list)

    def record(self, batch: Batch, kinds: list[str], columns: list[str | None]) -> None:
        if len(batch) == 0:
            return
        self.tables.append(
            pa.table(
                {
                    "source": vocab_strings((batch.source,), np.zeros(len(batch), np.int32)),
                    "key": key_strings(batch),
                    "defect": string_array(kinds),
                    "column": string_array(columns),
                    "delivered_day": arrow_array(batch.day, pa.int64()),
                }
            )
        )

    def record_file(self, source: str, relative_path: str, day: int) -> None:
        self.tables.append(
            pa.table(
                {
                    "source": string_array([source]),
                    "key": string_array([relative_path]),
                    "defect": string_array(["malformed_file"]),
                    "column": string_array([None]),
                    "delivered_day": arrow_array(np.array([day]), pa.int64()),
                }
            )
        )


def _own(cols: dict[str, np.ndarray], copied: set[str], column: str) -> None:
    """Copy ``cols[column]`` once before its first change (the caller's batch stays intact)."""
    if column not in copied:
        cols[column] = cols[column].copy()
        copied.add(column)


def inject_defects(
    batch: Batch, rate: float, rng: np.random.Generator, n_days: int, log: DefectLog
) -> Batch:
    """``batch`` with about ``rate`` of its rows made defective (each recorded in ``log``).

    Kinds: duplicate rows, a null in a non-nullable column, a negative amount, an id that
    resolves nowhere, and late delivery (the row lands 1-3 days after its event day).
    """
    n = len(batch)
    if rate <= 0 or n == 0:
        return batch
    contract = CONTRACTS[batch.source]
    picked = np.flatnonzero(rng.random(n) < rate)
    if len(picked) == 0:
        return batch
    nullable_targets = [
        c.name for c in contract.columns if not c.nullable and c.name not in contract.key
    ]
    amount_cols = [
        c.name for c in contract.columns if c.dtype == "DOUBLE" and c.min_value is not None
    ]
    ref_cols = [c.name for c in contract.columns if c.references]
    kinds = ["duplicate", "null", "late_arrival"]
    if amount_cols:
        kinds.append("negative_amount")
    if ref_cols:
        kinds.append("unknown_id")
    chosen = rng.integers(0, len(kinds), len(picked))
    cols = dict(batch.cols)  # columns are copied only when a defect changes them
    nulls = dict(batch.nulls)
    copied: set[str] = set()
    day = batch.day.copy()
    rec_rows: list[int] = []
    rec_kinds: list[str] = []
    rec_cols: list[str | None] = []
    dup_rows: list[int] = []
    for row, kind_i in zip(picked.tolist(), chosen.tolist(), strict=True):
        kind = kinds[kind_i]
        column = ""
        if kind == "duplicate":
            dup_rows.append(row)
        elif kind == "null":
            column = nullable_targets[int(rng.integers(0, len(nullable_targets)))]
            if column not in nulls:
                nulls[column] = np.zeros(n, dtype=bool)
            elif "null:" + column not in copied:
                nulls[column] = nulls[column].copy()
            copied.add("null:" + column)
            nulls[column][row] = True
        elif kind == "negative_amount":
            column = amount_cols[int(rng.integers(0, len(amount_cols)))]
            _own(cols, copied, column)
            cols[column][row] = -max(abs(float(cols[column][row])), 1.0)
        elif kind == "unknown_id":
            column = ref_cols[int(rng.integers(0, len(ref_cols)))]
            _own(cols, copied, column)
            cols[column][row] = UNKNOWN_ID_BASE + int(rng.integers(0, 9_000_000))
        else:
            shift = int(rng.integers(1, 4))
            if day[row] + shift >= n_days:
                continue
            day[row] += shift
        rec_rows.append(row)
        rec_kinds.append(kind)
        rec_cols.append(column or None)
    out = Batch(batch.source, cols, day, nulls)
    if rec_rows:
        log.record(out.take(np.array(rec_rows, dtype=np.int64)), rec_kinds, rec_cols)
    if dup_rows:
        out = Batch.concat([out, out.take(np.array(dup_rows, dtype=np.int64))])
    return out


@dataclass
class LandingWriter:
    """Buffers batches per stream and writes each delivery day's file once it is complete.

    Files are written by two background threads (Arrow encodes and compresses without the
    GIL) while the caller simulates the next chunk-month; :meth:`close` waits for them.
    At most one flush's files are in flight, so memory stays bounded.
    """

    landing: Path
    calendar: Calendar
    defect_rate: float
    defects: DefectLog = field(default_factory=DefectLog)
    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    files: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _pending: dict[tuple[str, str], list[Batch]] = field(default_factory=lambda: defaultdict(list))
    _pool: ThreadPoolExecutor | None = None
    _in_flight: list[Future[None]] = field(default_factory=list)
    _folders: set[str] = field(default_factory=set)

    def add(
        self, stream: str, batch: Batch, rng: np.random.Generator, *, defects: bool = True
    ) -> None:
        """Queue ``batch`` for writing (with defects injected when enabled)."""
        if len(batch) == 0:
            return
        if defects and CONTRACTS[batch.source].kind == "event":
            batch = inject_defects(batch, self.defect_rate, rng, self.calendar.n_days, self.defects)
        self._pending[(stream, batch.source)].append(batch)

    def flush(self, stream: str, until_day: int | None = None) -> None:
        """Write every queued row of ``stream`` delivered before ``until_day`` (all if None)."""
        self._wait()
        for (s, source), batches in list(self._pending.items()):
            if s != stream or not batches:
                continue
            batch = Batch.concat(batches)
            if until_day is None:
                ready = np.arange(len(batch))
                self._pending[(s, source)] = []
            else:
                is_ready = batch.day < until_day
                ready = np.flatnonzero(is_ready)
                later = np.flatnonzero(~is_ready)
                self._pending[(s, source)] = [batch.take(later)] if len(later) else []
            # one copy: the ready rows, ordered by delivery day
            order = ready[np.argsort(batch.day[ready], kind="stable")]
            self._write_days(stream, batch.take(order))

    def close(self) -> None:
        """Wait for every file in flight (raising the first write error) and stop the threads."""
        try:
            self._wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None

    def _wait(self) -> None:
        in_flight, self._in_flight = self._in_flight, []
        for future in in_flight:
            future.result()

    def _write_days(self, stream: str, batch: Batch) -> None:
        """Write a day-sorted batch: one file per delivery day, in the background."""
        if len(batch) == 0:
            return
        table = encode(batch)
        days, starts = np.unique(batch.day, return_index=True)
        bounds = [*starts.tolist(), len(batch)]
        options = parquet_options(batch.source)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="landing")
        for i, day in enumerate(days.tolist()):
            part = table.slice(bounds[i], bounds[i + 1] - bounds[i])
            folder = self.folder_of(batch.source, day)
            if folder not in self._folders:
                os.makedirs(folder, exist_ok=True)
                self._folders.add(folder)
            path = f"{folder}/part-{stream}.parquet"
            self._in_flight.append(self._pool.submit(_write_file, part, path, options))
        self.rows[batch.source] += table.num_rows
        self.files[batch.source] += len(days)

    def folder_of(self, source: str, day: int) -> str:
        """The folder of delivery day ``day`` of ``source``."""
        return f"{self.landing}/{source}/dt={self.calendar.date_of(day).isoformat()}"

    def path_of(self, source: str, day: int, stream: str) -> Path:
        """Where the file of ``stream`` for delivery day ``day`` goes."""
        return Path(self.folder_of(source, day)) / f"part-{stream}.parquet"

    def pending_rows(self) -> int:
        return sum(len(b) for batches in self._pending.values() for b in batches)


def _write_file(table: pa.Table, path: str, options: dict[str, object]) -> None:
    pq.write_table(table, path, filesystem=_LOCAL_FS, **options)  # type: ignore[arg-type]
