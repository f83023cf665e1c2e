"""Feature and feature-set declarations, fingerprints and the committed lock file.

A :class:`Feature` is declared once (name ``<entity>_<measure>_<window>``, entity, source,
window, description, computation, monotone hint, reason group).  Three kinds of computation:

* ``agg``: a DuckDB aggregate expression over the rows of a daily *source* inside the window
  (``day`` in ``(as_of - window, as_of]``); may use ``as_of``.
* ``sql``: a full DuckDB query template for what one expression cannot say (concentration,
  market-adjusted ratios); placeholders ``{keys}`` (entity_id, as_of) and ``{source}``.
  Optionally ``windowed``: an equivalent template whose cost grows with rows, not rows x
  window, used when many as-of days are computed at once (history, training sets).
* ``request``: a Python function of the request (the event or application itself) and the
  profile features, evaluated by :func:`features.request.request_features` both online and
  offline.

A :class:`FeatureSet` is an ordered, versioned list of features.  Its fingerprint hashes the
ordered columns and their definitions; ``features/feature_sets.lock.json`` records it, and a
feature set whose definition changed without a new version is refused.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from features.sources import SOURCES
from yidai.core.errors import YidaiError

Kind = Literal["agg", "sql", "request"]
WINDOWS: dict[str, int | None] = {
    "1h": None,
    "24h": None,
    "1d": 1,
    "7d": 7,
    "30d": 30,
    "90d": 90,
    "180d": 180,
    "365d": 365,
    "life": None,  # everything up to the as-of day
    "now": None,  # the request itself
}
LOCK_PATH = Path(__file__).resolve().parent / "feature_sets.lock.json"
_NAME_RE = re.compile(r"^[a-z][a-z0-9]*_[a-z0-9_]+_[a-z0-9]+$")


@dataclass(frozen=True)
class Feature:
    """One declared feature."""

    name: str
    entity: str
    source: str
    window: str
    description: str
    kind: Kind
    expr: str = ""  # agg: aggregate expression; sql: query template; request: explanation
    compute: Callable[..., Any] | None = None  # request features only
    monotone: int = 0  # +1: more never lowers risk; -1: more never raises risk; 0: none
    reason_group: str = "other"
    fill: float | None = 0.0  # value when the entity has no rows in the window (None = NaN)
    dims: tuple[str, ...] = field(default_factory=tuple)
    # sql only: the same values for many as-of days at once (window functions over daily
    # rows instead of a range join).  An implementation of ``expr``, not a definition: it is
    # left out of the fingerprint, and tests prove it equal to ``expr`` on every key.
    windowed: str = ""

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise YidaiError(f"feature name {self.name!r} is not <entity>_<measure>_<window>")
        if not self.name.startswith(self.entity + "_"):
            raise YidaiError(f"feature {self.name!r} must start with its entity {self.entity!r}")
        if self.window not in WINDOWS or not self.name.endswith("_" + self.window):
            raise YidaiError(f"feature {self.name!r} must end with a known window {list(WINDOWS)}")
        if self.monotone not in (-1, 0, 1):
            raise YidaiError(f"feature {self.name!r}: monotone must be -1, 0 or +1")
        if self.kind == "request" and self.compute is None:
            raise YidaiError(f"request feature {self.name!r} needs a compute function")

    @property
    def window_days(self) -> int | None:
        return WINDOWS[self.window]

    def definition(self) -> dict[str, Any]:
        """What the fingerprint hashes: everything that changes the values."""

        body = self.expr
        if self.source in SOURCES:  # the daily source's SQL changes the values too
            body += "\n" + SOURCES[self.source].daily_sql("{lo}", "{hi}")
        if self.compute is not None:
            body += "\n" + _canonical_source(inspect.getsource(self.compute))
        return {
            "name": self.name,
            "entity": self.entity,
            "source": self.source,
            "window": self.window,
            "kind": self.kind,
            "fill": self.fill,
            "body": " ".join(body.split()),
        }


# Modules moved without a change of behaviour: a compute function's source is hashed with
# their earlier names, so moving a module (the 2026-12 re-layering: yidai.contracts to
# yidai.core.contracts) does not change a fingerprint and strand the models trained on it.
MOVED_MODULES = {"yidai.core.contracts": "yidai.contracts"}


def _canonical_source(source: str) -> str:
    for now, before in MOVED_MODULES.items():
        source = source.replace(now, before)
    return source


@dataclass(frozen=True)
class FeatureSet:
    """An ordered, versioned list of features for one model."""

    base_name: str
    version: int
    entity: str  # the decision's entity: customer, merchant, sme, event
    description: str
    features: tuple[Feature, ...]
    source_sql: Callable[[str], str] | None = None  # used by the profile sources, see engine

    @property
    def name(self) -> str:
        return f"{self.base_name}_v{self.version}"

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def profile_features(self) -> list[Feature]:
        return [f for f in self.features if f.kind != "request"]

    @property
    def request_features(self) -> list[Feature]:
        return [f for f in self.features if f.kind == "request"]

    @property
    def profile_entities(self) -> list[str]:
        """Entities whose daily profiles this set reads, in first-use order."""
        seen: list[str] = []
        for f in self.profile_features:
            if f.entity not in seen:
                seen.append(f.entity)
        return seen

    def profile_columns(self, entity: str) -> list[str]:
        return [f.name for f in self.profile_features if f.entity == entity]

    @property
    def monotone(self) -> list[int]:
        return [f.monotone for f in self.features]

    @property
    def reason_groups(self) -> dict[str, str]:
        return {f.name: f.reason_group for f in self.features}

    def history_days(self, names: Iterable[str] | None = None) -> int:
        """Days of event history the longest window of the set's features (or of ``names``
        among them) reads back; 0 when none has a window of days."""
        wanted = None if names is None else set(names)
        return max(
            (f.window_days or 0 for f in self.features if wanted is None or f.name in wanted),
            default=0,
        )

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise YidaiError(f"feature set {self.name} has no feature {name!r}")

    @property
    def fingerprint(self) -> str:
        payload = json.dumps(
            {"name": self.name, "features": [f.definition() for f in self.features]},
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def lock_entry(fs: FeatureSet) -> dict[str, Any]:
    return {"version": fs.version, "fingerprint": fs.fingerprint, "columns": fs.columns}


def read_lock(path: Path = LOCK_PATH) -> dict[str, Any]:
    if not path.exists():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def write_lock(feature_sets: dict[str, FeatureSet], path: Path = LOCK_PATH) -> None:
    """Record the current fingerprints (run after bumping a version on purpose)."""
    data = read_lock(path)
    for name, fs in feature_sets.items():
        data[name] = lock_entry(fs)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def check_locked(fs: FeatureSet, lock: dict[str, Any] | None = None) -> None:
    """Refuse a feature set whose columns changed without a new version."""
    lock = read_lock() if lock is None else lock
    entry = lock.get(fs.name)
    if entry is None:
        raise YidaiError(
            f"feature set {fs.name} is not in {LOCK_PATH.name}; record it with "
            "`yidai features lock` after review"
        )
    if entry["fingerprint"] != fs.fingerprint:
        changed = [c for c in fs.columns if c not in entry["columns"]] + [
            c for c in entry["columns"] if c not in fs.columns
        ]
        detail = f" (columns added/removed: {', '.join(changed)})" if changed else ""
        raise YidaiError(
            f"feature set {fs.name} changed without a new version: fingerprint "
            f"{fs.fingerprint} != locked {entry['fingerprint']}{detail}; declare "
            f"{fs.base_name}_v{fs.version + 1} instead of editing v{fs.version}"
        )
