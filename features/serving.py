"""The online side: snapshots published outside the warehouse, read by the scoring service.

Layout: ``<serving>/features/<feature_set>/<snapshot_id>/{<entity>.parquet, pairs.parquet,
meta.json}`` plus ``<serving>/features/<feature_set>/CURRENT`` (a small JSON: the live
snapshot's meta), written through the publish store (:mod:`yidai.core.publishing`), so a reader
sees the old snapshot or the new one, never half of one.  Old snapshots are pruned (the newest
``keep``, never the live one).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from features.declarations import FeatureSet
from features.definitions import get_feature_set
from features.engine import SCHEMA, fetch_one, profile_table, resolve_feature_sets
from features.request import PAIR_FIELDS, request_features
from features.sources import FRAUD_EVENTS_SQL
from yidai.core import publishing
from yidai.core.errors import YidaiError
from yidai.core.warehouse import connect

# The snapshots' layout (deployed, read by the scoring service): see yidai.core.publishing.
SNAPSHOT_LAYOUT = publishing.Layout(versions="", manifest="meta.json", version_key="snapshot_id")


def _set_dir(serving_dir: Path | str, feature_set: str) -> Path:
    return Path(serving_dir) / "features" / feature_set


def publish_snapshot(
    con_or_warehouse_path: duckdb.DuckDBPyConnection | Path | str,
    serving_dir: Path | str,
    as_of: dt.date,
    feature_sets: Sequence[str] | None = None,
    *,
    keep: int = 3,
) -> dict[str, Path]:
    """Publish the profiles built for ``as_of`` (see ``build_features``) as the live snapshot
    of each feature set; returns the snapshot folder per feature set."""
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
        return {fs.name: _publish_one(con, fs, Path(serving_dir), as_of, keep) for fs in sets}
    finally:
        if own:
            con.close()


def _check_build(con: duckdb.DuckDBPyConnection, fs: FeatureSet, as_of: dt.date) -> None:
    """Refuse a set whose profiles of ``as_of`` are not built, built from another
    definition, or empty (an empty snapshot would serve every entity as unknown)."""
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
    con: duckdb.DuckDBPyConnection, fs: FeatureSet, serving_dir: Path, as_of: dt.date, keep: int
) -> Path:
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
        rows: dict[str, int] = {}
        for entity in fs.profile_entities:
            cols = ", ".join(f'"{c}"' for c in fs.profile_columns(entity))
            path = tmp / f"{entity}.parquet"
            con.execute(
                f"COPY (SELECT entity_id, {cols} FROM {profile_table(fs, entity)} "
                f"WHERE as_of = ? ORDER BY entity_id) TO '{path}' (FORMAT parquet)",
                [as_of],
            )
            rows[entity] = int(pd.read_parquet(path, columns=["entity_id"]).shape[0])
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
        meta["rows"] = rows
        meta["published_at"] = dt.datetime.now().isoformat(timespec="seconds")

    target = publishing.write_version(set_dir, snapshot_id, meta, fill, SNAPSHOT_LAYOUT)
    publishing.publish(set_dir, snapshot_id, meta, SNAPSHOT_LAYOUT)
    publishing.prune(set_dir, keep, SNAPSHOT_LAYOUT)
    return target


def current_pointer(serving_dir: Path | str, feature_set: str) -> dict[str, Any] | None:
    """The live snapshot's metadata (cheap: one small file), or None if nothing is published."""
    return publishing.read_pointer(_set_dir(serving_dir, feature_set), SNAPSHOT_LAYOUT)


@dataclass
class _Profile:
    columns: list[str]
    index: dict[str, int]
    matrix: np.ndarray

    def get(self, key: str | None) -> np.ndarray | None:
        i = self.index.get(key) if key is not None else None
        return None if i is None else self.matrix[i]


