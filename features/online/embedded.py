"""The embedded online store (default): the snapshot folder itself, read in place.

Publishing adds to each snapshot folder an ``online/`` folder of NumPy arrays: per profile
entity the sorted 128-bit id keys (``<entity>.hi.npy`` / ``.lo.npy``), the profile matrix in
key order (``<entity>.values.npy``, float64) and a fence (``<entity>.fence.npy``: every
``FENCE``-th upper key); per pair field the sorted pair keys (``pairs.<field>.*.npy``).
A reader parses only the files' headers and loads the small fences; a lookup bisects the
fence, reads one 4 KiB block of keys and the matching row with ``os.pread``.  The files'
pages live once in the page cache, shared by every worker and replica on the host, and are
never mapped into a worker (memory-mapping them would count every touched 64 KiB of them in
each worker's resident memory).  The live version is the folder's ``CURRENT`` pointer
(:mod:`yidai.core.publishing`), so switching is one atomic rename; a reader keeps its files
open, so a pruned version stays readable until its reader is dropped.

A snapshot folder without ``online/`` (published before the arrays existed) is indexed in
memory from its parquet files when opened (same answers, the old memory cost).
"""

from __future__ import annotations

import os
import re
import sys
import weakref
from bisect import bisect_left
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from features.online.base import (
    OnlineStore,
    PairKey,
    ProfileKey,
    SnapshotReader,
    key_hash,
    pair_text,
    sorted_keys_check,
)
from yidai.core import publishing
from yidai.core.errors import YidaiError

if TYPE_CHECKING:
    import duckdb

# The snapshots' layout (deployed, read by the scoring service): see yidai.core.publishing.
SNAPSHOT_LAYOUT = publishing.Layout(versions="", manifest="meta.json", version_key="snapshot_id")
LOW_64 = "CAST(18446744073709551615 AS UHUGEINT)"
FENCE = 512  # keys per block: 4 KiB of upper keys, one page
ONLINE_DIR = "online"
PAIRS_FILE = "pairs.parquet"


def quiet_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection without a progress bar (no noise in job logs)."""
    # heavy: DuckDB, for building the arrays (publishing); reading them needs none
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    return con


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _sorted_keys(
    con: duckdb.DuckDBPyConnection, key_sql: str, source: str, extra: str = ""
) -> dict[str, np.ndarray]:
    """Upper and lower key halves (and ``extra`` columns) of ``source``, sorted by key."""
    # one MD5 per key: md5_number is the digest as a little-endian 128-bit integer, so its
    # low 64 bits are md5_number_upper (the digest's first 8 bytes) and its high 64 bits
    # md5_number_lower
    rows = con.execute(
        f"SELECT CAST(h & {LOW_64} AS UBIGINT) AS hi, CAST(h >> 64 AS UBIGINT) AS lo{extra} "
        f"FROM (SELECT md5_number({key_sql}) AS h, * FROM {source}) ORDER BY hi, lo"
    ).fetchnumpy()
    if np.ma.is_masked(rows["hi"]):
        raise YidaiError(f"{source}: a row has no id (null); nothing published")
    return {name: np.asarray(col) for name, col in rows.items()}


def build_arrays(folder: Path, meta: dict[str, Any]) -> dict[str, np.ndarray]:
    """The embedded arrays of the snapshot written in ``folder`` (its parquet files)."""
    arrays: dict[str, np.ndarray] = {}
    con = quiet_connection()
    try:
        for entity, cols in meta["profiles"].items():
            source = f"read_parquet('{_sql_path(folder / f'{entity}.parquet')}')"
            extra = "".join(
                f', COALESCE(CAST("{c}" AS DOUBLE), \'NaN\'::DOUBLE) AS "v{i}"'
                for i, c in enumerate(cols)
            )
            got = _sorted_keys(con, "CAST(entity_id AS VARCHAR)", source, extra)
            sorted_keys_check(got["hi"], got["lo"], f"{meta['feature_set']} {entity} ids")
            values = np.empty((len(got["hi"]), len(cols)), dtype=np.float64)
            for i in range(len(cols)):
                values[:, i] = got[f"v{i}"]
            arrays.update(_key_arrays(entity, got["hi"], got["lo"]))
            arrays[f"{entity}.values"] = values
        pairs = folder / PAIRS_FILE
        if pairs.exists():
            for field in _pair_fields(con, pairs):
                if not re.fullmatch(r"[a-z_]+", field):
                    raise YidaiError(f"{pairs}: unexpected pair field {field!r}")
                source = (
                    f"(SELECT DISTINCT CAST(payer_id AS VARCHAR) AS p, CAST(value AS VARCHAR) AS v "
                    f"FROM read_parquet('{_sql_path(pairs)}') WHERE field = '{field}')"
                )
                got = _sorted_keys(con, "p || chr(31) || v", source)
                sorted_keys_check(got["hi"], got["lo"], f"{meta['feature_set']} {field} pairs")
                arrays.update(_key_arrays(f"pairs.{field}", got["hi"], got["lo"]))
    finally:
        con.close()
    return arrays


def _pair_fields(con: duckdb.DuckDBPyConnection, pairs: Path) -> list[str]:
    rows = con.execute(
        f"SELECT DISTINCT field FROM read_parquet('{_sql_path(pairs)}') ORDER BY field"
    ).fetchall()
    return [str(r[0]) for r in rows]


def _key_arrays(name: str, hi: np.ndarray, lo: np.ndarray) -> dict[str, np.ndarray]:
    hi = np.ascontiguousarray(hi, dtype=np.uint64)
    return {
        f"{name}.hi": hi,
        f"{name}.lo": np.ascontiguousarray(lo, dtype=np.uint64),
        f"{name}.fence": hi[::FENCE].copy(),
    }


def write_arrays(folder: Path, meta: dict[str, Any]) -> int:
    """Write the embedded arrays into ``folder/online``; returns their size in bytes."""
    out = folder / ONLINE_DIR
    out.mkdir(exist_ok=True)
    size = 0
    for name, array in build_arrays(folder, meta).items():
        np.save(out / f"{name}.npy", array, allow_pickle=False)
        size += (out / f"{name}.npy").stat().st_size
    return size


class _Column:
    """Rows of one array (``width`` float64/uint64 values each) read as raw little-endian
    bytes: from the array in memory (an old folder), or from its ``.npy`` file with
    ``os.pread`` (the published arrays): no mapping, so the file's pages stay in the page
    cache, shared by every worker, and never count in a worker's resident memory."""

    def __init__(self, array: np.ndarray | None = None, path: Path | None = None) -> None:
        self._fd: int | None = None
        if path is not None:
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                self._offset = f.tell()
            if fortran or dtype.itemsize != 8 or dtype.byteorder == ">":
                raise YidaiError(f"{path}: not a C-ordered little-endian 64-bit array")
            self._fd = os.open(path, os.O_RDONLY)
            weakref.finalize(self, os.close, self._fd)
            self.array = None
        else:
            assert array is not None
            self.array = np.ascontiguousarray(array).view(np.uint8).reshape(-1)
            shape = array.shape
        self.n = int(shape[0])
        self.width = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        self.row_bytes = 8 * self.width

    def read(self, start: int, rows: int) -> bytes:
        """The raw bytes of rows ``start`` to ``start + rows`` (fewer at the end)."""
        rows = max(0, min(rows, self.n - start))
        if self._fd is None:
            assert self.array is not None
            lo = start * self.row_bytes
            return self.array[lo : lo + rows * self.row_bytes].tobytes()
        return os.pread(self._fd, rows * self.row_bytes, self._offset + start * self.row_bytes)


