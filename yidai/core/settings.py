"""Settings for every Yidai component, read from the environment (prefix ``YIDAI_``).

Read them through :func:`get_settings` only, never at import time.  Every path has an
embedded default under the project-local ``var/`` folder so that the demo needs no setup.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ENV_FILE_VARIABLE = "YIDAI_ENV_FILE"

#: The credit performance window's default (months).  Not the industry's usual 12: the demo
#: simulates 18 months of applications, and a 12-month window would leave only its first 6
#: matured (too few for a training, a calibration and a test window); 6 months leave 12.
DEFAULT_PERFORMANCE_MONTHS = 6
#: Days past due that make a booking bad.  The label is the account reaching them within the
#: performance window (to the day: from a first miss due at least this many days before the
#: window's end), read on the month-end tape row that follows the window's end: every decision
#: has the same exposure, whatever its day of the month.  (Reading only the rows within the
#: window gave a decision on the 1st a month more to default in than one on the 30th.)
BAD_DAYS_PAST_DUE = 90


def _default_home() -> Path:
    return Path.cwd() / "var"


class Settings(BaseSettings):
    """All configuration; each field can be set as ``YIDAI_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="YIDAI_", env_file=".env", extra="ignore")

    home: Path = Field(default_factory=_default_home, description="Root of all local state.")
    landing_dir: Path | None = Field(None, description="Landing zone of daily source extracts.")
    truth_dir: Path | None = Field(
        None, description="Simulator ground truth (never a bank source)."
    )
    warehouse_path: Path | None = Field(None, description="DuckDB warehouse file.")
    serving_dir: Path | None = Field(
        None, description="Published snapshots read by online readers."
    )
    mlflow_tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI; defaults to SQLite under home (or MLFLOW_TRACKING_URI).",
    )
    mlflow_artifact_dir: Path | None = Field(None, description="Local MLflow artifact folder.")
    audit_db_url: str | None = Field(
        None, description="Decision audit store: sqlite:///path or postgresql://..."
    )
    policy_dir: Path | None = Field(None, description="Folder of product policy files.")
    api_keys_file: Path | None = Field(None, description="Hashed API keys of calling modules.")
    service_reload_seconds: float = Field(
        5.0,
        gt=0,
        description="Scoring service: how often to look for new models/snapshots/policies.",
    )
    audit_sqlite_synchronous: str = Field(
        "NORMAL",
        pattern="^(NORMAL|FULL)$",
        description="SQLite audit store: NORMAL (WAL; durable against process crashes) or FULL "
        "(also against power loss, one fsync per decision).",
    )
    ops_endpoints_require_key: bool = Field(
        True,
        description="Scoring service: /metrics and the detailed /readyz report (versions, "
        "process id, problems) need a key with the `ops` scope; without one /readyz answers "
        "only ready or not (status 200 / 503). /healthz is always open.",
    )
    max_body_bytes: int = Field(
        65_536,
        gt=0,
        description="Scoring service: largest request body accepted (larger: 413, unread).",
    )
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Scoring service: a connection must send a request's headers within this "
        "time (slow or idle partial requests are closed).",
    )
    body_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Scoring service: a request's body must arrive within this time (408).",
    )
    max_connections: int = Field(
        1024,
        gt=0,
        description="Scoring service: open connections per worker; beyond it, new requests "
        "get 503 at once.",
    )
    audit_hash_key: SecretStr | None = Field(
        None,
        min_length=16,
        description="Secret key of the audit store's request hashes (HMAC-SHA256): set it in "
        "production from a secret store, the same on every replica; unset, a random key is "
        "created once in audit_hash_key_file.",
    )
    audit_hash_key_previous: SecretStr | None = Field(
        None,
        min_length=16,
        description="The audit hash key before the last rotation: hashes stored under it "
        "still match, so retries across the rotation replay; unset it once the callers' "
        "retry window has passed.",
    )
    audit_hash_key_file: Path | None = Field(
        None,
        description="Where the generated audit hash key is kept when audit_hash_key is unset "
        "(0600; default <home>/service/audit_hash.key).",
    )
    # Online feature store (issue 20): where the scoring service reads published snapshots.
    online_store: str = Field(
        "embedded",
        pattern=r"^(embedded|(redis|rediss|unix)://.*)$",
        description="Online feature store: 'embedded' (the published snapshot folders, "
        "read in place and shared by the workers) or a redis:// / rediss:// URL.",
    )
    online_store_timeout_seconds: float = Field(
        0.5,
        gt=0,
        description="Redis online store: connect and read timeout; past it the products "
        "that need the store answer 503 (no decision on missing features).",
    )
    audit_sqlite_wal_limit_mb: float = Field(
        64.0,
        gt=0,
        description="SQLite audit store: once its write-ahead log holds more than this, the "
        "background checkpointer restarts it (the file is cut back to this size), so it stays "
        "bounded under load.",
    )
    api_key_default_expiry_days: int = Field(
        365,
        ge=1,
        description="yidai keys create: days until a new API key expires unless "
        "--expires-in-days or --no-expiry is given.",
    )
    seed: int = 42
    # Credit performance window (issue 18, one horizon): the labels, the simulator's truth
    # (`yidai simulate` passes it on) and the policy simulator all read this one setting.
    performance_months: int = Field(
        DEFAULT_PERFORMANCE_MONTHS,
        ge=4,
        description="Credit performance window: a booking is bad if its account reaches 90+ "
        "days past due within this many months (the label, the simulator's truth and the "
        "policy simulator's outcomes); only bookings at least this old are matured.",
    )
    fraud_label_delay_days: int | None = Field(
        None,
        ge=0,
        description="Fraud reports are taken as complete this many days after a payment; "
        "unset: measured on the data, as the delay by which YIDAI_FRAUD_LABEL_DELAY_SHARE of "
        "the reports have arrived.",
    )
    fraud_label_delay_share: float = Field(
        0.9,
        gt=0,
        lt=1,
        description="Share of fraud reports that must have arrived for the measured label delay.",
    )
    # Hyperparameter search (issue 18, models.tuning): off unless asked for.
    tune_trials: int = Field(
        0,
        ge=0,
        description="Optuna trials of the hyperparameter search on rolling out-of-time folds "
        "before each training (0: no search, the defaults); `yidai train --tune-trials N`.",
    )
    ingest_max_lateness_days: int = Field(
        365,
        ge=0,
        description="Ingestion quarantines event rows whose event time is more than this many "
        "days before their delivery day (e.g. a 1900-01-01 placeholder).",
    )
    extra_feature_sets: str = Field(
        "",
        description="Comma-separated feature sets to keep building and publishing besides "
        "the ones the models train on (e.g. personal_credit_v1 while a champion trained on it "
        "is still served during an upgrade).",
    )
    limits_max_change_share: float = Field(
        0.2,
        gt=0,
        le=1,
        description="Limit refresh circuit breaker: the largest share of the merchant book "
        "(lines in force before the run) one refresh may cut, raise, freeze, unfreeze or close; "
        "past it nothing is published unless `yidai limits refresh --force --reason` "
        "(see yidai.jobs.limits.breaker).",
    )
    # --- revolving book liquidity (issue 16) ---
    liquidity_drawn_share_alert: float = Field(
        0.05,
        gt=0,
        le=1,
        description="Monitoring alert: a day's drawdowns above this share of the undrawn "
        "commitment of the revolving lines (merchant and SME) raise a liquidity alert "
        "(yidai.jobs.monitoring.check_liquidity).",
    )

    # --- Batch engine (issue 19): DuckDB embedded (default) or Apache Spark over the lake ---
    engine: str = Field(
        "duckdb",
        pattern="^(duckdb|spark)$",
        description="Batch engine of ingestion, feature builds, training sets and the limit "
        "refresh: duckdb (one embedded warehouse file) or spark (Parquet lake, any cluster).",
    )
    lake_dir: str | None = Field(
        None,
        description="Spark engine: root of the Parquet lake (<source>/event_date=YYYY-MM-DD/); "
        "a local path (default <home>/lake).",
    )
    spark_master: str = Field(
        "local[2]",
        description="Spark engine: master URL of the classic session (local[N], spark://host:7077, "
        "yarn, k8s://...); ignored when spark_remote is set.",
    )
    spark_remote: str | None = Field(
        None, description="Spark engine: a Spark Connect URL (sc://host:15002) to run on."
    )
    spark_driver_memory: str = Field(
        "2g", description="Spark engine: driver memory of a local/classic session."
    )
    spark_shuffle_partitions: int = Field(
        8, ge=1, description="Spark engine: spark.sql.shuffle.partitions."
    )
    spark_pool_slots: int = Field(
        8,
        ge=1,
        description="Spark engine: slots of the Airflow pool duckdb_warehouse (tasks that send "
        "work to the cluster at once); the DuckDB engine's pool has one slot.",
    )
    # --- end batch engine ---

    # --- operable pipelines (issue 21): the DAGs' landing sensor, monitoring freshness,
    # failure alerts (optional notifier, off by default) and the local log server.
    landing_daily_sources: str = Field(
        "pos_transactions,payments,mall_orders",
        description="Sources that land a partition every day: ingest_daily's sensor waits for "
        "all of them (comma-separated contract names).",
    )
    landing_wait_timeout_seconds: float = Field(
        6 * 3600.0,
        gt=0,
        description="ingest_daily: how long the sensor waits for the day's landing partitions "
        "before failing (no retry) naming the missing sources.",
    )
    landing_wait_poke_seconds: float = Field(
        60.0, gt=0, description="ingest_daily: how often the sensor looks for them."
    )
    monitoring_max_staleness_days: int = Field(
        3,
        ge=0,
        description="monitoring_daily fails when the newest ingested event day is older than "
        "this many days before the as-of day.",
    )
    alert_webhook_url: SecretStr | None = Field(
        None,
        description="Failure alerts: POST a JSON message to this URL (off when unset).",
    )
    alert_smtp_host: str | None = Field(
        None, description="Failure alerts by e-mail: SMTP server (off when unset)."
    )
    alert_smtp_port: int = Field(587, gt=0, description="Failure alerts: SMTP port.")
    alert_smtp_starttls: bool = Field(True, description="Failure alerts: use STARTTLS.")
    alert_smtp_user: str | None = Field(None, description="Failure alerts: SMTP login.")
    alert_smtp_password: SecretStr | None = Field(
        None, description="Failure alerts: SMTP password (from the secret store)."
    )
    alert_email_from: str | None = Field(None, description="Failure alerts: sender address.")
    alert_email_to: str = Field(
        "", description="Failure alerts: comma-separated recipient addresses."
    )
    alert_timeout_seconds: float = Field(
        10.0, gt=0, description="Failure alerts: network timeout of one notification."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the environment, then the env file: ``$YIDAI_ENV_FILE`` if set
        (empty: none, as the test suite sets it), else ``.env`` in the working directory."""
        env_file = os.environ.get(ENV_FILE_VARIABLE, ".env") or None
        dotenv = DotEnvSettingsSource(settings_cls, env_file=env_file)
        return init_settings, env_settings, dotenv, file_secret_settings

    def model_post_init(self, __context: object) -> None:
        home = self.home
        if self.landing_dir is None:
            self.landing_dir = home / "landing"
        if self.truth_dir is None:
            self.truth_dir = home / "truth"
        if self.warehouse_path is None:
            self.warehouse_path = home / "warehouse" / "yidai.duckdb"
        if self.serving_dir is None:
            self.serving_dir = home / "serving"
        if self.mlflow_artifact_dir is None:
            self.mlflow_artifact_dir = home / "mlflow" / "artifacts"
        if self.mlflow_tracking_uri is None:
            self.mlflow_tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or (
                f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
            )
        if self.audit_db_url is None:
            self.audit_db_url = f"sqlite:///{home / 'audit' / 'decisions.db'}"
        if self.policy_dir is None:
            self.policy_dir = Path(__file__).resolve().parents[1] / "policies"
        if self.api_keys_file is None:
            self.api_keys_file = home / "service" / "api_keys.json"
        if self.lake_dir is None:
            self.lake_dir = str(home / "lake")
        if self.audit_hash_key_file is None:
            self.audit_hash_key_file = home / "service" / "audit_hash.key"

    # Typed accessors so callers need no ``assert x is not None``.
    @property
    def landing(self) -> Path:
        assert self.landing_dir is not None
        return self.landing_dir

    @property
    def truth(self) -> Path:
        assert self.truth_dir is not None
        return self.truth_dir

    @property
    def warehouse(self) -> Path:
        assert self.warehouse_path is not None
        return self.warehouse_path

    @property
    def serving(self) -> Path:
        assert self.serving_dir is not None
        return self.serving_dir

    @property
    def tracking_uri(self) -> str:
        assert self.mlflow_tracking_uri is not None
        return self.mlflow_tracking_uri

    @property
    def audit_url(self) -> str:
        assert self.audit_db_url is not None
        return self.audit_db_url

    @property
    def lake(self) -> Path:
        assert self.lake_dir is not None
        return Path(self.lake_dir)

    @property
    def policies(self) -> Path:
        assert self.policy_dir is not None
        return self.policy_dir


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


def reset_settings_cache() -> None:
    """Forget cached settings (tests that change ``YIDAI_*`` variables call this)."""
    get_settings.cache_clear()
