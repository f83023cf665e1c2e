"""MLflow tracking and registry: connection, logging a trained model, the promotion gate,
and the loader used by the scoring service, the limit refresh and monitoring.

A registered version holds the LightGBM booster (``mlflow.lightgbm`` flavor, with a signature)
and, in the MLmodel ``metadata``, everything needed to serve it: feature set and version,
column order, calibrator, scorecard and reason groups.  Aliases ``champion`` / ``challenger``.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np
import yaml

from models._runtime import import_lightgbm
from models.calibration import Calibrator, calibrator_from_dict
from models.drift import gate_drift
from models.linear import MarginBlend
from models.metrics import PSI_ALERT_THRESHOLD
from models.reasons import FeatureReason, ReasonCoder
from models.scorecard import Scorecard
from yidai.core.errors import YidaiError
from yidai.core.settings import Settings, get_settings

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from models.estimator import GradientBoostedPD

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
METADATA_KEY = "yidai"
EXPERIMENT_PREFIX = "yidai/"


# ---------------------------------------------------------------------------- connection
def _redact(uri: str) -> str:
    """The URI without user:password, for messages and logs."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None and parts.username is None:
        return uri
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _is_local(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def check_tracking_uri(uri: str, timeout_s: float = 3.0) -> None:
    """Fail fast and clearly when the tracking store cannot be reached.

    SQLite: the folder of the database file is created.  HTTP(S): the server's ``/health``
    endpoint must answer within ``timeout_s`` (MLflow's own client would retry for minutes).
    """
    if uri.startswith("sqlite:"):
        db_path = uri.split("sqlite:///", 1)[-1]
        if db_path and db_path != ":memory:":
            try:
                Path(db_path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise YidaiError(f"MLflow SQLite store {uri} is not writable: {exc}") from exc
        return
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s) as resp:
                if resp.status >= 400:
                    raise YidaiError(f"MLflow at {_redact(uri)} answered HTTP {resp.status}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise YidaiError(
                f"MLflow tracking server {_redact(uri)} is unreachable ({exc}); "
                "check MLFLOW_TRACKING_URI / YIDAI_MLFLOW_TRACKING_URI"
            ) from exc


#: Loggers MLflow configures at import with its own stderr handler (not propagating).
MLFLOW_LOGGERS = ("mlflow", "alembic", "huey", "sqlalchemy.engine")


def route_mlflow_logs() -> None:
    """Let MLflow's log records reach the process's own logging, at their own level.

    MLflow gives its loggers a handler on stderr and stops them propagating, so in an
    Airflow task every INFO or WARNING line of MLflow became an ``[error] task.stderr``
    line.  Here they propagate to the root logger instead (Airflow's task log handler, the
    CLI's, pytest's), keeping MLflow's levels (INFO; WARNING for alembic and SQLAlchemy).
    """
    for name in MLFLOW_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True


def tracking_client(settings: Settings | None = None) -> MlflowClient:
    """An MLflow client on the configured tracking URI (also set as MLflow's default)."""
    # heavy: MLflow
    import mlflow
    from mlflow import MlflowClient

    route_mlflow_logs()
    settings = settings or get_settings()
    uri = settings.tracking_uri
    check_tracking_uri(uri)
    # MLflow 3 also exports the URIs as MLFLOW_* variables: keep the process environment
    # as it was, so a later Settings() (another home, another test) does not inherit them.
    exported = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for name, value in exported.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(client: MlflowClient, model_name: str, settings: Settings) -> str:
    """The id of the experiment ``yidai/<model_name>``, created on first use; with a local
    tracking store its artifacts go under ``settings.mlflow_artifact_dir``."""
    name = EXPERIMENT_PREFIX + model_name
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        require_artifacts_in_home(str(experiment.artifact_location), settings)
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return str(experiment.experiment_id)
    location = None
    if _is_local(settings.tracking_uri) and settings.mlflow_artifact_dir is not None:
        folder = Path(settings.mlflow_artifact_dir) / model_name
        folder.mkdir(parents=True, exist_ok=True)
        location = folder.resolve().as_uri()
    return str(client.create_experiment(name, artifact_location=location))


# ---------------------------------------------------------------------------- promotion gate
@dataclass(frozen=True)
class GateConfig:
    """A new version is promoted if ``new >= champion + margin`` on the same OOT window (for
    the primary metric), its train-vs-OOT score PSI is below ``max_score_psi`` and no
    feature drifted between training and the OOT window (feature PSI below
    ``max_feature_psi``, the monitoring alert's threshold); otherwise only by hand
    (``yidai models promote ... --reason``)."""

    margin: float = 0.002
    max_score_psi: float = 0.25
    max_feature_psi: float = PSI_ALERT_THRESHOLD


@dataclass(frozen=True)
class ChampionScore:
    """The current champion, scored on the new model's OOT window (``value`` None if it
    could not be scored there, with ``note`` saying why)."""

    version: str
    value: float | None
    note: str = ""


@dataclass(frozen=True)
class GateDecision:
    """Which alias the new version gets, and why."""

    promote: bool
    reason: str
    alias: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "alias", CHAMPION if self.promote else CHALLENGER)