def _u64s(raw: bytes) -> Sequence[int]:
    """Little-endian uint64 values of ``raw`` as a sequence of Python ints."""
    if sys.byteorder == "little":
        return memoryview(raw).cast("Q")
    return list(np.frombuffer(raw, dtype="<u8").tolist())


class _KeyIndex:
    """Sorted 128-bit keys (upper, lower halves), searched through an in-memory fence.

    A lookup bisects the fence (every ``FENCE``-th upper key, in memory), reads one block
    of ``FENCE`` upper keys (4 KiB), bisects it, and reads the lower key(s) of the match.
    """

    def __init__(self, hi: _Column, lo: _Column, fence: np.ndarray) -> None:
        self.n, self.hi, self.lo = hi.n, hi, lo
        self.fence = _u64s(np.ascontiguousarray(fence, dtype="<u8").tobytes())

    def find(self, text: str) -> int:
        """Position of ``text``'s key, or -1."""
        if self.n == 0:
            return -1
        up, low = key_hash(text)
        block = bisect_left(self.fence, up)
        start = max(block - 1, 0) * FENCE
        keys = _u64s(self.hi.read(start, block * FENCE + 1 - start))
        j = bisect_left(keys, up)
        while j < len(keys) and keys[j] == up:
            if _u64s(self.lo.read(start + j, 1))[0] == low:
                return start + j
            j += 1
            if j == len(keys):  # equal upper halves across the block's end (rare)
                keys = _u64s(self.hi.read(start, j + FENCE))
        return -1


