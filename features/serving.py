"""The online side: snapshots published outside the warehouse, read by the scoring service.

Layout: ``<serving>/features/<feature_set>/<snapshot_id>/{<entity>.parquet, pairs.parquet,
online/*.npy, meta.json}`` plus ``<serving>/features/<feature_set>/CURRENT`` (a small JSON:
the live snapshot's meta), written through the publish store (:mod:`yidai.core.publishing`),
so a reader sees the old snapshot or the new one, never half of one.  Old snapshots are
pruned (the newest ``keep``, never the live one).  The folder is the embedded online store
(``online/``: the arrays the service reads in place) and the source of the Redis store's
bulk load; :func:`load_snapshot` reads the store chosen by ``YIDAI_ONLINE_STORE``
(:mod:`features.online`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from features.declarations import FeatureSet
from features.definitions import get_feature_set
from features.online import OnlineStore, SnapshotReader, open_store
from features.online.embedded import SNAPSHOT_LAYOUT, write_arrays
from features.request import PAIR_FIELDS, request_features
from yidai.core import publishing
from yidai.core.errors import YidaiError

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

__all__ = ["SNAPSHOT_LAYOUT", "FeatureSnapshot", "current_pointer", "load_snapshot",
           "publish_snapshot", "publish_tables"]  # fmt: skip


def _set_dir(serving_dir: Path | str, feature_set: str) -> Path:
    return Path(serving_dir) / "features" / feature_set


def publish_snapshot(
    con_or_warehouse_path: duckdb.DuckDBPyConnection | Path | str,
    serving_dir: Path | str,
    as_of: dt.date,
    feature_sets: Sequence[str] | None = None,
    *,
    keep: int = 3,
    store: OnlineStore | str | None = None,
) -> dict[str, Path]:
    """Publish the profiles built for ``as_of`` (see ``build_features``) as the live snapshot
    of each feature set, into ``store`` (default: the ``online_store`` setting; the snapshot
    folder is always written, it is the embedded store and the source of the Redis load);
    returns the snapshot folder per feature set."""
    # heavy: DuckDB, for publishing only (a scoring worker reads snapshots without it)
    import duckdb

    # deferred: the warehouse side of publishing (DuckDB)
    from features.engine import resolve_feature_sets
    from yidai.core.warehouse import connect

    if keep < 2:
        raise YidaiError("keep at least 2 snapshots (readers may still be opening the previous)")
    if isinstance(con_or_warehouse_path, duckdb.DuckDBPyConnection):
        con, own = con_or_warehouse_path, False
    else:
        con, own = connect(con_or_warehouse_path, read_only=True), True
    try:
        sets = resolve_feature_sets(feature_sets)
        for fs in sets:  # every set is checked before any is published
            _check_build(con, fs, as_of)
        online = store if isinstance(store, OnlineStore) else open_store(store, serving_dir)
        return {
            fs.name: _publish_one(con, fs, Path(serving_dir), as_of, keep, online) for fs in sets
        }
    finally:
        if own:
            con.close()


def _check_build(con: duckdb.DuckDBPyConnection, fs: FeatureSet, as_of: dt.date) -> None:
    """Refuse a set whose profiles of ``as_of`` are not built, built from another
    definition, or empty (an empty snapshot would serve every entity as unknown)."""
    # heavy: DuckDB, for publishing only
    import duckdb

    # deferred: the warehouse side of publishing (DuckDB)
    from features.engine import SCHEMA, fetch_one

    for entity in fs.profile_entities:
        try:
            row = fetch_one(
                con,
                f"SELECT fingerprint, n_rows FROM {SCHEMA}.builds WHERE feature_set = ? "
                "AND entity = ? AND as_of = ? AND complete",
                [fs.name, entity, as_of],
            )
        except duckdb.CatalogException:
            row = None
        if row is None:
            raise YidaiError(
                f"{fs.name} ({entity}) has no complete build as of {as_of}; run "
                f"`yidai features build --as-of {as_of}` first"
            )
        if row[0] != fs.fingerprint:
            raise YidaiError(f"{fs.name} as of {as_of} was built from another definition")
        if not row[1]:
            raise YidaiError(
                f"{fs.name} ({entity}) was built as of {as_of} with no rows; nothing published"
            )


def _publish_one(
    con: duckdb.DuckDBPyConnection,
    fs: FeatureSet,
    serving_dir: Path,
    as_of: dt.date,
    keep: int,
    store: OnlineStore,
) -> Path:
    # deferred: the warehouse side of publishing (DuckDB)
    from features.engine import profile_table
    from features.sources import FRAUD_EVENTS_SQL

    def write_tables(tmp: Path) -> None:
        for entity in fs.profile_entities:
            cols = ", ".join(f'"{c}"' for c in fs.profile_columns(entity))
            path = tmp / f"{entity}.parquet"
            con.execute(
                f"COPY (SELECT entity_id, {cols} FROM {profile_table(fs, entity)} "
                f"WHERE as_of = ? ORDER BY entity_id) TO '{path}' (FORMAT parquet)",
                [as_of],
            )
        if fs.entity == "payer":
            union = " UNION ALL ".join(
                f"SELECT DISTINCT payer_id, '{f}' AS field, CAST({f} AS VARCHAR) AS value "
                f"FROM ({FRAUD_EVENTS_SQL}) WHERE {f} IS NOT NULL AND ts < ?"
                for f in PAIR_FIELDS
            )
            cutoff = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time())
            con.execute(
                f"COPY ({union}) TO '{tmp / 'pairs.parquet'}' (FORMAT parquet)",
                [cutoff] * len(PAIR_FIELDS),
            )

    return publish_tables(serving_dir, fs, as_of, write_tables, keep=keep, store=store)


def publish_tables(
    serving_dir: Path | str,
    fs: FeatureSet,
    as_of: dt.date,
    write_tables: Callable[[Path], None],
    *,
    keep: int = 3,
    store: OnlineStore | str | None = None,
) -> Path:
    """Publish one snapshot version whose tables ``write_tables(folder)`` writes
    (``<entity>.parquet`` per profile entity: ``entity_id`` and the profile columns; for
    the payment set ``pairs.parquet``: payer_id, field, value), with its embedded arrays;
    load it into the online store (Redis) if that is not the embedded one; then make it live
    (the folder pointer, and the store's pointer) and prune old versions."""
    if keep < 2:
        raise YidaiError("keep at least 2 snapshots (readers may still be opening the previous)")
    online = store if isinstance(store, OnlineStore) else open_store(store, serving_dir)
    set_dir = _set_dir(serving_dir, fs.name)
    snapshot_id = f"{as_of.isoformat()}_{dt.datetime.now():%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:6]}"
    meta: dict[str, Any] = {
        "feature_set": fs.name,
        "version": fs.version,
        "fingerprint": fs.fingerprint,
        "as_of": as_of.isoformat(),
        "columns": fs.columns,
        "profiles": {e: fs.profile_columns(e) for e in fs.profile_entities},
        "snapshot_id": snapshot_id,
    }

    def fill(tmp: Path) -> None:
        # heavy: pyarrow, for publishing only
        import pyarrow.parquet as pq

        write_tables(tmp)
        meta["rows"] = {
            e: int(pq.ParquetFile(tmp / f"{e}.parquet").metadata.num_rows)
            for e in fs.profile_entities
        }
        meta["embedded_bytes"] = write_arrays(tmp, meta)
        meta["published_at"] = dt.datetime.now().isoformat(timespec="seconds")

    target = publishing.write_version(set_dir, snapshot_id, meta, fill, SNAPSHOT_LAYOUT)
    if online.kind != "embedded":
        online.write_version(target, meta)
    publishing.publish(set_dir, snapshot_id, meta, SNAPSHOT_LAYOUT)
    online.switch(fs.name, meta, keep)
    publishing.prune(set_dir, keep, SNAPSHOT_LAYOUT)
    return target


def current_pointer(serving_dir: Path | str, feature_set: str) -> dict[str, Any] | None:
    """The live snapshot's metadata (cheap: one small file), or None if nothing is published."""
    return publishing.read_pointer(_set_dir(serving_dir, feature_set), SNAPSHOT_LAYOUT)


@dataclass
class FeatureSnapshot:
    """One published snapshot version, read through an online store's reader (pinned to
    that version: every read of a decision sees one version)."""

    feature_set: str
    version: int
    fingerprint: str
    as_of: dt.date
    columns: list[str]
    snapshot_id: str
    entity: str
    reader: SnapshotReader
    folder: Path | None = None
    profile_cols: dict[str, list[str]] = field(default_factory=dict)

    def get(self, entity_id: str, entity: str | None = None) -> np.ndarray | None:
        """The profile vector of ``entity_id`` as of the snapshot's close, in
        ``profile_columns(entity)`` order; None if the entity had no profile row."""
        return self.reader.profile(entity or self.entity, entity_id)

    def profile_columns(self, entity: str | None = None) -> list[str]:
        return self.profile_cols[entity or self.entity]

    def entity_ids(self, entity: str | None = None) -> list[str]:
        """Every id with a profile (sorted)."""
        return self.reader.entity_ids(entity or self.entity)

    @property
    def frame(self) -> pd.DataFrame:
        """The main entity's profiles as a DataFrame indexed by entity_id (read from the
        snapshot folder's parquet file: batch readers only)."""
        if self.folder is None or not (self.folder / f"{self.entity}.parquet").exists():
            raise YidaiError(f"snapshot {self.snapshot_id}: no snapshot folder to read here")
        cols = self.profile_columns()
        # heavy: pandas, for analysts' and tests' whole-snapshot reads only
        import pandas as pd

        df = pd.read_parquet(self.folder / f"{self.entity}.parquet")
        index = pd.Index(df["entity_id"].astype(str), name="entity_id")
        return pd.DataFrame(df[cols].to_numpy(np.float64), index=index, columns=cols)

    def seen_before(self, payer_id: str, field_name: str, value: str | None) -> bool:
        """Whether the payer used this counterpart/device/channel before the snapshot's end."""
        return self.reader.lookup([], [(field_name, str(payer_id), value)])[1][0]

    def seen_values(self, payer_ids: Collection[str], field_name: str) -> dict[str, list[str]]:
        """The counterparts/devices/channels each payer used before the snapshot's end,
        sorted (payers with none are left out)."""
        return self.reader.seen_values(payer_ids, field_name)

    def vector(self, request: Mapping[str, Any], entity_id: str | None = None) -> np.ndarray:
        """The full online feature vector of one request (see :meth:`vector_and_profile`)."""
        return self.vector_and_profile(request, entity_id)[0]

    def vector_and_profile(
        self, request: Mapping[str, Any], entity_id: str | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The full online feature vector of one request (same order as training), and the
        main entity's profile vector (None: not in the snapshot) from the same read.

        Credit sets: ``{"entity_id": ..., "requested_amount": ...}``.  ``payment_fraud_v1``:
        the event's fields (``payer_id`` = card token for POS / account holder for payments,
        ``event_type`` 'pos'|'payment', ``ts``, ``amount``, ``counterpart_id`` = terminal or
        payee, ``merchant_id``, ``mcc``, ``entry_mode``, ``channel``, ``device_id``,
        ``payment_type``) plus ``recent``: the payer's events of the last 24 hours before
        ``ts`` (dicts with ts, amount, counterpart_id, device_id, channel).  The payment
        set's profiles and pairs are one read of the store (one round trip for Redis).
        """
        fs = get_feature_set(self.feature_set)
        if fs.entity == "payer":
            payer = str(request.get("payer_id"))

            def text(name: str) -> str | None:
                value = request.get(name)
                return None if value is None else str(value)

            vectors, seen = self.reader.lookup(
                [("payer", payer), ("counterpart", text("counterpart_id")),
                 ("merchant", text("merchant_id"))],
                [(f, payer, text(f)) for f in PAIR_FIELDS],
            )  # fmt: skip
            profiles = dict(zip(("payer", "counterpart", "merchant"), vectors, strict=True))
            full = dict(request)
            full["seen_before_today"] = dict(zip(PAIR_FIELDS, seen, strict=True))
            return request_features(fs, profiles, full), profiles["payer"]
        key = entity_id if entity_id is not None else request.get("entity_id")
        if key is None:
            raise YidaiError(f"{self.feature_set}: the request names no entity_id")
        profile = self.get(str(key))
        return request_features(fs, profile, request), profile


def load_snapshot(
    serving_dir: Path | str, feature_set: str, store: OnlineStore | str | None = None
) -> FeatureSnapshot:
    """The live snapshot of ``feature_set`` in ``store`` (default: the ``online_store``
    setting; embedded: under ``serving_dir``); refuses one whose definition differs from the
    code's (fingerprint) with a clear error."""
    fs = get_feature_set(feature_set)
    online = store if isinstance(store, OnlineStore) else open_store(store, serving_dir)
    meta = online.current(feature_set)
    if meta is None:
        where = serving_dir if online.kind == "embedded" else online.kind
        raise YidaiError(f"no published snapshot of {feature_set} under {where}")
    if meta["fingerprint"] != fs.fingerprint:
        raise YidaiError(
            f"snapshot {meta['snapshot_id']} of {feature_set} has fingerprint "
            f"{meta['fingerprint']}, the code declares {fs.fingerprint}: republish it"
        )
    reader = online.open(meta)
    profiles = {e: list(c) for e, c in meta["profiles"].items()}
    return FeatureSnapshot(
        feature_set=feature_set,
        version=int(meta["version"]),
        fingerprint=meta["fingerprint"],
        as_of=dt.date.fromisoformat(meta["as_of"]),
        columns=list(meta["columns"]),
        snapshot_id=meta["snapshot_id"],
        entity=fs.entity if fs.entity in profiles else next(iter(profiles)),
        reader=reader,
        folder=_set_dir(serving_dir, feature_set) / meta["snapshot_id"],
        profile_cols=profiles,
    )