def promotion_decision(
    *,
    metric: str,
    new_value: float,
    score_psi: float,
    champion: ChampionScore | None,
    gate: GateConfig,
    feature_psi: Mapping[str, float] | None = None,
) -> GateDecision:
    """Apply the promotion gate (see :class:`GateConfig`).  The first version is champion
    (there is nothing to keep serving instead), with any drift named in its reason."""
    found = gate_drift(feature_psi, gate.max_feature_psi)
    drifted, drift = found.drifted, found.describe(gate.max_feature_psi)
    if found.structural:
        drift = "; ".join(p for p in (drift, found.structural_note()) if p)
    if champion is None:
        return GateDecision(
            True, "first registered version" + (f"; WARNING {drift}" if drift else "")
        )
    if drifted:
        return GateDecision(False, f"{drift}; promote by hand after review")
    note = f"; {drift}" if drift else ""
    if math.isnan(score_psi) or score_psi >= gate.max_score_psi:
        return GateDecision(
            False, f"score PSI train vs OOT {score_psi:.3f} >= limit {gate.max_score_psi:.3f}"
        )
    if champion.value is None:
        return GateDecision(
            False,
            f"champion v{champion.version} could not be scored on this OOT window "
            f"({champion.note}); promote manually after review",
        )
    needed = champion.value + gate.margin
    basis = f" ({champion.note})" if champion.note else ""
    if new_value >= needed:
        return GateDecision(
            True,
            f"{metric} {new_value:.4f} beats champion v{champion.version} "
            f"{champion.value:.4f}{basis} by >= {gate.margin:.4f}; score PSI {score_psi:.3f}"
            f"{note}",
        )
    return GateDecision(
        False,
        f"{metric} {new_value:.4f} does not beat champion v{champion.version} "
        f"{champion.value:.4f}{basis} by the margin {gate.margin:.4f}",
    )


# ---------------------------------------------------------------------------- logging
@dataclass
class ModelPackage:
    """Everything one training run logs and registers."""

    name: str
    estimator: GradientBoostedPD
    scorecard: Scorecard
    feature_set: str
    feature_set_version: str
    reason_groups: dict[str, str]
    params: dict[str, Any]
    metrics: dict[str, float]
    primary_metric: str
    artifacts_dir: Path | None = None
    tags: dict[str, str] = field(default_factory=dict)
    extra_metadata: dict[str, Any] = field(default_factory=dict)
    #: MLflow dataset inputs of the run, by context (``training``, ``evaluation``): logged
    #: with their digest and the feature-set version.
    inputs: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: The registered version's description (default: the gate's verdict and the model card).
    description: str = ""

    def serving_metadata(self) -> dict[str, Any]:
        """What a loader needs besides the booster (stored in the MLmodel file)."""
        return {
            "model_name": self.name,
            "feature_set": self.feature_set,
            "feature_set_version": self.feature_set_version,
            "feature_names": list(self.estimator.feature_names_),
            "calibrator": self.estimator.calibrator_.to_dict(),
            "blend": (None if self.estimator.blend_ is None else self.estimator.blend_.to_dict()),
            "scorecard": self.scorecard.to_dict(),
            "reason_groups": dict(self.reason_groups),
            "primary_metric": self.primary_metric,
            **self.extra_metadata,
        }