@dataclass
class FeatureSnapshot:
    """One published snapshot, loaded once; ``get`` is a dict lookup (microseconds)."""

    feature_set: str
    version: int
    fingerprint: str
    as_of: dt.date
    columns: list[str]
    snapshot_id: str
    entity: str
    profiles: dict[str, _Profile]
    pairs: dict[str, set[str]] = field(default_factory=dict)

    def get(self, entity_id: str, entity: str | None = None) -> np.ndarray | None:
        """The profile vector (read-only) of ``entity_id`` as of the snapshot's close, in
        ``profile_columns(entity)`` order; None if the entity had no profile row."""
        return self.profiles[entity or self.entity].get(entity_id)

    def profile_columns(self, entity: str | None = None) -> list[str]:
        return self.profiles[entity or self.entity].columns

    @property
    def frame(self) -> pd.DataFrame:
        """The main entity's profiles as a DataFrame indexed by entity_id."""
        prof = self.profiles[self.entity]
        ids = sorted(prof.index, key=prof.index.__getitem__)
        return pd.DataFrame(
            prof.matrix, index=pd.Index(ids, name="entity_id"), columns=prof.columns
        )

    def seen_before(self, payer_id: str, field_name: str, value: str | None) -> bool:
        """Whether the payer used this counterpart/device/channel before the snapshot's end."""
        if value is None:
            return False
        return f"{payer_id}\x1f{value}" in self.pairs.get(field_name, set())

    def seen_values(self, payer_ids: Collection[str], field_name: str) -> dict[str, list[str]]:
        """The counterparts/devices/channels each payer used before the snapshot's end,
        sorted (one pass over the pairs; payers with none are left out)."""
        wanted = set(payer_ids)
        out: dict[str, list[str]] = {}
        for pair in self.pairs.get(field_name, set()):
            payer, value = pair.split("\x1f", 1)
            if payer in wanted:
                out.setdefault(payer, []).append(value)
        return {payer: sorted(values) for payer, values in out.items()}

    def vector(self, request: Mapping[str, Any], entity_id: str | None = None) -> np.ndarray:
        """The full online feature vector of one request (same order as training).

        Credit sets: ``{"entity_id": ..., "requested_amount": ...}``.  ``payment_fraud_v1``:
        the event's fields (``payer_id`` = card token for POS / account holder for payments,
        ``event_type`` 'pos'|'payment', ``ts``, ``amount``, ``counterpart_id`` = terminal or
        payee, ``merchant_id``, ``mcc``, ``entry_mode``, ``channel``, ``device_id``,
        ``payment_type``) plus ``recent``: the payer's events of the last 24 hours before
        ``ts`` (dicts with ts, amount, counterpart_id, device_id, channel).
        """
        fs = get_feature_set(self.feature_set)
        if fs.entity == "payer":
            payer = str(request.get("payer_id"))
            profiles = {
                "payer": self.get(payer, "payer"),
                "counterpart": self.get(request.get("counterpart_id"), "counterpart"),  # type: ignore[arg-type]
                "merchant": self.get(request.get("merchant_id"), "merchant"),  # type: ignore[arg-type]
            }
            full = dict(request)
            full["seen_before_today"] = {
                f: self.seen_before(payer, f, request.get(f)) for f in PAIR_FIELDS
            }
            return request_features(fs, profiles, full)
        key = entity_id if entity_id is not None else request.get("entity_id")
        if key is None:
            raise YidaiError(f"{self.feature_set}: the request names no entity_id")
        return request_features(fs, self.get(str(key)), request)


def load_snapshot(serving_dir: Path | str, feature_set: str) -> FeatureSnapshot:
    """Load the live snapshot of ``feature_set``; refuses one whose definition differs from
    the code's (fingerprint) with a clear error."""
    fs = get_feature_set(feature_set)
    meta = current_pointer(serving_dir, feature_set)
    if meta is None:
        raise YidaiError(f"no published snapshot of {feature_set} under {serving_dir}")
    if meta["fingerprint"] != fs.fingerprint:
        raise YidaiError(
            f"snapshot {meta['snapshot_id']} of {feature_set} has fingerprint "
            f"{meta['fingerprint']}, the code declares {fs.fingerprint}: republish it"
        )
    folder = _set_dir(serving_dir, feature_set) / meta["snapshot_id"]
    profiles: dict[str, _Profile] = {}
    for entity, cols in meta["profiles"].items():
        df = pd.read_parquet(folder / f"{entity}.parquet")
        matrix = df[cols].to_numpy(np.float64, copy=True)
        matrix.flags.writeable = False
        ids = df["entity_id"].astype(str).tolist()
        profiles[entity] = _Profile(cols, dict(zip(ids, range(len(ids)), strict=True)), matrix)
    pairs: dict[str, set[str]] = {}
    if (folder / "pairs.parquet").exists():
        p = pd.read_parquet(folder / "pairs.parquet")
        for f in PAIR_FIELDS:
            sub = p[p["field"] == f]
            pairs[f] = set(
                (sub["payer_id"].astype(str) + "\x1f" + sub["value"].astype(str)).tolist()
            )
    return FeatureSnapshot(
        feature_set=feature_set,
        version=int(meta["version"]),
        fingerprint=meta["fingerprint"],
        as_of=dt.date.fromisoformat(meta["as_of"]),
        columns=list(meta["columns"]),
        snapshot_id=meta["snapshot_id"],
        entity=fs.entity if fs.entity in profiles else next(iter(profiles)),
        profiles=profiles,
        pairs=pairs,
    )
