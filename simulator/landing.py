"""Row batches, their encoding into contract-typed Arrow tables, and the landing-zone writer.

Generators build :class:`Batch` objects of plain numpy columns (ids as integer codes,
categories as indices into the contract's allowed values, timestamps as epoch microseconds),
plus the delivery day of every row.  :class:`LandingWriter` injects data-quality defects,
holds rows until their delivery day's month is complete, and writes
``<landing>/<source>/dt=YYYY-MM-DD/part-<stream>.parquet`` with the exact contract schema.
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from simulator.calendar import Calendar
from yidai.contracts import CONTRACTS, Contract

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
DEFECT_KINDS = ("duplicate", "null", "negative_amount", "unknown_id", "late_arrival")


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


def format_ids(codes: np.ndarray, prefix: str, width: int) -> pa.Array:
    """Ids ``<prefix><code zero-padded to width digits>`` as an Arrow string array.

    Fast path: Arrow casts ``10**width + code`` to text (all the same length), then numpy
    swaps the leading ``1`` for the prefix in one fixed-width copy.
    """
    codes = np.asarray(codes, dtype=np.int64)
    n = len(codes)
    if n and (codes.min() < 0 or codes.max() >= 10**width):
        raise ValueError(f"id codes out of range for {width} digits (prefix {prefix!r})")
    text = pa.array(codes + 10**width, pa.int64()).cast(pa.string())
    digits = np.frombuffer(text.buffers()[2], np.uint8, count=n * (width + 1)).reshape(n, width + 1)
    head = np.frombuffer(prefix.encode(), np.uint8)
    size = len(head) + width
    data = np.empty((n, size), np.uint8)
    data[:, : len(head)] = head
    data[:, len(head) :] = digits[:, 1:]
    offsets = np.arange(0, (n + 1) * size, size, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def _vocab(contract: Contract, name: str) -> tuple[str, ...]:
    allowed = contract.column(name).allowed
    if allowed is not None:
        return allowed
    return LOCAL_VOCAB[name]


def encode_column(contract: Contract, name: str, batch: Batch) -> pa.Array:
    """The contract-typed Arrow array of one column of ``batch``."""
    col = contract.column(name)
    values = batch.cols[name]
    if col.dtype == "VARCHAR":
        if name == "card_token":
            arr = format_ids(card_tokens(values), "tk", TOKEN_WIDTH)
        elif name in ID_FORMATS:
            arr = format_ids(values, *ID_FORMATS[name])
        elif name in POLY_IDS:
            kind_col, formats = POLY_IDS[name]
            kinds = _vocab(contract, kind_col)
            kind_codes = batch.cols[kind_col]
            arr = pa.nulls(len(values), pa.string())
            for i, kind in enumerate(kinds):
                if kind in formats:
                    formatted = format_ids(values, *ID_FORMATS[formats[kind]])
                    arr = pc.if_else(pa.array(kind_codes == i), formatted, arr)
        else:
            vocab = pa.array(list(_vocab(contract, name)), pa.string())
            arr = vocab.take(pa.array(values, pa.int32()))
    elif col.dtype == "TIMESTAMP":
        arr = pa.array(values.astype(np.int64), pa.int64()).cast(pa.timestamp("us"))
    elif col.dtype == "DATE":
        arr = pa.array(values.astype(np.int32), pa.int32()).cast(pa.date32())
    else:
        arr = pa.array(values, ARROW_TYPES[col.dtype])
    mask = batch.nulls.get(name)
    if mask is not None and mask.any():
        arr = pc.if_else(pa.array(mask), pa.scalar(None, arr.type), arr)
    return arr


def encode(batch: Batch) -> pa.Table:
    """The contract-typed Arrow table of a batch."""
    contract = CONTRACTS[batch.source]
    schema = arrow_schema(contract)
    arrays = [encode_column(contract, name, batch) for name in contract.column_names]
    return pa.Table.from_arrays(arrays, schema=schema)


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
    return pc.binary_join_element_wise(*parts, "|")


@dataclass
class DefectLog:
    """Which rows got which defect (written to ``<truth>/defects.parquet``)."""

    tables: list[pa.Table] = field(default_factory=list)

    def record(self, batch: Batch, kinds: list[str], columns: list[str]) -> None:
        if len(batch) == 0:
            return
        self.tables.append(
            pa.table(
                {
                    "source": pa.array([batch.source] * len(batch), pa.string()),
                    "key": key_strings(batch),
                    "defect": pa.array(kinds, pa.string()),
                    "column": pa.array(columns, pa.string()),
                    "delivered_day": pa.array(batch.day, pa.int64()),
                }
            )
        )

    def record_file(self, source: str, relative_path: str, day: int) -> None:
        self.tables.append(
            pa.table(
                {
                    "source": [source],
                    "key": [relative_path],
                    "defect": ["malformed_file"],
                    "column": pa.array([None], pa.string()),
                    "delivered_day": pa.array([day], pa.int64()),
                }
            )
        )


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
    cols = {k: v.copy() for k, v in batch.cols.items()}
    nulls = {k: v.copy() for k, v in batch.nulls.items()}
    day = batch.day.copy()
    rec_rows: list[int] = []
    rec_kinds: list[str] = []
    rec_cols: list[str] = []
    dup_rows: list[int] = []
    for row, kind_i in zip(picked.tolist(), chosen.tolist(), strict=True):
        kind = kinds[kind_i]
        column = ""
        if kind == "duplicate":
            dup_rows.append(row)
        elif kind == "null":
            column = nullable_targets[int(rng.integers(0, len(nullable_targets)))]
            nulls.setdefault(column, np.zeros(n, dtype=bool))[row] = True
        elif kind == "negative_amount":
            column = amount_cols[int(rng.integers(0, len(amount_cols)))]
            cols[column][row] = -max(abs(float(cols[column][row])), 1.0)
        elif kind == "unknown_id":
            column = ref_cols[int(rng.integers(0, len(ref_cols)))]
            cols[column][row] = UNKNOWN_ID_BASE + int(rng.integers(0, 9_000_000))
        else:
            shift = int(rng.integers(1, 4))
            if day[row] + shift >= n_days:
                continue
            day[row] += shift
        rec_rows.append(row)
        rec_kinds.append(kind)
        rec_cols.append(column or None)  # type: ignore[arg-type]
    out = Batch(batch.source, cols, day, nulls)
    if rec_rows:
        log.record(out.take(np.array(rec_rows, dtype=np.int64)), rec_kinds, rec_cols)
    if dup_rows:
        out = Batch.concat([out, out.take(np.array(dup_rows, dtype=np.int64))])
    return out


@dataclass
class LandingWriter:
    """Buffers batches per stream and writes each delivery day's file once it is complete."""

    landing: Path
    calendar: Calendar
    defect_rate: float
    defects: DefectLog = field(default_factory=DefectLog)
    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    files: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _pending: dict[tuple[str, str], list[Batch]] = field(default_factory=lambda: defaultdict(list))

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
        for (s, source), batches in list(self._pending.items()):
            if s != stream or not batches:
                continue
            batch = Batch.concat(batches)
            if until_day is None:
                now, later = batch, None
            else:
                ready = batch.day < until_day
                now = batch.take(np.flatnonzero(ready))
                later = batch.take(np.flatnonzero(~ready)) if not ready.all() else None
            self._pending[(s, source)] = [later] if later is not None and len(later) else []
            self._write_days(stream, now)

    def _write_days(self, stream: str, batch: Batch) -> None:
        if len(batch) == 0:
            return
        order = np.argsort(batch.day, kind="stable")
        batch = batch.take(order)
        table = encode(batch)
        days, starts = np.unique(batch.day, return_index=True)
        bounds = [*starts.tolist(), len(batch)]
        parts = [
            (
                table.slice(bounds[i], bounds[i + 1] - bounds[i]),
                self.path_of(batch.source, d, stream),
            )
            for i, d in enumerate(days.tolist())
        ]

        def write(item: tuple[pa.Table, Path]) -> None:
            part, path = item
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(part, str(path), compression="snappy", filesystem=_LOCAL_FS)

        # Arrow encodes and compresses without the GIL: two writer threads use both cores.
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(write, parts))
        self.rows[batch.source] += table.num_rows
        self.files[batch.source] += len(parts)

    def path_of(self, source: str, day: int, stream: str) -> Path:
        """Where the file of ``stream`` for delivery day ``day`` goes."""
        dt = self.calendar.date_of(day).isoformat()
        return self.landing / source / f"dt={dt}" / f"part-{stream}.parquet"

    def pending_rows(self) -> int:
        return sum(len(b) for batches in self._pending.values() for b in batches)