@dataclass(frozen=True)
class RegisteredVersion:
    """The outcome of :func:`log_and_register`."""

    name: str
    version: str
    run_id: str
    alias: str
    reason: str


def _finite_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}


def log_and_register(
    package: ModelPackage,
    decision: GateDecision,
    *,
    settings: Settings | None = None,
) -> RegisteredVersion:
    """Log one run (params, metrics, artifacts, model with signature) and register it as a
    new version with the alias chosen by the gate.  On any failure the version (and a
    registered model created here) is deleted and the run is marked FAILED."""
    # heavy: MLflow
    import mlflow
    import mlflow.lightgbm
    from mlflow.models import infer_signature

    lgb = import_lightgbm()
    settings = settings or get_settings()
    if package.artifacts_dir is not None and not Path(package.artifacts_dir).is_dir():
        raise YidaiError(f"report folder {package.artifacts_dir} does not exist")
    client = tracking_client(settings)
    experiment_id = ensure_experiment(client, package.name, settings)
    estimator = package.estimator
    # heavy: pandas, for the model's signature at registration
    import pandas as pd

    example = pd.DataFrame(
        np.zeros((2, len(estimator.feature_names_))), columns=estimator.feature_names_
    )
    signature = infer_signature(example, np.zeros(2))

    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{package.name}") as run:
        run_id = run.info.run_id
        mlflow.log_params({k: str(v)[:500] for k, v in package.params.items()})
        mlflow.log_metrics(_finite_metrics(package.metrics))
        mlflow.set_tags(
            {
                **package.tags,
                "yidai.model": package.name,
                "yidai.feature_set": package.feature_set,
                "yidai.feature_set_version": package.feature_set_version,
                "yidai.gate.alias": decision.alias,
                "yidai.gate.reason": decision.reason,
            }
        )
        mlflow.log_dict({"feature_names": list(estimator.feature_names_)}, "feature_columns.json")
        _log_inputs(package)
        if package.artifacts_dir is not None:
            mlflow.log_artifacts(str(package.artifacts_dir), artifact_path="report")
        info = mlflow.lightgbm.log_model(
            estimator.booster_,
            name="model",
            signature=signature,
            metadata={METADATA_KEY: package.serving_metadata()},
            pip_requirements=[f"lightgbm=={lgb.__version__}"],
        )
        version = register_version(
            client,
            package.name,
            info,
            run_id=run_id,
            alias=decision.alias,
            model_description=f"Yidai {package.name} (LightGBM, calibrated)",
            description=_version_description(package, decision),
            tags={
                "feature_set": package.feature_set,
                "feature_set_version": package.feature_set_version,
                "gate_reason": decision.reason[:5000],
                **{
                    f"metric.{k}": f"{v:.6g}"
                    for k, v in _finite_metrics(package.metrics).items()
                    if k.startswith("oot_")
                },
            },
        )
    log.info("registered %s v%s as %s: %s", package.name, version, decision.alias, decision.reason)
    return RegisteredVersion(package.name, version, run_id, decision.alias, decision.reason)


#: MLflow's SQL store keeps at most this many characters of a version's description.
MAX_DESCRIPTION = 5000


def _version_description(package: ModelPackage, decision: GateDecision) -> str:
    """The gate's verdict, then the model card (what the model is, its data and metrics)."""
    if package.description:
        return package.description[:MAX_DESCRIPTION]
    card_file = None if package.artifacts_dir is None else package.artifacts_dir / "model_card.md"
    card = card_file.read_text(encoding="utf-8") if card_file and card_file.exists() else ""
    text = f"Gate: {decision.alias} - {decision.reason}\n\n{card}"
    return (
        text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 20] + "\n\n(truncated)"
    )


