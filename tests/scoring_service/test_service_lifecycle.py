"""Start before anything exists, pick up new artefacts without restart, survive bad ones."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient

from features.definitions import CREDIT_FEATURE_SETS
from tests.support.sandbox import Sandbox
from yidai.core.settings import Settings

from .conftest import publish_limits, settings_at, wait_until


def _post(client: TestClient, key: str, customer: str) -> Any:
    return client.post(
        "/v1/decisions/personal-credit",
        json={"customer_id": customer, "requested_amount": 500.0},
        headers={"X-API-Key": key},
    )


def test_starts_before_snapshots_exist_then_becomes_ready(
    sandbox: Sandbox,
    sandbox_home: Path,
    tmp_path: Path,
    keys: Any,
    service_settings: Settings,
    make_client: Callable[..., TestClient],
) -> None:
    empty_serving = tmp_path / "empty-serving"
    settings = settings_at(
        sandbox_home,
        tmp_path,
        serving_dir=empty_serving,
        api_keys_file=service_settings.api_keys_file,
    )
    client = make_client(settings, wait_ready=False)
    client.headers["X-API-Key"] = keys.all  # the detailed /readyz (ops scope)
    assert client.get("/healthz").status_code == 200
    wait_until(
        lambda: "snapshot" in client.get("/readyz").json()["products"]["personal"]["problems"],
        what="readiness report",
    )
    report = client.get("/readyz")
    assert report.status_code == 503
    assert f"no feature snapshot {CREDIT_FEATURE_SETS['personal']}" in str(report.json())
    refused = _post(client, keys.all, sandbox.entities["personal"][0])
    assert refused.status_code == 503
    assert "personal decisions are not available yet" in refused.json()["detail"]

    shutil.copytree(sandbox.serving / "features", empty_serving / "features")
    wait_until(
        lambda: client.get("/readyz").json()["products"]["personal"]["ready"],
        what="pick-up of snapshots",
    )
    assert _post(client, keys.all, sandbox.entities["personal"][0]).status_code == 200
    # Every product decides, but without the nightly limits merchant lines cannot be drawn.
    report = client.get("/readyz")
    assert report.status_code == 503 and report.json()["loading"] is False
    assert "no merchant limits published" in report.json()["merchant_limits"]["problem"]
    draw = client.post(
        "/v1/drawdowns",
        json={"account_id": "A-unknown", "amount": 10.0, "term_months": 3},
        headers={"X-API-Key": keys.all},
    )
    assert draw.status_code == 200  # no line at all: rejected, the limits are not needed
    limit = client.get("/v1/merchants/M1/limit", headers={"X-API-Key": keys.all})
    assert limit.status_code == 503 and limit.json()["reason_code"] == "LIMITS_NOT_LOADED"
    publish_limits(empty_serving, [], "v1")
    wait_until(lambda: client.get("/readyz").status_code == 200, what="pick-up of limits")


def test_missing_model_is_reported(
    service_settings: Settings, keys: Any, make_client: Callable[..., TestClient]
) -> None:
    path = service_settings.policies / "merchant.yaml"
    path.write_text(path.read_text().replace("model: merchant_pd", "model: nonexistent_pd"))
    client = make_client(service_settings, wait_ready=False)
    client.headers["X-API-Key"] = keys.all  # the detailed /readyz (ops scope)
    wait_until(
        lambda: client.get("/readyz").json()["products"]["merchant"]["problems"] != {},
        what="problem report",
    )
    problems = client.get("/readyz").json()["products"]["merchant"]["problems"]
    assert "no model 'nonexistent_pd'" in problems["champion"]
    refused = client.post(
        "/v1/decisions/merchant-credit", json={"merchant_id": "M1"}, headers={"X-API-Key": keys.all}
    )
    assert refused.status_code == 503 and "nonexistent_pd" in refused.json()["detail"]


def test_policy_and_model_changes_are_picked_up_without_a_failed_request(
    sandbox: Sandbox, service_settings: Settings, keys: Any, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(service_settings)
    client.headers["X-API-Key"] = keys.all  # the detailed /readyz (ops scope)
    customers = sandbox.entities["personal"][:20]
    statuses: list[int] = []
    seen_policies: set[str] = set()
    seen_models: set[str] = set()
    stop = threading.Event()

    def hammer() -> None:
        i = 0
        while not stop.is_set():
            r = _post(client, keys.all, customers[i % len(customers)])
            statuses.append(r.status_code)
            if r.status_code == 200:
                seen_policies.add(r.json()["policy_version"].split("+")[0])
                if r.json()["arm"] == "champion":
                    seen_models.add(r.json()["model_version"])
            i += 1

    worker = threading.Thread(target=hammer)
    worker.start()
    try:
        path = service_settings.policies / "personal.yaml"
        data = yaml.safe_load(path.read_text())
        data["version"] = "2026.12.0"
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
        wait_until(lambda: "2026.12.0" in seen_policies, what="new policy version")

        path.write_text("product: personal\nversion: broken\ncutoffs: {}\n")
        wait_until(
            lambda: "policy" in client.get("/readyz").json()["products"]["personal"]["problems"],
            what="bad policy reported",
        )
        assert client.get("/readyz").status_code == 200  # still serving the previous one
        before = len(statuses)
        wait_until(lambda: len(statuses) > before + 5, what="more decisions")

        from tests.support.sandbox import train_registered_model

        old = set(seen_models)
        train_registered_model(service_settings, "personal", seed=99)
        wait_until(lambda: bool(seen_models - old), what="new champion picked up")
    finally:
        stop.set()
        worker.join()
    assert statuses and set(statuses) == {200}
    assert "broken" not in seen_policies
    time.sleep(0)
