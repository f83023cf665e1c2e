"""The Redis online store: snapshot versions under versioned keys, a pointer key per set.

Keys of one version (``tag``: 12 hex digits of the feature set and snapshot id):

* ``y:<tag>:meta``: the version's metadata (JSON), written last (a half-loaded version has
  none and is never opened);
* ``y:<tag>:<e>:<id>``: entity ``e``'s profile (``e`` its position in ``meta['profiles']``),
  the float64 vector as 8-byte little-endian values;
* ``y:<tag>:s:<payer>``: a hash with one field per pair the payer used before the snapshot's
  end, ``<f><value>`` (``f`` the pair field's position in ``PAIR_FIELDS``), empty values
  (small hashes are listpack-encoded: a few bytes per pair).

``yidai:fs:<set>:current`` holds the live version's metadata (one ``SET``: the switch is
atomic) and ``yidai:fs:<set>:versions`` the versions by publish time; versions beyond the
newest ``keep`` get an expiry (``retire_seconds``: readers still on them finish first).
A decision's reads are one pipelined round trip that also checks the version's ``meta``
key, so a reader of an expired version fails loudly instead of reading empty profiles.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

from features.online.base import (
    OnlineStore,
    OnlineStoreUnavailable,
    PairKey,
    ProfileKey,
    SnapshotReader,
)
from features.online.embedded import PAIRS_FILE, _sql_path, quiet_connection
from features.request import PAIR_FIELDS as PAIR_FIELD_ORDER
from yidai.core.errors import YidaiError

if TYPE_CHECKING:
    import duckdb

BATCH = 2_000  # commands per pipeline while loading


def redacted(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def version_tag(feature_set: str, snapshot_id: str) -> str:
    return hashlib.sha1(f"{feature_set}/{snapshot_id}".encode(), usedforsecurity=False).hexdigest()[
        :12
    ]


class RedisStore(OnlineStore):
    """Snapshots in one Redis (a primary with replicas, or a managed Redis)."""

    kind = "redis"

    def __init__(self, url: str, *, timeout_seconds: float = 0.5, retire_seconds: int = 600):
        # heavy: the redis client (extra `serve`), only when a Redis store is configured
        import redis

        self.url = url
        self.where = redacted(url)
        self.retire_seconds = retire_seconds
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            health_check_interval=30,
        )
        self._errors: tuple[type[BaseException], ...] = (
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
            redis.exceptions.BusyLoadingError,
            OSError,
        )

    def unavailable(self, exc: BaseException) -> OnlineStoreUnavailable:
        return OnlineStoreUnavailable(
            f"online store {self.where} unreachable: {type(exc).__name__}: {exc}"
        )

    # ------------------------------------------------------------------ publishing
    def write_version(self, folder: Path, meta: dict[str, Any]) -> None:
        """Bulk-load the version from the snapshot folder's parquet files (the offline
        tables' export), pipelined; ``meta`` (with its ``redis_tag``) is written last."""
        tag = version_tag(meta["feature_set"], meta["snapshot_id"])
        meta["redis_tag"] = tag
        fs = meta["feature_set"]
        try:
            self.client.zadd(f"yidai:fs:{fs}:versions", {tag: time.time()})
            con = quiet_connection()
            try:
                for e, (entity, cols) in enumerate(meta["profiles"].items()):
                    self._load_profiles(con, folder / f"{entity}.parquet", f"y:{tag}:{e}:", cols)
                if (folder / PAIRS_FILE).exists():
                    self._load_pairs(con, folder / PAIRS_FILE, f"y:{tag}:s:")
            finally:
                con.close()
            self.client.set(f"y:{tag}:meta", json.dumps(meta))
        except self._errors as exc:
            raise self.unavailable(exc) from exc

    def _batches(self, con: duckdb.DuckDBPyConnection, sql: str) -> Iterator[dict[str, Any]]:
        reader: Any = con.sql(sql).to_arrow_reader(50_000)
        for batch in reader:
            yield {name: batch.column(name) for name in batch.schema.names}

    def _load_profiles(
        self, con: duckdb.DuckDBPyConnection, path: Path, prefix: str, cols: list[str]
    ) -> None:
        values_sql = ", ".join(
            f'COALESCE(CAST("{c}" AS DOUBLE), \'NaN\'::DOUBLE) AS "v{i}"'
            for i, c in enumerate(cols)
        )
        sql = (
            f"SELECT CAST(entity_id AS VARCHAR) AS id, {values_sql} "
            f"FROM read_parquet('{_sql_path(path)}')"
        )
        for batch in self._batches(con, sql):
            ids = batch["id"].to_pylist()
            matrix = np.column_stack(
                [batch[f"v{i}"].to_numpy(zero_copy_only=False) for i in range(len(cols))]
            ).astype("<f8")
            pipe = self.client.pipeline(transaction=False)
            for i, entity_id in enumerate(ids):
                pipe.set(prefix + entity_id, matrix[i].tobytes())
                if (i + 1) % BATCH == 0:
                    pipe.execute()
            pipe.execute()

    def _load_pairs(self, con: duckdb.DuckDBPyConnection, path: Path, prefix: str) -> None:
        codes = " ".join(f"WHEN '{f}' THEN '{i}'" for i, f in enumerate(PAIR_FIELD_ORDER))
        sql = (
            f"SELECT payer, list(DISTINCT code || value) AS fields FROM ("
            f"SELECT CAST(payer_id AS VARCHAR) AS payer, CAST(value AS VARCHAR) AS value, "
            f"CASE field {codes} END AS code FROM read_parquet('{_sql_path(path)}')) "
            "WHERE code IS NOT NULL GROUP BY payer"
        )
        for batch in self._batches(con, sql):
            pipe = self.client.pipeline(transaction=False)
            for i, (payer, fields) in enumerate(
                zip(batch["payer"].to_pylist(), batch["fields"].to_pylist(), strict=True)
            ):
                flat: list[str] = []
                for f in fields:
                    flat += [f, ""]
                pipe.execute_command("HSET", prefix + payer, *flat)
                if (i + 1) % BATCH == 0:
                    pipe.execute()
            pipe.execute()

    def switch(self, feature_set: str, meta: dict[str, Any], keep: int) -> None:
        """Point the set at ``meta``'s version (one SET) and retire the older versions."""
        try:
            if not self.client.exists(f"y:{meta['redis_tag']}:meta"):
                raise YidaiError(f"version {meta['snapshot_id']} is not loaded in {self.where}")
            self.client.set(f"yidai:fs:{feature_set}:current", json.dumps(meta))
            self.retire(feature_set, keep, live=str(meta["redis_tag"]))
        except self._errors as exc:
            raise self.unavailable(exc) from exc

    def retire(self, feature_set: str, keep: int, live: str) -> list[str]:
        """Give the versions beyond the newest ``keep`` (never the live one) an expiry."""
        index = f"yidai:fs:{feature_set}:versions"
        raw: Any = self.client.zrange(index, 0, -1)
        tags = [bytes(t).decode() for t in raw]  # oldest first
        old = [t for t in tags[: max(len(tags) - keep, 0)] if t != live]
        for tag in old:
            pipe = self.client.pipeline(transaction=False)
            for n, key in enumerate(self.client.scan_iter(match=f"y:{tag}:*", count=5_000)):
                pipe.expire(key, self.retire_seconds)
                if (n + 1) % BATCH == 0:
                    pipe.execute()
            pipe.execute()
            self.client.zrem(index, tag)
        return old

    # ------------------------------------------------------------------ reading
    def current(self, feature_set: str) -> dict[str, Any] | None:
        try:
            raw = self.client.get(f"yidai:fs:{feature_set}:current")
        except self._errors as exc:
            raise self.unavailable(exc) from exc
        return None if raw is None else dict(json.loads(raw))

    def open(self, meta: dict[str, Any]) -> RedisReader:
        reader = RedisReader(self, meta)
        reader.check()
        return reader


