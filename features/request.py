"""Request-time features: one vectorised implementation used online (one request) and offline
(every row of a training set), so the two paths cannot disagree.

A request is the event or application being decided: its own fields (``amount``, ``ts``,
``requested_amount``...), the entity's profile as of the previous close, and for payment
fraud the payer's recent events (``recent``: every event of the payer in the 24 hours before
``ts``) plus whether each counterpart/device/channel was already seen before today's 00:00
(``seen_before_today``, looked up in the snapshot's pair index).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from features.declarations import FeatureSet
from yidai.core.errors import YidaiError

if TYPE_CHECKING:
    import pandas as pd

US_PER_HOUR = 3_600_000_000
US_PER_DAY = 24 * US_PER_HOUR
NO_LOWER_BOUND = np.iinfo(np.int64).min // 2
PAIR_FIELDS = ("counterpart_id", "device_id", "channel")
HISTORY_COLUMNS = ("payer_id", "ts", "amount", *PAIR_FIELDS)
FRAUD_REQUEST_FIELDS = (
    "payer_id",
    "event_type",
    "ts",
    "amount",
    "counterpart_id",
    "merchant_id",
    "mcc",
    "entry_mode",
    "channel",
    "device_id",
    "payment_type",
)


def _pandas() -> ModuleType:
    """pandas, for the batch (offline) path: the online path (:class:`SingleRequest`) runs
    without it, so a scoring worker need not import it."""
    # heavy: pandas, only for batches of requests (training sets, backfills)
    import pandas

    return pandas


def to_us(values: Any) -> np.ndarray:
    """Timestamps (datetime64 array, Series, datetime or string) as int64 microseconds."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "M":
        return values.astype("datetime64[us]").astype(np.int64)
    try:
        return np.asarray(values, dtype="datetime64[us]").astype(np.int64)
    except (TypeError, ValueError):
        arr = np.asarray(_pandas().to_datetime(values), dtype="datetime64[us]")
        return arr.astype(np.int64)


def to_cents(values: Any) -> np.ndarray:
    """Amounts as integer cents, so that window sums are exact in any order."""
    return np.round(np.asarray(values, dtype=np.float64) * 100.0).astype(np.int64)


