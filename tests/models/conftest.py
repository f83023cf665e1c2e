"""Shared fixtures for the models tests: seeded synthetic data with a known logistic truth
and one real MLflow SQLite store per test session (tests use importlib mode, so helpers are
handed out as fixtures)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from yidai.core.settings import Settings

#: Feature -> (monotone sign, coefficient in the true logit).
SYNTHETIC_FEATURES: dict[str, tuple[int, float]] = {
    "customer_dpd_max_180d": (1, 0.9),
    "customer_spend_avg_90d": (-1, -0.8),
    "customer_util_ratio_now": (1, 1.2),
    "customer_bill_ontime_share_180d": (-1, -0.6),
    "customer_noise_level_30d": (0, 0.0),
}


def make_credit_frame(n: int = 6000, seed: int = 7, months: int = 8) -> pd.DataFrame:
    """Applications over ``months`` months with a known true PD and a drawn label."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "application_id": [f"A{i:07d}" for i in range(n)],
            "ts": pd.Timestamp("2025-01-01")
            + pd.to_timedelta(np.sort(rng.uniform(0, months * 30.4, n)), unit="D"),
            "customer_dpd_max_180d": rng.poisson(0.4, n).astype(float),
            "customer_spend_avg_90d": rng.normal(0, 1, n),
            "customer_util_ratio_now": rng.uniform(0, 1, n),
            "customer_bill_ontime_share_180d": rng.normal(0, 1, n),
            "customer_noise_level_30d": rng.normal(0, 1, n),
        }
    )
    logit = -3.0 + sum(
        coef * (frame[name] - (0.5 if name == "customer_util_ratio_now" else 0.0))
        for name, (_, coef) in SYNTHETIC_FEATURES.items()
    )
    frame["true_pd"] = 1.0 / (1.0 + np.exp(-logit))
    frame["label"] = (rng.uniform(size=n) < frame["true_pd"]).astype(int)
    return frame


def feature_columns() -> list[str]:
    return list(SYNTHETIC_FEATURES)


def monotone_hints() -> dict[str, int]:
    return {k: s for k, (s, _) in SYNTHETIC_FEATURES.items() if s}


def settings_for(home: Path) -> Settings:
    """Settings rooted at ``home`` with its own SQLite MLflow store."""
    return Settings(home=home, mlflow_tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")


@pytest.fixture(scope="session")
def make_frame() -> Callable[..., pd.DataFrame]:
    """``make_credit_frame`` as a fixture."""
    return make_credit_frame


@pytest.fixture(scope="session")
def credit_frame() -> pd.DataFrame:
    return make_credit_frame()


@pytest.fixture(scope="session")
def feature_names() -> list[str]:
    return feature_columns()


@pytest.fixture(scope="session")
def monotone() -> dict[str, int]:
    return monotone_hints()


@pytest.fixture(scope="session")
def mlflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A YIDAI home whose MLflow SQLite store is created (migrated) once per session."""
    from models.registry import tracking_client

    home = tmp_path_factory.mktemp("yidai_models_home")
    tracking_client(settings_for(home)).search_experiments(max_results=1)
    return home


@pytest.fixture
def mlflow_settings(mlflow_home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings on the session's MLflow store (MLFLOW_TRACKING_URI of the host ignored)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return settings_for(mlflow_home)