def schema_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` from which MLflow infers the schema it would infer from the whole
    frame: the first row and each column's first missing value (a column's type follows its
    dtype; it is ``required`` when it has no missing value)."""
    if frame.empty:
        return frame
    missing = frame.isna().to_numpy()
    first_missing = missing.argmax(axis=0)[missing.any(axis=0)]
    return frame.iloc[sorted({0, *first_missing.tolist()})]


def _log_inputs(package: ModelPackage) -> None:
    """Log each input frame as an MLflow dataset (digest, schema, feature-set version)."""
    # heavy: MLflow
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    for context, frame in package.inputs.items():
        # integer columns as floats: MLflow's schema would warn that they cannot hold NaN
        frame = frame.astype({c: "float64" for c in frame.select_dtypes("integer").columns})
        targets = "label" if "label" in frame.columns else None
        dataset = from_pandas(
            frame,
            name=f"{package.feature_set}@{package.feature_set_version[:12]}:{context}",
            targets=targets,
        )
        # MLflow infers the schema cell by cell in Python (11 s for the fraud model's 114k
        # rows x 52 features); the same schema from the rows that decide it
        dataset.schema = from_pandas(schema_rows(frame), targets=targets).schema
        mlflow.log_input(
            dataset,
            context=context,
            tags={
                "feature_set": package.feature_set,
                "feature_set_version": package.feature_set_version,
                "rows": str(len(frame)),
            },
        )


def register_version(
    client: MlflowClient,
    name: str,
    info: Any,
    *,
    run_id: str,
    alias: str,
    model_description: str,
    description: str = "",
    tags: Mapping[str, str] | None = None,
) -> str:
    """Register the logged model ``info`` as a new version of ``name`` (the registered model
    is created with ``model_description`` if new) and point ``alias`` at it; returns the
    version.  On any failure the version, and a registered model created here, are removed."""
    # heavy: MLflow
    from mlflow.exceptions import MlflowException

    created, version = False, None
    try:
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name, description=model_description)
            created = True
        model_version = client.create_model_version(
            name,
            source=info.model_uri,
            run_id=run_id,
            model_id=info.model_id,
            description=description,
            tags=dict(tags or {}),
        )
        version = str(model_version.version)
        client.set_registered_model_alias(name, alias, version)
    except BaseException:
        undo_registration(client, name, version, created)
        raise
    return version


def undo_registration(
    client: MlflowClient, name: str, version: str | None, created_model: bool
) -> None:
    """Remove a half-registered version (and the registered model if it was created here)."""
    try:
        if version is not None:
            client.delete_model_version(name, version)
        if created_model:
            client.delete_registered_model(name)
    except Exception:  # best effort while another error propagates
        log.exception("could not clean up the half-registered %s v%s", name, version)


def promote(name: str, version: str, *, reason: str, settings: Settings | None = None) -> None:
    """Manually make ``version`` the champion (the previous champion becomes challenger)."""
    # heavy: MLflow
    from mlflow.exceptions import MlflowException

    if not reason.strip():
        raise YidaiError("a manual promotion needs a reason")
    client = tracking_client(settings)
    try:
        found = client.get_model_version(name, str(version))
    except MlflowException:
        raise YidaiError(
            f"{name} has no version {version!r} (see: yidai models list --model {name})"
        ) from None
    previous = version_by_alias(client, name, CHAMPION, missing_ok=True)
    client.set_registered_model_alias(name, CHAMPION, version)
    _record_manual_promotion(client, found, reason)
    if previous is not None and str(previous.version) != str(version):
        client.set_registered_model_alias(name, CHALLENGER, str(previous.version))


def _record_manual_promotion(client: MlflowClient, version: Any, reason: str) -> None:
    """Record a promotion by hand in MLflow: the version's ``gate_reason`` becomes
    ``manual: <reason>`` (the gate's own verdict kept as ``gate_reason_before_manual``), and
    the training run gets the tag ``yidai.gate.manual_reason``."""
    before = str((version.tags or {}).get("gate_reason", ""))
    if before and not before.startswith("manual: "):
        client.set_model_version_tag(
            version.name, version.version, "gate_reason_before_manual", before[:5000]
        )
    client.set_model_version_tag(version.name, version.version, "gate_reason", f"manual: {reason}")
    if getattr(version, "run_id", None):
        client.set_tag(version.run_id, "yidai.gate.manual_reason", reason[:5000])


def version_by_alias(
    client: MlflowClient, name: str, alias: str, *, missing_ok: bool = False
) -> Any:
    # heavy: MLflow
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if missing_ok:
            return None
        raise YidaiError(
            f"no registered model {name!r} with alias {alias!r}; train it first "
            f"(yidai train --model {name})"
        ) from exc


@dataclass(frozen=True)
class VersionSummary:
    """One registered version, as ``yidai models list`` shows it."""

    name: str
    version: str
    aliases: tuple[str, ...]
    created: pd.Timestamp
    feature_set: str
    metrics: dict[str, float]
    gate_reason: str


def list_versions(
    names: Sequence[str], *, latest: int = 3, settings: Settings | None = None
) -> list[VersionSummary]:
    """The ``latest`` versions of each registered model (newest first) with their aliases,
    the run's metrics and the gate's reason; a model never registered is left out."""
    # heavy: MLflow
    from mlflow.exceptions import MlflowException

    if latest < 1:
        raise YidaiError(f"latest must be >= 1, got {latest}")
    client = tracking_client(settings)
    out: list[VersionSummary] = []
    for name in names:
        try:
            aliases = client.get_registered_model(name).aliases or {}
        except MlflowException:
            continue
        by_version: dict[str, list[str]] = {}
        for alias, version in aliases.items():
            by_version.setdefault(str(version), []).append(alias)
        versions = client.search_model_versions(f"name = '{name}'")
        for mv in sorted(versions, key=lambda v: int(v.version), reverse=True)[:latest]:
            run = client.get_run(mv.run_id) if mv.run_id else None
            out.append(
                VersionSummary(
                    name=name,
                    version=str(mv.version),
                    aliases=tuple(sorted(by_version.get(str(mv.version), []))),
                    created=_timestamp_ms(mv.creation_timestamp),
                    feature_set=str((mv.tags or {}).get("feature_set", "")),
                    metrics=dict(run.data.metrics) if run else {},
                    gate_reason=str((mv.tags or {}).get("gate_reason", "")),
                )
            )
    return out


# ---------------------------------------------------------------------------- loading
class LoadedModel:
    """A registered version ready to score: calibrated PD from a numpy matrix whose columns
    are ``feature_names`` in order (the booster predicts with one thread)."""

    def __init__(
        self,
        *,
        name: str,
        version: str,
        alias: str | None,
        run_id: str,
        booster: Any,
        metadata: Mapping[str, Any],
    ) -> None:
        self.name = name
        self.version = version
        self.alias = alias
        self.run_id = run_id
        self.booster = booster
        self.metadata = dict(metadata)
        self.kind: str = str(metadata.get("kind", "credit"))
        self.feature_set: str = str(metadata["feature_set"])
        self.feature_set_version: str = str(metadata["feature_set_version"])
        self.feature_names: list[str] = [str(f) for f in metadata["feature_names"]]
        self.calibrator: Calibrator = calibrator_from_dict(metadata["calibrator"])
        blend = metadata.get("blend")  # absent from versions registered before issue 18's
        self.blend: MarginBlend | None = None if not blend else MarginBlend.from_dict(blend)
        self.scorecard = Scorecard.from_dict(metadata["scorecard"])
        self.reason_coder = ReasonCoder(self.feature_names, metadata.get("reason_groups") or {})
        self._n_features = len(self.feature_names)

    def __repr__(self) -> str:
        return (
            f"LoadedModel({self.name} v{self.version} alias={self.alias} "
            f"feature_set={self.feature_set}@{self.feature_set_version})"
        )

    def _matrix(self, X: np.ndarray | pd.DataFrame) -> np.ndarray:
        if _is_frame(X):
            missing = [c for c in self.feature_names if c not in X.columns]
            if missing:
                raise YidaiError(f"{self.name}: input lacks features {missing}")
            X = X[self.feature_names].to_numpy(dtype=np.float64, na_value=np.nan)
        matrix = np.asarray(X, dtype=np.float64)
        if matrix.ndim == 1:
            matrix = matrix.reshape(1, -1)
        if matrix.shape[1] != self._n_features:
            raise YidaiError(
                f"{self.name} v{self.version} needs {self._n_features} features "
                f"({self.feature_set}), got {matrix.shape[1]} columns"
            )
        return matrix

    def margin(self, X: np.ndarray | pd.DataFrame) -> np.ndarray:
        """The margin the calibrator maps: the booster's, blended with the linear part's."""
        matrix = self._matrix(X)
        trees = np.asarray(self.booster.predict(matrix, raw_score=True, num_threads=1))
        return self.blended_margin(trees, matrix)

    def blended_margin(self, trees_margin: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """``trees_margin`` (the booster's, e.g. from a fast single-row path) of the rows
        ``matrix``, with the linear part when the model has one (:class:`MarginBlend`)."""
        return trees_margin if self.blend is None else self.blend.combine(trees_margin, matrix)

    def blended_contributions(self, trees_contrib: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        """Per-feature contributions (the booster's TreeSHAP without its bias column), with
        the linear part's when the model has one."""
        if self.blend is None:
            return trees_contrib
        return self.blend.contributions(trees_contrib, matrix)

    def contributions(self, X: np.ndarray | pd.DataFrame) -> np.ndarray:
        """Per-feature contributions to :meth:`margin`, shape ``(n, n_features)``."""
        matrix = self._matrix(X)
        contrib = np.asarray(self.booster.predict(matrix, pred_contrib=True, num_threads=1))
        return self.blended_contributions(contrib[:, :-1], matrix)

    def predict_pd(self, X: np.ndarray | pd.DataFrame) -> np.ndarray:
        """Calibrated PD (or fraud probability) per row, shape ``(n,)`` (as
        ``GradientBoostedPD.predict_pd``; no sklearn-style ``predict_proba`` here)."""
        return self.calibrator.predict(self.margin(X))

    def score_points(self, pd_: np.ndarray | float) -> np.ndarray:
        """Scorecard points of PDs (higher = safer)."""
        return self.scorecard.points(pd_)

    def grade(self, pd_: np.ndarray | float) -> np.ndarray:
        """Risk grade (``A`` best) of PDs."""
        return self.scorecard.grade(pd_)

    def reason_codes(
        self, X: np.ndarray | pd.DataFrame, top_k: int = 3
    ) -> list[list[FeatureReason]]:
        """Top adverse reasons per row from the features' contributions."""
        matrix = self._matrix(X)
        return self.reason_coder.reasons(self.contributions(matrix), top_k=top_k, values=matrix)


def load_model(
    name: str,
    alias: str = CHAMPION,
    *,
    expected_feature_set_version: str | None = None,
    settings: Settings | None = None,
) -> LoadedModel:
    """Load the version of ``name`` that ``alias`` points to.

    Refuses (YidaiError) if the tracking store is unreachable, the alias does not exist, or
    ``expected_feature_set_version`` (the online snapshot's) differs from the model's.
    """
    # heavy: MLflow
    import mlflow.artifacts

    client = tracking_client(settings)
    model_version = version_by_alias(client, name, alias)
    version = str(model_version.version)
    source = str(model_version.source or "")
    model_id = getattr(model_version, "model_id", None) or (
        source.removeprefix("models:/") if source.startswith("models:/m-") else None
    )
    if model_id:
        location = client.get_logged_model(model_id).artifact_location
        require_artifacts_in_home(str(location), settings or get_settings())
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version}", tracking_uri=client.tracking_uri
        )
    )
    return load_model_folder(
        local,
        name=name,
        version=version,
        alias=alias,
        run_id=str(model_version.run_id),
        expected_feature_set_version=expected_feature_set_version,
    )


def load_model_folder(
    folder: Path,
    *,
    name: str,
    version: str,
    alias: str | None,
    run_id: str,
    expected_feature_set_version: str | None = None,
) -> LoadedModel:
    """A registered version from its local artifact folder (``MLmodel`` and the booster
    file), read without MLflow; refuses a model Yidai did not register or one trained on
    another feature-set version than ``expected_feature_set_version``."""
    lgb = import_lightgbm()
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text()) or {}
    metadata = (mlmodel.get("metadata") or {}).get(METADATA_KEY)
    if not metadata:
        raise YidaiError(f"{name} v{version} was not registered by Yidai (no serving metadata)")
    if (
        expected_feature_set_version is not None
        and str(metadata["feature_set_version"]) != expected_feature_set_version
    ):
        raise YidaiError(
            f"{name} v{version} ({alias}) was trained on feature set "
            f"{metadata['feature_set']} version {metadata['feature_set_version']}, but the "
            f"online snapshot has version {expected_feature_set_version}; refusing to serve it"
        )
    booster_file = folder / mlmodel["flavors"]["lightgbm"]["data"]
    booster = lgb.Booster(model_file=str(booster_file))
    return LoadedModel(
        name=name, version=version, alias=alias, run_id=run_id, booster=booster, metadata=metadata
    )


class LocalRegistryReader:
    """The registry as the scoring service reads it, without importing MLflow (about 90 MB
    per worker): aliases and artifact folders read straight from the embedded MLflow store
    (SQLite, read-only).  :meth:`for_settings` gives None for any other store (a tracking
    server), which the service then reads through MLflow; a test checks every answer
    against MLflow's own client (the store's schema is MLflow's, see ``ARTIFACT_COLUMNS``)."""

    def __init__(self, database: Path, settings: Settings) -> None:
        self.database = database
        self.settings = settings

    @classmethod
    def for_settings(cls, settings: Settings) -> LocalRegistryReader | None:
        uri = settings.tracking_uri
        if not uri.startswith("sqlite:///"):
            return None
        return cls(Path(uri[len("sqlite:///") :]), settings)

    def _version(self, name: str, alias: str) -> tuple[str, str, str] | None:
        """(version, artifact location, run id) of the version ``alias`` points to."""
        if not self.database.exists():
            raise YidaiError(f"the model registry {self.database} does not exist")
        con = sqlite3.connect(f"{self.database.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = con.execute(
                "SELECT v.version, v.storage_location, v.run_id "
                "FROM registered_model_aliases a JOIN model_versions v "
                "ON v.name = a.name AND v.version = a.version "
                "WHERE a.name = ? AND a.alias = ?",
                (name, alias),
            ).fetchall()
        finally:
            con.close()
        if len(rows) > 1:
            raise YidaiError(f"{name}@{alias}: {len(rows)} versions in {self.database}")
        return None if not rows else (str(rows[0][0]), str(rows[0][1] or ""), str(rows[0][2]))

    def version_of(self, name: str, alias: str) -> str | None:
        """The version ``alias`` points to, or None."""
        found = self._version(name, alias)
        return None if found is None else found[0]

    def load(
        self, name: str, alias: str, expected_feature_set_version: str | None = None
    ) -> LoadedModel:
        """As :func:`load_model` (same checks), from the version's local artifact folder."""
        found = self._version(name, alias)
        if found is None:
            raise YidaiError(
                f"no registered model {name!r} with alias {alias!r}; train it first "
                f"(yidai train --model {name})"
            )
        version, location, run_id = found
        folder = _local_artifact_path(location)
        if folder is None:
            raise YidaiError(f"{name} v{version}: artifacts at {location!r} are not local")
        require_artifacts_in_home(location, self.settings)
        return load_model_folder(
            folder,
            name=name,
            version=version,
            alias=alias,
            run_id=run_id,
            expected_feature_set_version=expected_feature_set_version,
        )


def set_run_note(run_id: str, note: str, *, settings: Settings | None = None) -> None:
    """Write ``note`` as the MLflow run's notes (the description shown on the run's page)."""
    tracking_client(settings).set_tag(run_id, "mlflow.note.content", note)


# ---------------------------------------------------------------------------- relocatable homes
#: Columns of MLflow's SQL store that hold absolute artifact locations.
ARTIFACT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
    ("model_versions", "source"),
)


def _local_artifact_path(uri: str) -> Path | None:
    """The folder of a ``file:`` (or plain path) artifact location; None for remote ones."""
    if uri.startswith("file:"):
        return Path(urllib.parse.unquote(urllib.parse.urlsplit(uri).path))
    if "://" in uri or uri.startswith(("models:", "runs:")):
        return None
    return Path(uri)


def require_artifacts_in_home(uri: str, settings: Settings) -> None:
    """Refuse a local artifact location outside the home that holds the MLflow store.

    Only for the embedded store (a SQLite database inside ``YIDAI_HOME``): a home that was
    copied, restored or mounted elsewhere would otherwise write into, or read from, the
    home it was made in.  A store outside the home, or a tracking server, is left alone."""
    uri_store = settings.tracking_uri
    if not uri_store.startswith("sqlite:///"):
        return
    home = Path(os.path.abspath(settings.home))
    database = Path(os.path.abspath(uri_store[len("sqlite:///") :]))
    path = _local_artifact_path(uri)
    if path is None or home not in database.parents:
        return
    path = Path(os.path.abspath(path))
    if path != home and home not in path.parents:
        raise YidaiError(
            f"this home's MLflow store keeps artifacts at {path}, outside the home {home}: "
            f"the home was moved or copied; run `yidai home move OLD_HOME {home}` "
            "(OLD_HOME: where it was made)"
        )


@dataclass(frozen=True)
class RelocationReport:
    """What :func:`relocate_artifacts` rewrote."""

    database: Path
    rows: dict[str, int]
    mlmodel_files: int


def _sqlite_path(uri: str) -> Path:
    if not uri.startswith("sqlite:///"):
        raise YidaiError(
            f"only a local SQLite MLflow store can be relocated, not {_redact(uri)} "
            "(a tracking server keeps its own artifact store)"
        )
    return Path(uri[len("sqlite:///") :])


def relocate_artifacts(old_home: Path, settings: Settings) -> RelocationReport:
    """Point this home's MLflow store and ``MLmodel`` files from ``old_home`` at itself.

    Every artifact location under ``old_home`` (as ``file://`` URI or plain path) in the
    tracking database (:data:`ARTIFACT_COLUMNS`) and every ``MLmodel`` file under the
    artifact folder is rewritten to the same place under ``settings.home``, in one SQLite
    transaction.  ``old_home`` is only a prefix: it is never opened.  Idempotent.
    """
    old_root = Path(os.path.abspath(old_home))
    new_root = Path(os.path.abspath(settings.home))
    if old_root == new_root:
        raise YidaiError(f"the old and the new home are the same folder: {new_root}")
    database = _sqlite_path(settings.tracking_uri)
    if not database.is_file():
        raise YidaiError(f"no MLflow store at {database}: nothing to relocate")
    pairs = [(old_root.as_uri(), new_root.as_uri()), (str(old_root), str(new_root))]
    rows: dict[str, int] = {}
    con = sqlite3.connect(database, timeout=30)
    try:
        with con:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
            for table, column in ARTIFACT_COLUMNS:
                if table not in tables:
                    continue
                changed = 0
                for old, new in pairs:
                    cursor = con.execute(
                        f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                        f"WHERE substr({column}, 1, ?) = ? AND "
                        f"substr({column}, ? , 1) IN ('/', '')",
                        (new, len(old) + 1, len(old), old, len(old) + 1),
                    )
                    changed += cursor.rowcount
                rows[f"{table}.{column}"] = changed
    finally:
        con.close()
    mlmodels = 0
    artifacts = Path(settings.mlflow_artifact_dir or new_root / "mlflow" / "artifacts")
    for mlmodel in artifacts.rglob("MLmodel"):
        text = mlmodel.read_text(encoding="utf-8")
        updated = text
        for old, new in pairs:
            updated = updated.replace(old + "/", new + "/")
        if updated != text:
            tmp = mlmodel.with_name(".MLmodel.relocating")
            tmp.write_text(updated, encoding="utf-8")
            os.replace(tmp, mlmodel)
            mlmodels += 1
    log.info("relocated MLflow artifacts from %s to %s: %s, %d MLmodel file(s)",
             old_root, new_root, rows, mlmodels)  # fmt: skip
    return RelocationReport(database, rows, mlmodels)


def _timestamp_ms(ms: int) -> pd.Timestamp:
    """A registry timestamp (ms since the epoch) as a UTC ``pd.Timestamp``."""
    # heavy: pandas, for the registry listings (CLI, dashboards), not for scoring
    import pandas as pd

    return pd.Timestamp(ms, unit="ms", tz="UTC")


def _is_frame(X: object) -> TypeGuard[pd.DataFrame]:
    """Whether ``X`` is a pandas DataFrame (it cannot be one while pandas is not loaded: a
    scoring worker passes NumPy rows and never imports it)."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(X, pandas.DataFrame)