class EmbeddedReader(SnapshotReader):
    """A snapshot folder's arrays, read in place (or built in memory for an old folder)."""

    def __init__(self, folder: Path, meta: dict[str, Any]) -> None:
        self.folder = folder
        self.meta = meta
        online = folder / ONLINE_DIR
        self.on_disk = online.is_dir()
        arrays: Any = (
            _FileArrays(online) if self.on_disk else _MemoryArrays(build_arrays(folder, meta))
        )
        self._profiles: dict[str, tuple[_KeyIndex, _Column]] = {}
        for entity, cols in meta["profiles"].items():
            values = arrays.column(f"{entity}.values")
            if values.width != len(cols):
                raise YidaiError(f"{folder}: {entity} values do not match the columns")
            self._profiles[entity] = (self._index(arrays, entity), values)
        self._pairs: dict[str, _KeyIndex] = {}
        for name in arrays.names:
            if name.startswith("pairs.") and name.endswith(".hi"):
                field = name[len("pairs.") : -len(".hi")]
                self._pairs[field] = self._index(arrays, f"pairs.{field}")

    @staticmethod
    def _index(arrays: Any, name: str) -> _KeyIndex:
        return _KeyIndex(
            arrays.column(f"{name}.hi"), arrays.column(f"{name}.lo"), arrays.fence(name)
        )

    def lookup(
        self, profiles: Sequence[ProfileKey], pairs: Sequence[PairKey] = ()
    ) -> tuple[list[np.ndarray | None], list[bool]]:
        vectors: list[np.ndarray | None] = []
        for entity, entity_id in profiles:
            index, values = self._profiles[entity]
            i = -1 if entity_id is None else index.find(str(entity_id))
            vectors.append(None if i < 0 else np.frombuffer(values.read(i, 1), dtype="<f8"))
        seen: list[bool] = []
        for field, payer_id, value in pairs:
            pair_index = self._pairs.get(field)
            seen.append(
                value is not None
                and pair_index is not None
                and pair_index.find(pair_text(payer_id, str(value))) >= 0
            )
        return vectors, seen

    def seen_values(self, payer_ids: Collection[str], field: str) -> dict[str, list[str]]:
        pairs = self.folder / PAIRS_FILE
        wanted = sorted({str(p) for p in payer_ids})
        if not pairs.exists() or not wanted:
            return {}
        con = quiet_connection()
        try:
            rows = con.execute(
                f"SELECT DISTINCT CAST(payer_id AS VARCHAR), CAST(value AS VARCHAR) "
                f"FROM read_parquet('{_sql_path(pairs)}') "
                "WHERE field = ? AND CAST(payer_id AS VARCHAR) IN (SELECT unnest(?)) "
                "ORDER BY 1, 2",
                [field, wanted],
            ).fetchall()
        finally:
            con.close()
        out: dict[str, list[str]] = {}
        for payer, value in rows:
            out.setdefault(payer, []).append(value)
        return out

    def entity_ids(self, entity: str) -> list[str]:
        path = self.folder / f"{entity}.parquet"
        con = quiet_connection()
        try:
            rows = con.execute(
                f"SELECT CAST(entity_id AS VARCHAR) FROM read_parquet('{_sql_path(path)}') "
                "ORDER BY 1"
            ).fetchall()
        finally:
            con.close()
        return [str(r[0]) for r in rows]


class _FileArrays:
    """The ``online/`` folder's arrays: columns read with ``pread``, fences loaded whole."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.names = sorted(p.name[: -len(".npy")] for p in folder.glob("*.npy"))

    def _path(self, name: str) -> Path:
        path = self.folder / f"{name}.npy"
        if not path.exists():
            raise YidaiError(f"the embedded snapshot {self.folder.parent} has no {name}")
        return path

    def column(self, name: str) -> _Column:
        return _Column(path=self._path(name))

    def fence(self, name: str) -> np.ndarray:
        return np.load(self._path(f"{name}.fence"), allow_pickle=False)


class _MemoryArrays:
    """Arrays built in memory (a folder published before the ``online/`` arrays)."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays
        self.names = sorted(arrays)

    def column(self, name: str) -> _Column:
        return _Column(array=self.arrays[name])

    def fence(self, name: str) -> np.ndarray:
        return self.arrays[f"{name}.fence"]


class EmbeddedStore(OnlineStore):
    """The snapshot folders under ``<serving>/features/<set>/`` with their ``CURRENT``
    pointer: publishing (``features.serving``) writes the arrays into the folder and swaps
    the pointer; a reader reads the live folder's arrays in place."""

    kind = "embedded"

    def __init__(self, serving_dir: Path) -> None:
        self.serving_dir = Path(serving_dir)

    def set_dir(self, feature_set: str) -> Path:
        return self.serving_dir / "features" / feature_set

    def write_version(self, folder: Path, meta: dict[str, Any]) -> None:
        meta["embedded_bytes"] = write_arrays(folder, meta)

    def switch(self, feature_set: str, meta: dict[str, Any], keep: int) -> None:
        """The folder pointer is swapped by the publisher (``yidai.core.publishing``)."""

    def current(self, feature_set: str) -> dict[str, Any] | None:
        return publishing.read_pointer(self.set_dir(feature_set), SNAPSHOT_LAYOUT)

    def open(self, meta: dict[str, Any]) -> EmbeddedReader:
        folder = self.set_dir(str(meta["feature_set"])) / str(meta["snapshot_id"])
        if not folder.is_dir():
            raise YidaiError(f"snapshot folder {folder} is missing")
        return EmbeddedReader(folder, meta)