class RedisReader(SnapshotReader):
    """One version in Redis; each :meth:`lookup` is one pipelined round trip."""

    def __init__(self, store: RedisStore, meta: dict[str, Any]) -> None:
        if "redis_tag" not in meta:
            raise YidaiError(f"snapshot {meta.get('snapshot_id')} was not published to Redis")
        self.store = store
        self.meta = meta
        self.tag = str(meta["redis_tag"])
        self._entity = {e: i for i, e in enumerate(meta["profiles"])}
        self._width = {e: len(c) for e, c in meta["profiles"].items()}
        self._field = {f: str(i) for i, f in enumerate(PAIR_FIELD_ORDER)}

    def _gone(self) -> OnlineStoreUnavailable:
        return OnlineStoreUnavailable(
            f"snapshot {self.snapshot_id} is no longer in {self.store.where} (expired)"
        )

    def check(self) -> None:
        try:
            present = self.store.client.exists(f"y:{self.tag}:meta")
        except self.store._errors as exc:
            raise self.store.unavailable(exc) from exc
        if not present:
            raise self._gone()

    def lookup(
        self, profiles: Sequence[ProfileKey], pairs: Sequence[PairKey] = ()
    ) -> tuple[list[np.ndarray | None], list[bool]]:
        pipe = self.store.client.pipeline(transaction=False)
        asked: list[int] = []
        for n, (entity, entity_id) in enumerate(profiles):
            if entity_id is not None:
                pipe.get(f"y:{self.tag}:{self._entity[entity]}:{entity_id}")
                asked.append(n)
        asked_pairs: list[int] = []
        for n, (field, payer_id, value) in enumerate(pairs):
            if value is not None and field in self._field:
                pipe.hexists(f"y:{self.tag}:s:{payer_id}", self._field[field] + str(value))
                asked_pairs.append(n)
        pipe.exists(f"y:{self.tag}:meta")
        try:
            answers = pipe.execute()
        except self.store._errors as exc:
            raise self.store.unavailable(exc) from exc
        if not answers[-1]:
            raise self._gone()
        vectors: list[np.ndarray | None] = [None] * len(profiles)
        for n, raw in zip(asked, answers, strict=False):
            if raw is not None:
                vec = np.frombuffer(raw, dtype="<f8").astype(np.float64)
                if vec.shape != (self._width[profiles[n][0]],):
                    raise YidaiError(f"snapshot {self.snapshot_id}: a malformed profile value")
                vectors[n] = vec
        seen = [False] * len(pairs)
        for n, hit in zip(asked_pairs, answers[len(asked) : -1], strict=True):
            seen[n] = bool(hit)
        return vectors, seen

    def seen_values(self, payer_ids: Collection[str], field: str) -> dict[str, list[str]]:
        code = self._field[field]
        payers = sorted({str(p) for p in payer_ids})
        pipe = self.store.client.pipeline(transaction=False)
        for payer in payers:
            pipe.hkeys(f"y:{self.tag}:s:{payer}")
        try:
            answers = pipe.execute()
        except self.store._errors as exc:
            raise self.store.unavailable(exc) from exc
        out: dict[str, list[str]] = {}
        for payer, keys in zip(payers, answers, strict=True):
            values = sorted(k.decode()[1:] for k in keys if k.decode().startswith(code))
            if values:
                out[payer] = values
        return out

    def entity_ids(self, entity: str) -> list[str]:
        prefix = f"y:{self.tag}:{self._entity[entity]}:"
        try:
            keys = self.store.client.scan_iter(match=prefix + "*", count=5_000)
            return sorted(bytes(k).decode()[len(prefix) :] for k in keys)
        except self.store._errors as exc:
            raise self.store.unavailable(exc) from exc
