"""A ``yidai serve`` worker stays lean: the registry read without MLflow, no scikit-learn.

The service reads the embedded MLflow store (SQLite) directly
(``models.registry.LocalRegistryReader``); these tests hold its answers to MLflow's own for
every registered model, and run the real worker factory (``serving_app``) in a fresh
process: it decides, and neither MLflow nor scikit-learn was imported.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.registry import LocalRegistryReader, load_model, tracking_client
from scoring_service.security import SCOPES, create_key
from tests.support.sandbox import Sandbox, service_env
from yidai.core.errors import YidaiError
from yidai.core.settings import Settings

from .conftest import POLICIES, settings_at

ROOT = Path(__file__).resolve().parents[2]


def test_local_registry_reader_answers_as_mlflow_does(
    sandbox: Sandbox, service_settings: Settings
) -> None:
    reader = LocalRegistryReader.for_settings(service_settings)
    assert reader is not None
    client = tracking_client(service_settings)
    pairs = [
        (m.name, alias)
        for m in client.search_registered_models()
        for alias in ("champion", "challenger")
    ]
    assert len(pairs) >= 8
    found = 0
    rng = np.random.default_rng(3)
    for name, alias in pairs:
        try:
            expected = str(client.get_model_version_by_alias(name, alias).version)
        except Exception:  # MLflow: no such alias
            expected = None
        assert reader.version_of(name, alias) == expected, (name, alias)
        if expected is None:
            with pytest.raises(YidaiError, match="no registered model"):
                reader.load(name, alias)
            continue
        found += 1
        light = reader.load(name, alias)
        full = load_model(name, alias, settings=service_settings)
        assert (light.version, light.run_id, light.feature_names) == (
            full.version,
            full.run_id,
            full.feature_names,
        )
        assert light.metadata == full.metadata
        X = rng.normal(size=(5, len(full.feature_names)))
        np.testing.assert_array_equal(light.predict_pd(X), full.predict_pd(X))
        with pytest.raises(YidaiError, match="refusing to serve it"):
            reader.load(name, alias, expected_feature_set_version="another")
    assert found >= 5  # a champion per product, a challenger for personal credit
    elsewhere = Settings(home=service_settings.home, mlflow_tracking_uri="http://127.0.0.1:9")
    assert LocalRegistryReader.for_settings(elsewhere) is None  # a server: read via MLflow


WORKER = r"""
import json, sys
from fastapi.testclient import TestClient
from scoring_service.main import serving_app

key, customer, payer, merchant, sme = sys.argv[1:6]
with TestClient(serving_app()) as client:
    import time
    deadline = time.monotonic() + 120
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz", headers={"X-API-Key": key}).text
        time.sleep(0.2)
    h = {"X-API-Key": key}
    credit = client.post("/v1/decisions/personal-credit",
                         json={"customer_id": customer, "requested_amount": 3000.0}, headers=h)
    pay = client.post("/v1/payments/risk", json={"payer_id": payer, "amount": 120.0,
                      "channel": "app", "ts": "2026-07-01T10:00:00"}, headers=h)
    line = client.post("/v1/decisions/merchant-credit",
                       json={"merchant_id": merchant, "requested_amount": 50000.0}, headers=h)
    sme_line = client.post("/v1/decisions/sme-credit",
                           json={"sme_id": sme, "requested_amount": 100000.0}, headers=h)
    print(json.dumps({"credit": credit.status_code, "pay": pay.status_code,
                      "merchant": line.status_code, "sme": sme_line.status_code,
                      "pandas": "pandas" in sys.modules, "duckdb": "duckdb" in sys.modules,
                      "mlflow": "mlflow" in sys.modules, "lightgbm": "lightgbm" in sys.modules,
                      "sklearn": sys.modules.get("sklearn") is not None,
                      "sqlalchemy": "sqlalchemy" in sys.modules}))
"""


def test_serving_worker_decides_without_mlflow_scikit_learn_pandas_or_sqlalchemy(
    sandbox: Sandbox, sandbox_home: Path, tmp_path: Path
) -> None:
    shutil.copytree(POLICIES, tmp_path / "policies")
    settings = settings_at(sandbox_home, tmp_path)
    assert settings.api_keys_file is not None
    key, _ = create_key(settings.api_keys_file, "ops_console", list(SCOPES))
    env = service_env(settings, tmp_path / "audit_hash.key")
    args = [key, *(sandbox.entities[p][0] for p in ("personal", "payment", "merchant", "sme"))]
    done = subprocess.run(
        [sys.executable, "-c", WORKER, *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {
        "credit": 200,
        "pay": 200,
        "merchant": 200,
        "sme": 200,
        # the online path runs on NumPy rows: pandas (0.8 s of a start) and DuckDB are for
        # the batch side and publishing only
        "pandas": False,
        "duckdb": False,
        "mlflow": False,
        "lightgbm": True,
        "sklearn": False,
        "sqlalchemy": False,  # the SQLite audit store needs no SQLAlchemy (PostgreSQL only)
    }, report