def window_stats(
    ev_key: np.ndarray,
    ev_ts: np.ndarray,
    ev_cents: np.ndarray,
    q_key: np.ndarray,
    q_lo: np.ndarray,
    q_hi: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Count and cent-sum of the events with the query's key and ``q_lo <= ts < q_hi``.

    Keys are any hashable labels shared by events and queries.  O((n + q) log n).
    """
    if len(q_key) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    codes, _ = _pandas().factorize(np.concatenate([np.asarray(ev_key), np.asarray(q_key)]))
    ev_code, q_code = codes[: len(ev_key)].astype(np.int64), codes[len(ev_key) :].astype(np.int64)
    stamps = np.unique(np.concatenate([ev_ts, q_lo, q_hi]))
    n_stamps = np.int64(len(stamps))
    ev_comp = ev_code * n_stamps + np.searchsorted(stamps, ev_ts)
    order = np.argsort(ev_comp, kind="stable")
    ev_comp = ev_comp[order]
    cum = np.concatenate([[0], np.cumsum(np.asarray(ev_cents, np.int64)[order])])
    left = np.searchsorted(ev_comp, q_code * n_stamps + np.searchsorted(stamps, q_lo), "left")
    right = np.searchsorted(ev_comp, q_code * n_stamps + np.searchsorted(stamps, q_hi), "left")
    right = np.maximum(right, left)
    return (right - left).astype(np.int64), cum[right] - cum[left]


class RequestBatch:
    """What a request-time feature function may read, for n requests at once."""

    def __init__(
        self,
        fs: FeatureSet,
        requests: Mapping[str, np.ndarray],
        n: int,
        profiles: Mapping[str, np.ndarray],
        history: Mapping[str, np.ndarray] | None,
        seen_before_today: Mapping[str, np.ndarray] | None,
    ) -> None:
        self.fs = fs
        self.requests = requests
        self.n = n
        self._profiles = profiles
        self._history = history
        self._seen = seen_before_today
        self._cache: dict[Any, Any] = {}

    def _field(self, name: str) -> np.ndarray:
        if name not in self.requests:
            raise YidaiError(f"{self.fs.name}: the request has no field {name!r}")
        return self.requests[name]

    def number(self, name: str) -> np.ndarray:
        raw = self._field(name)
        try:
            values = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError):
            pd = _pandas()
            values = pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy(np.float64)
        if np.isnan(values).any():
            raise YidaiError(f"{self.fs.name}: request field {name!r} is missing or not a number")
        return values

    def ts_us(self) -> np.ndarray:
        if "ts_us" not in self._cache:
            raw = self._field("ts")
            if _pandas().isna(raw).any():
                raise YidaiError(f"{self.fs.name}: request field 'ts' is missing")
            self._cache["ts_us"] = to_us(raw)
        ts: np.ndarray = self._cache["ts_us"]
        return ts

    def hour(self) -> np.ndarray:
        return ((self.ts_us() % US_PER_DAY) // US_PER_HOUR).astype(np.float64)

    def equals(self, name: str, values: Sequence[str]) -> np.ndarray:
        col = self._field(name) if name in self.requests else np.full(self.n, None)
        return np.isin(col.astype(object), list(values)).astype(np.float64)

    def profile(self, column: str) -> np.ndarray:
        try:
            return self._profiles[column]
        except KeyError:
            raise YidaiError(f"{self.fs.name}: no profile column {column!r}") from None

    def _history_frame(self) -> Mapping[str, np.ndarray]:
        if self._history is None:
            raise YidaiError(f"{self.fs.name}: the request has no recent events ('recent')")
        return self._history

    def velocity(self, hours: int) -> tuple[np.ndarray, np.ndarray]:
        """Count and amount of the payer's events in ``[ts - hours, ts)``."""
        key = ("velocity", hours)
        if key not in self._cache:
            h = self._history_frame()
            t = self.ts_us()
            count, cents = window_stats(
                h["payer_id"],
                h["ts_us"],
                h["cents"],
                self._field("payer_id"),
                t - hours * US_PER_HOUR,
                t,
            )
            self._cache[key] = (count.astype(np.float64), cents / 100.0)
        result: tuple[np.ndarray, np.ndarray] = self._cache[key]
        return result

    def previous_ts(self, hours: int) -> np.ndarray:
        """The time (us) of the payer's latest event in ``[ts - hours, ts)``; -1 if none."""
        key = ("previous", hours)
        if key not in self._cache:
            h = self._history_frame()
            t = self.ts_us()
            pd = _pandas()
            # payers as integer codes shared by both sides (merge_asof needs equal key types)
            ev_key = np.asarray(h["payer_id"], dtype=object)
            codes, _ = pd.factorize(
                np.concatenate([ev_key, np.asarray(self._field("payer_id"), dtype=object)])
            )
            events = pd.DataFrame({"payer_id": codes[: len(ev_key)], "ev": h["ts_us"]})
            events = events.assign(t=events["ev"]).sort_values("t", kind="stable")
            queries = pd.DataFrame({"payer_id": codes[len(ev_key) :], "t": t, "i": range(self.n)})
            found = pd.merge_asof(
                queries.sort_values("t", kind="stable"),
                events,
                on="t",
                by="payer_id",
                allow_exact_matches=False,
                direction="backward",
            ).sort_values("i")
            ev = found["ev"].to_numpy(np.float64)
            inside = ~np.isnan(ev) & (ev >= t - hours * US_PER_HOUR)
            self._cache[key] = np.where(inside, np.nan_to_num(ev), -1).astype(np.int64)
        result: np.ndarray = self._cache[key]
        return result

    def _seen_in(self, field: str, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        h = self._history_frame()
        pd = _pandas()
        ev_mask = ~pd.isna(h[field])
        ev_key = h["payer_id"][ev_mask] + "\x1f" + h[field][ev_mask]
        q_val = self._field(field).astype(object)
        q_key = (
            self._field("payer_id").astype(object)
            + "\x1f"
            + np.where(pd.isna(q_val), "", q_val).astype(object)
        )
        count, _ = window_stats(
            ev_key.astype(object),
            h["ts_us"][ev_mask],
            np.zeros(int(ev_mask.sum()), np.int64),
            q_key,
            lo,
            hi,
        )
        seen: np.ndarray = count > 0
        return seen

    def is_new(self, field: str) -> np.ndarray:
        """1.0 if the payer had no event with this field's value before ``ts``; 0 if null."""
        t = self.ts_us()
        day_start = t - t % US_PER_DAY
        if self._seen is not None and field in self._seen:
            before_today = np.asarray(self._seen[field], dtype=bool)
        else:
            before_today = self._seen_in(field, np.full(self.n, NO_LOWER_BOUND), day_start)
        seen = before_today | self._seen_in(field, day_start, t)
        present = ~_pandas().isna(self._field(field))
        return np.where(present & ~seen, 1.0, 0.0)


def prepare_history(events: pd.DataFrame) -> dict[str, np.ndarray]:
    """Events as the window functions read them (payer_id, ts_us, cents, pair fields)."""
    missing = [c for c in HISTORY_COLUMNS if c not in events.columns]
    if missing:
        raise YidaiError(f"recent events lack the fields {missing}")
    out = {
        "payer_id": events["payer_id"].to_numpy(dtype=object),
        "ts_us": to_us(events["ts"].to_numpy()) if len(events) else np.zeros(0, np.int64),
        "cents": to_cents(events["amount"]) if len(events) else np.zeros(0, np.int64),
    }
    for f in PAIR_FIELDS:
        out[f] = events[f].to_numpy(dtype=object)
    return out


def _recent_history(payer_id: Any, recent: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """The online request's recent events (list of dicts) as window-function input."""
    n = len(recent)
    if n == 0:
        empty = np.zeros(0, dtype=object)
        return {
            "payer_id": empty,
            "ts_us": np.zeros(0, np.int64),
            "cents": np.zeros(0, np.int64),
            **{f: empty for f in PAIR_FIELDS},
        }
    for key in ("ts", "amount"):
        if any(key not in e or e[key] is None for e in recent):
            raise YidaiError(f"a recent event lacks {key!r}")
    return {
        "payer_id": np.full(n, payer_id, dtype=object),
        "ts_us": to_us([e["ts"] for e in recent]),
        "cents": to_cents([e["amount"] for e in recent]),
        **{f: np.array([e.get(f) for e in recent], dtype=object) for f in PAIR_FIELDS},
    }


def request_features_batch(
    fs: FeatureSet,
    profiles: pd.DataFrame | Mapping[str, np.ndarray],
    requests: pd.DataFrame | Mapping[str, np.ndarray],
    history: Mapping[str, np.ndarray] | None = None,
    seen_before_today: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """The full feature matrix (n x len(fs.columns), in column order) of n requests.

    ``profiles`` holds the profile columns (as of the previous close) row-aligned with
    ``requests``; ``history`` the payer's events (offline: all events; online: the recent
    ones); ``seen_before_today`` per pair field, or None to derive it from ``history``.
    """
    pd = _pandas()
    if isinstance(requests, pd.DataFrame):
        n = len(requests)
        fields = {c: requests[c].to_numpy() for c in requests.columns}
    else:
        fields = dict(requests)
        n = len(next(iter(fields.values()))) if fields else 0
    if isinstance(profiles, pd.DataFrame):
        prof = {c: profiles[c].to_numpy(np.float64) for c in profiles.columns}
    else:
        prof = dict(profiles)
    batch = RequestBatch(fs, fields, n, prof, history, seen_before_today)
    out = np.empty((n, len(fs.columns)), dtype=np.float64)
    for j, feature in enumerate(fs.features):
        if feature.kind == "request":
            assert feature.compute is not None
            out[:, j] = np.asarray(feature.compute(batch), dtype=np.float64)
        else:
            out[:, j] = batch.profile(feature.name)
    return out


def profile_defaults(fs: FeatureSet, entity: str) -> np.ndarray:
    """The profile vector of an entity without any rows (what the offline build yields)."""
    return np.array(
        [np.nan if f.fill is None else f.fill for f in fs.profile_features if f.entity == entity],
        dtype=np.float64,
    )


class SingleRequest:
    """:class:`RequestBatch` for one online request, on plain Python values.

    The same interface and the same semantics as a one-row ``RequestBatch`` (the declared
    compute functions run unchanged on it and get one-element arrays), without pandas,
    factorising or sorting: microseconds instead of a millisecond.  ``recent`` holds the
    payer's events (all of them the payer's own); the feature store's parity tests check
    its vectors against the offline (batch) rows column for column.
    """

    n = 1

    def __init__(
        self,
        fs: FeatureSet,
        fields: Mapping[str, Any],
        profiles: Mapping[str, float],
        recent: Sequence[Mapping[str, Any]] | None = None,
        seen_before_today: Mapping[str, bool] | None = None,
    ) -> None:
        self.fs = fs
        self._fields = fields
        self._profiles = profiles
        self._recent = recent
        self._seen = seen_before_today
        self._ts_us: int | None = None
        self._history: tuple[np.ndarray, np.ndarray] | None = None
        self._velocity: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _field(self, name: str) -> Any:
        if name not in self._fields:
            raise YidaiError(f"{self.fs.name}: the request has no field {name!r}")
        return self._fields[name]

    def number(self, name: str) -> np.ndarray:
        raw = self._field(name)
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = float("nan")
        if value != value:
            raise YidaiError(f"{self.fs.name}: request field {name!r} is missing or not a number")
        return np.array([value], dtype=np.float64)

    def ts_us(self) -> np.ndarray:
        if self._ts_us is None:
            raw = self._field("ts")
            if _is_missing(raw):
                raise YidaiError(f"{self.fs.name}: request field 'ts' is missing")
            self._ts_us = int(to_us(np.array([raw], dtype=object))[0])
        return np.array([self._ts_us], dtype=np.int64)

    def hour(self) -> np.ndarray:
        return ((self.ts_us() % US_PER_DAY) // US_PER_HOUR).astype(np.float64)

    def equals(self, name: str, values: Sequence[str]) -> np.ndarray:
        value = self._fields.get(name)
        return np.array([1.0 if value in tuple(values) else 0.0])

    def profile(self, column: str) -> np.ndarray:
        try:
            return np.array([self._profiles[column]], dtype=np.float64)
        except KeyError:
            raise YidaiError(f"{self.fs.name}: no profile column {column!r}") from None

    def _events(self) -> tuple[np.ndarray, np.ndarray]:
        """The recent events' timestamps (us) and amounts (cents)."""
        if self._recent is None:
            raise YidaiError(f"{self.fs.name}: the request has no recent events ('recent')")
        if self._history is None:
            h = _recent_history(None, self._recent)
            self._history = (h["ts_us"], h["cents"])
        return self._history

    def velocity(self, hours: int) -> tuple[np.ndarray, np.ndarray]:
        """Count and amount of the payer's events in ``[ts - hours, ts)``."""
        if hours not in self._velocity:
            ts, cents = self._events()
            t = int(self.ts_us()[0])
            inside = (ts >= t - hours * US_PER_HOUR) & (ts < t)
            count = np.array([int(inside.sum())], dtype=np.int64)
            total = np.array([int(cents[inside].sum())], dtype=np.int64)
            self._velocity[hours] = (count.astype(np.float64), total / 100.0)
        return self._velocity[hours]

    def previous_ts(self, hours: int) -> np.ndarray:
        """The time (us) of the payer's latest event in ``[ts - hours, ts)``; -1 if none."""
        ts, _ = self._events()
        t = int(self.ts_us()[0])
        inside = ts[(ts >= t - hours * US_PER_HOUR) & (ts < t)]
        return np.array([int(inside.max()) if len(inside) else -1], dtype=np.int64)

    def _seen_in(self, field: str, lo: int, hi: int) -> bool:
        ts, _ = self._events()
        value = self._field(field)
        wanted = "" if _is_missing(value) else value
        assert self._recent is not None
        return any(
            lo <= int(t) < hi and not _is_missing(e.get(field)) and e.get(field) == wanted
            for t, e in zip(ts, self._recent, strict=True)
        )

    def is_new(self, field: str) -> np.ndarray:
        """1.0 if the payer had no event with this field's value before ``ts``; 0 if null."""
        t = int(self.ts_us()[0])
        day_start = t - t % US_PER_DAY
        if self._seen is not None and field in self._seen:
            before_today = bool(self._seen[field])
        else:
            before_today = self._seen_in(field, int(NO_LOWER_BOUND), day_start)
        seen = before_today or self._seen_in(field, day_start, t)
        present = not _is_missing(self._field(field))
        return np.array([1.0 if present and not seen else 0.0])


def _is_missing(value: Any) -> bool:
    """What ``pd.isna`` says of one scalar (None, NaN, NaT, pd.NA), without importing pandas:
    a pandas value (NaT, NA) can only exist once pandas is loaded."""
    if value is None or isinstance(value, str):
        return value is None
    pandas = sys.modules.get("pandas")
    if pandas is not None:
        return bool(pandas.isna(value))
    if isinstance(value, np.datetime64 | np.timedelta64):
        return bool(np.isnat(value))
    try:
        return bool(value != value)  # NaN (float, numpy, Decimal)
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class _Plan:
    """A feature set's layout for single requests, computed once per feature set."""

    columns_by_entity: dict[str, list[str]]
    defaults: dict[str, np.ndarray]
    slots: list[tuple[int, Any, str | None]]  # (position, compute or None, profile column)


_PLANS: dict[int, tuple[FeatureSet, _Plan]] = {}


def _plan(fs: FeatureSet) -> _Plan:
    cached = _PLANS.get(id(fs))
    if cached is not None and cached[0] is fs:
        return cached[1]
    entities = fs.profile_entities
    plan = _Plan(
        columns_by_entity={e: fs.profile_columns(e) for e in entities},
        defaults={e: profile_defaults(fs, e) for e in entities},
        slots=[
            (j, f.compute, None) if f.kind == "request" else (j, None, f.name)
            for j, f in enumerate(fs.features)
        ],
    )
    _PLANS[id(fs)] = (fs, plan)
    return plan


def request_features(
    fs: FeatureSet,
    profile_vector: np.ndarray | Mapping[str, np.ndarray | None] | None,
    request: Mapping[str, Any],
) -> np.ndarray:
    """One request's full feature vector, in the feature set's column order.

    ``profile_vector``: the entity's snapshot vector (``FeatureSnapshot.get``), or for
    ``payment_fraud_v1`` a mapping ``{"payer": ..., "counterpart": ..., "merchant": ...}``;
    None (unknown entity) means "no activity" and gives the same values as offline.
    The declared compute functions run on a :class:`SingleRequest` (the online fast path).
    """
    plan = _plan(fs)
    if isinstance(profile_vector, Mapping):
        vectors = dict(profile_vector)
    else:
        entities = list(plan.columns_by_entity)
        vectors = {entities[0]: profile_vector} if entities else {}
    profile: dict[str, float] = {}
    for entity, cols in plan.columns_by_entity.items():
        vec = vectors.get(entity)
        vec = plan.defaults[entity] if vec is None else np.asarray(vec, np.float64)
        if vec.shape != (len(cols),):
            raise YidaiError(
                f"{fs.name}: the {entity} profile has {vec.shape} values, expected {len(cols)}"
            )
        profile.update(zip(cols, vec.tolist(), strict=True))
    if fs.entity == "payer":
        fields = {k: request.get(k) for k in FRAUD_REQUEST_FIELDS}
        raw_seen = request.get("seen_before_today") or {}
        one = SingleRequest(
            fs,
            fields,
            profile,
            recent=request.get("recent") or [],
            seen_before_today={f: bool(raw_seen.get(f, False)) for f in PAIR_FIELDS},
        )
    else:
        one = SingleRequest(fs, request, profile)
    out = np.empty(len(plan.slots), dtype=np.float64)
    for j, compute, column in plan.slots:
        if compute is not None:
            out[j] = np.asarray(compute(one), dtype=np.float64)[0]
        else:
            assert column is not None
            out[j] = one.profile(column)[0]
    return out
