"""What the service decides with, reloaded without restart: policies, snapshots, models.

For each product a :class:`ProductBundle` (policy and its challenger variant, feature
snapshot, champion and challenger models, precomputed column maps) is built and swapped in
one assignment, so a request sees either the old bundle or the new one, never a mix.
A background thread (:meth:`Resources.start`) looks every ``settings.service_reload_seconds``
for a changed policy file (content hash), a new snapshot pointer and a moved MLflow alias.
Anything that fails to load or does not fit (feature-set version, missing columns) is
reported in :meth:`Resources.status` and the logs while the previous bundle keeps serving.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

import features
from features.online import OnlineStoreUnavailable, open_store
from features.online.redis_store import redacted
from models.registry import LocalRegistryReader, load_model, tracking_client
from scoring_service.fastpredict import SingleRowMargin, single_row_margin
from scoring_service.security import KeyRing
from scoring_service.vectors import RequestVectorizer
from yidai.core.errors import YidaiError
from yidai.core.settings import Settings
from yidai.decisioning.policy import (
    PRODUCTS,
    CreditPolicy,
    PaymentPolicy,
    Policy,
    load_policy,
    policy_path,
)
from yidai.jobs.limits.serving import current_limits_pointer, load_published_limits

log = logging.getLogger(__name__)


class SnapshotLike(Protocol):
    """An online feature snapshot (``features.FeatureSnapshot``)."""

    feature_set: str
    fingerprint: str
    columns: list[str]
    snapshot_id: str

    def get(self, entity_id: str, entity: str | None = None) -> np.ndarray | None: ...
    def profile_columns(self, entity: str | None = None) -> list[str]: ...
    def vector(self, request: Mapping[str, Any], entity_id: str | None = None) -> np.ndarray: ...
    def vector_and_profile(
        self, request: Mapping[str, Any], entity_id: str | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]: ...


class ModelLike(Protocol):
    """A loaded, calibrated model (``models.registry.LoadedModel``)."""

    name: str
    version: str
    feature_set_version: str
    feature_names: list[str]

    def predict_pd(self, X: np.ndarray) -> np.ndarray: ...
    def score_points(self, pd_: Any) -> np.ndarray: ...
    def grade(self, pd_: Any) -> np.ndarray: ...
    def reason_codes(self, X: np.ndarray, top_k: int = 3) -> list[list[Any]]: ...


@dataclass
class Loaders:
    """How artefacts are found and loaded (the real project loaders by default)."""

    model_version: Callable[[str, str], str | None]
    load_model: Callable[[str, str, str | None], ModelLike]
    snapshot_marker: Callable[[str], str | None]
    load_snapshot: Callable[[str], SnapshotLike]

    @classmethod
    def default(cls, settings: Settings) -> Loaders:
        """MLflow registry (``models.registry``) and published snapshots (``features``)."""

        registry = _MlflowRegistry(settings)
        store = open_store(
            settings.online_store, settings.serving, settings.online_store_timeout_seconds
        )

        def marker(feature_set: str) -> str | None:
            pointer = store.current(feature_set)
            return None if pointer is None else str(pointer["snapshot_id"])

        def load(feature_set: str) -> SnapshotLike:
            return GuardedSnapshot(features.load_snapshot(settings.serving, feature_set, store))

        return cls(
            model_version=registry.version_of,
            load_model=registry.load,
            snapshot_marker=marker,
            load_snapshot=load,
        )


class GuardedSnapshot:
    """A snapshot whose store failures are :class:`StoreUnavailable` (HTTP 503 with the
    reason): a decision is never made on features the store could not give."""

    def __init__(self, snapshot: Any) -> None:
        self._snapshot = snapshot
        self.feature_set: str = snapshot.feature_set
        self.fingerprint: str = snapshot.fingerprint
        self.columns: list[str] = snapshot.columns
        self.snapshot_id: str = snapshot.snapshot_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._snapshot, name)

    def get(self, entity_id: str, entity: str | None = None) -> np.ndarray | None:
        try:
            result: np.ndarray | None = self._snapshot.get(entity_id, entity)
        except OnlineStoreUnavailable as exc:
            raise StoreUnavailable(str(exc)) from exc
        return result

    def profile_columns(self, entity: str | None = None) -> list[str]:
        return list(self._snapshot.profile_columns(entity))

    def vector(self, request: Mapping[str, Any], entity_id: str | None = None) -> np.ndarray:
        return self.vector_and_profile(request, entity_id)[0]

    def vector_and_profile(
        self, request: Mapping[str, Any], entity_id: str | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        try:
            full, profile = self._snapshot.vector_and_profile(request, entity_id)
        except OnlineStoreUnavailable as exc:
            raise StoreUnavailable(str(exc)) from exc
        return np.asarray(full), profile


class _MlflowRegistry:
    """The model registry as the service reads it: straight from the embedded MLflow store
    when it is one (``LocalRegistryReader``: no MLflow in the worker), else through MLflow."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Any = None
        self._local = LocalRegistryReader.for_settings(settings)

    def version_of(self, name: str, alias: str) -> str | None:
        if self._local is not None:
            return self._local.version_of(name, alias)
        # heavy: MLflow (a tracking server; the embedded store is read without it)
        from mlflow.exceptions import MlflowException

        if self._client is None:
            self._client = tracking_client(self.settings)
        try:
            return str(self._client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            return None

    def load(self, name: str, alias: str, feature_set_version: str | None) -> ModelLike:
        if self._local is not None:
            return self._local.load(name, alias, feature_set_version)
        return load_model(
            name, alias, expected_feature_set_version=feature_set_version, settings=self.settings
        )


@dataclass(frozen=True)
class ModelSlot:
    """A model and where each of its inputs comes from."""

    model: ModelLike
    profile_columns: np.ndarray | None  # profile index per input, if all are profile features
    full_columns: np.ndarray  # index per input into the feature set's full vector
    margin: SingleRowMargin | None = None  # fast single-row booster margin, if LightGBM

    @property
    def label(self) -> str:
        return f"{self.model.name}:{self.model.version}"


@dataclass(frozen=True)
class ProductBundle:
    """Everything one product's decisions read; immutable, swapped as a whole."""

    product: str
    policy: Policy
    challenger_policy: Policy
    snapshot: SnapshotLike
    champion: ModelSlot
    challenger: ModelSlot | None
    policy_columns: dict[str, int]  # policy feature -> profile vector index
    vectorizer: RequestVectorizer
    loaded_at: float = field(default_factory=time.time)


def _slot(model: ModelLike, snapshot: SnapshotLike) -> ModelSlot:
    full = {c: i for i, c in enumerate(snapshot.columns)}
    unknown = [f for f in model.feature_names if f not in full]
    if unknown:
        raise YidaiError(
            f"{model.name} v{model.version} needs features {unknown} that feature set "
            f"{snapshot.feature_set} does not have"
        )
    profile = {c: i for i, c in enumerate(snapshot.profile_columns())}
    direct = None
    if all(f in profile for f in model.feature_names):
        direct = np.array([profile[f] for f in model.feature_names], dtype=np.intp)
    columns = np.array([full[f] for f in model.feature_names], np.intp)
    return ModelSlot(model, direct, columns, single_row_margin(model))


def _fingerprint(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class Resources:
    """Holder of every product's bundle, with hot reload and a readiness report."""

    def __init__(
        self,
        settings: Settings,
        loaders: Loaders | None = None,
        products: Sequence[str] = PRODUCTS,
    ) -> None:
        self.settings = settings
        self.products = tuple(products)
        self._loaders = loaders
        self.bundles: dict[str, ProductBundle] = {}
        self.problems: dict[str, dict[str, str]] = {p: {} for p in self.products}
        self._cache: dict[tuple[str, str], tuple[str | None, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reloads = 0
        self.reload_failures = 0
        # yidai.jobs.limits.serving.PublishedLimits of the live version; None until it is loaded,
        # or when the live version cannot be (merchant drawdowns then get 503, never a guess)
        self.limits: Any = None
        self.limits_problem: str | None = "merchant limits are still loading"
        self.keys = KeyRing({})
        self.first_load_done = threading.Event()

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = Loaders.default(self.settings)
        return self._loaders

    # ------------------------------------------------------------------ reading
    def bundle(self, product: str) -> ProductBundle:
        """The bundle in force, or a :class:`NotReady` naming what is missing."""
        found = self.bundles.get(product)
        if found is None:
            missing = "; ".join(self.problems.get(product, {}).values()) or "still loading"
            raise NotReady(f"{product} decisions are not available yet: {missing}")
        return found

    def limits_in_force(self) -> Any:
        """The live published merchant limits, or a :class:`NotReady` saying why there are
        none: a merchant line's limit is never guessed from its original approval."""
        limits = self.limits
        if limits is None:
            raise LimitsNotLoaded(f"merchant lines are not available yet: {self.limits_problem}")
        return limits

    def status(self) -> dict[str, Any]:
        """Per product: serving versions and problems (failed or missing artefacts).

        ``loading`` is true until the first load of every artefact has been tried, so a
        caller waiting for start-up can tell "still loading" from "failed" or "missing".
        """
        products: dict[str, Any] = {}
        for product in self.products:
            b = self.bundles.get(product)
            products[product] = {
                "ready": b is not None,
                "policy_version": b.policy.policy_version if b else None,
                "snapshot": b.snapshot.snapshot_id if b else None,
                "champion": b.champion.label if b else None,
                "challenger": b.challenger.label if b and b.challenger else None,
                "problems": dict(self.problems.get(product, {})),
            }
        limits = {
            "ready": self.limits is not None,
            "version": getattr(self.limits, "version", None),
            "as_of": str(self.limits.as_of) if self.limits is not None else None,
            "problem": self.limits_problem,
        }
        return {
            "ready": all(p["ready"] for p in products.values()) and limits["ready"],
            "loading": not self.first_load_done.is_set(),
            "pid": os.getpid(),
            "products": products,
            "merchant_limits": limits,
            "merchant_limits_version": limits["version"],
            "problems": dict(self.problems.get("service", {})),
        }

    # ------------------------------------------------------------------ reloading
    def start_background(self) -> None:
        """Load and keep looking for changes in a daemon thread (first load at once)."""
        self._thread = threading.Thread(target=self._loop, name="yidai-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # never let the reload thread die
                log.exception("resource refresh failed")
            self._stop.wait(self.settings.service_reload_seconds)

    def refresh(self) -> None:
        """Look for changed artefacts of every product and swap in what loads and fits."""
        with self._lock:
            self._refresh_keys()
            self._refresh_limits()
            for product in self.products:
                self._refresh_product(product)
        self.first_load_done.set()

    def _refresh_keys(self) -> None:
        path = self.settings.api_keys_file
        assert path is not None
        keys = self._cached(
            "service", "api keys", _fingerprint(path) or "absent", lambda: KeyRing.load(path)
        )
        if isinstance(keys, KeyRing):
            self.keys = keys
            self.problems.setdefault("service", {}).pop("api_keys", None)
        else:
            self.problems.setdefault("service", {})["api_keys"] = keys.message

    def _refresh_limits(self) -> None:
        """Serve exactly the live version named by the limits pointer, or none at all.

        Until it is loaded, and whenever it cannot be (no version published, a file that
        fails to load), :attr:`limits` is None and :attr:`limits_problem` says why.
        """

        serving = self.settings.serving
        try:
            marker = current_limits_pointer(serving)
        except Exception as exc:
            self.limits, self.limits_problem = None, f"merchant limits pointer unreadable: {exc}"
            return
        limits = self._cached(
            "service", "merchant limits", marker, lambda: load_published_limits(serving, marker)
        )
        if limits is None:
            self.limits = None
            self.limits_problem = (
                f"no merchant limits published under {serving} (yidai limits refresh)"
            )
        elif isinstance(limits, LoadFailure):
            self.limits, self.limits_problem = None, limits.message
        else:
            self.limits, self.limits_problem = limits, None

    def _cached(self, product: str, what: str, marker: str | None, load: Callable[[], Any]) -> Any:
        """The artefact for ``marker``, loaded once per marker.

        A failure is remembered (and reported) and retried only after ``RETRY_SECONDS``, so
        a broken artefact is not reloaded on every cycle but a transient error heals.
        """
        key = (product, what)
        seen = self._cache.get(key)
        if seen is not None and seen[0] == marker:
            value = seen[1]
            if not (isinstance(value, LoadFailure) and value.expired()):
                return value
        if marker is None:
            value = None
        else:
            try:
                value = load()
                log.info("%s: loaded %s (%s)", product, what, marker[:16])
            except Exception as exc:  # keep serving the previous artefact
                self.reload_failures += 1
                value = LoadFailure(f"{what} {marker[:16]} failed to load: {exc}")
                log.error("%s: %s", product, value.message)
        self._cache[key] = (marker, value)
        return value

    def _refresh_product(self, product: str) -> None:
        problems: dict[str, str] = {}
        current = self.bundles.get(product)
        path = policy_path(product, self.settings.policies)
        policy = self._cached(product, "policy", _fingerprint(path), lambda: load_policy(path))
        if isinstance(policy, LoadFailure) or policy is None:
            problems["policy"] = policy.message if policy else f"policy file {path} is missing"
            policy = current.policy if current else None
        if policy is None:
            self._set_problems(product, problems)
            return
        fs = policy.feature_set
        try:
            snap_marker = self.loaders.snapshot_marker(fs)
        except Exception as exc:  # the online store is unreachable: keep what is served
            problems["snapshot"] = f"feature snapshot {fs} pointer unreadable: {exc}"
            snapshot = current.snapshot if current else None
        else:
            snapshot = self._cached(
                product, "snapshot", snap_marker, lambda: self.loaders.load_snapshot(fs)
            )
            if snapshot is None or isinstance(snapshot, LoadFailure):
                problems["snapshot"] = (
                    snapshot.message
                    if snapshot
                    else f"no feature snapshot {fs} published in the {self._store_name()}"
                )
                snapshot = current.snapshot if current else None
        models: dict[str, ModelLike | None] = {}
        for role, alias in (
            ("champion", "champion"),
            ("challenger", policy.challenger.model_alias),
        ):
            name = policy.model
            version = self._safe_version(name, alias, problems)
            fsv = snapshot.fingerprint if snapshot is not None else None
            loaded = self._cached(
                product,
                role,
                None if version is None else f"{name}:{version}@{fsv}",
                functools.partial(self.loaders.load_model, name, alias, fsv),
            )
            if isinstance(loaded, LoadFailure):
                problems[role] = loaded.message
                loaded = (
                    getattr(current, role).model if current and getattr(current, role) else None
                )
            elif loaded is None and role == "champion" and "registry" not in problems:
                problems[role] = f"no model {name!r} with alias {alias!r} in the registry"
            models[role] = loaded
        champion = models["champion"]
        if snapshot is None or champion is None:
            self._set_problems(product, problems)
            return
        try:
            candidate = self._assemble(product, policy, snapshot, champion, models["challenger"])
        except YidaiError as exc:
            problems["bundle"] = f"new artefacts do not fit together: {exc}"
            log.error("%s: %s; keeping the previous bundle", product, problems["bundle"])
            self._set_problems(product, problems)
            return
        if current is None or _identity(candidate) != _identity(current):
            self.bundles[product] = candidate
            self.reloads += 1
            log.info(
                "%s: serving policy %s, snapshot %s, champion %s, challenger %s",
                product,
                candidate.policy.policy_version,
                candidate.snapshot.snapshot_id,
                candidate.champion.label,
                candidate.challenger.label if candidate.challenger else None,
            )
        self._set_problems(product, problems)

    def _store_name(self) -> str:
        where = self.settings.online_store
        if where == "embedded":
            return f"embedded store under {self.settings.serving}"
        return f"online store {redacted(where)}"

    def _safe_version(self, name: str, alias: str, problems: dict[str, str]) -> str | None:
        try:
            return self.loaders.model_version(name, alias)
        except Exception as exc:
            problems["registry"] = f"model registry unavailable: {exc}"
            return None

    def _set_problems(self, product: str, problems: dict[str, str]) -> None:
        self.problems[product] = problems

    @staticmethod
    def _assemble(
        product: str,
        policy: Policy,
        snapshot: SnapshotLike,
        champion: ModelLike,
        challenger: ModelLike | None,
    ) -> ProductBundle:
        for model in (champion, challenger):
            if model is not None and model.feature_set_version != snapshot.fingerprint:
                raise YidaiError(
                    f"{model.name} v{model.version} was trained on feature set version "
                    f"{model.feature_set_version}, the snapshot is {snapshot.fingerprint}"
                )
        columns = list(snapshot.profile_columns())
        position = {c: i for i, c in enumerate(columns)}
        policy_columns: dict[str, int] = {}
        if isinstance(policy, CreditPolicy):
            missing = [f for f in policy.feature_names if f not in position]
            if missing:
                raise YidaiError(f"policy {policy.policy_version} reads unknown features {missing}")
            policy_columns = {f: position[f] for f in policy.feature_names}
        slots = [_slot(m, snapshot) for m in (champion, challenger) if m is not None]
        assert isinstance(policy, CreditPolicy | PaymentPolicy)
        return ProductBundle(
            product=product,
            policy=policy,
            challenger_policy=policy.challenger_policy(),
            snapshot=snapshot,
            champion=slots[0],
            challenger=slots[1] if len(slots) > 1 else None,
            policy_columns=policy_columns,
            vectorizer=RequestVectorizer(snapshot),
        )


def _identity(b: ProductBundle) -> tuple[Any, ...]:
    return (
        b.policy.policy_version,
        id(b.snapshot),
        id(b.champion.model),
        id(b.challenger.model) if b.challenger else None,
    )


RETRY_SECONDS = 30.0


@dataclass(frozen=True)
class LoadFailure:
    """Why an artefact could not be loaded (not retried for ``RETRY_SECONDS``)."""

    message: str
    at: float = field(default_factory=time.monotonic)

    def expired(self) -> bool:
        return time.monotonic() - self.at > RETRY_SECONDS


class NotReady(YidaiError):
    """A product cannot be decided yet (HTTP 503)."""

    reason_code = "NOT_READY"


class StoreUnavailable(NotReady):
    """The online feature store cannot be read: the products that need it wait (HTTP 503)."""

    reason_code = "ONLINE_STORE_UNAVAILABLE"


class LimitsNotLoaded(NotReady):
    """The live merchant limits are not loaded: merchant lines wait (HTTP 503)."""

    reason_code = "LIMITS_NOT_LOADED"
