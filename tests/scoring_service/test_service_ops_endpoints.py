"""Liveness is open; the detailed readiness report and the metrics need an ``ops`` key
(unless ``YIDAI_OPS_ENDPOINTS_REQUIRE_KEY`` is false)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from scoring_service.security import create_key
from yidai.core.settings import Settings

from .conftest import Keys


def test_ops_endpoints_need_an_ops_key_by_default(
    service_settings: Settings, keys: Keys, make_client: Callable[..., TestClient]
) -> None:
    assert service_settings.api_keys_file is not None
    ops, _ = create_key(service_settings.api_keys_file, "monitoring", ["ops"])
    client = make_client(service_settings)

    assert client.get("/healthz").json() == {"status": "ok"}
    bare = client.get("/readyz")
    assert bare.status_code == 200 and bare.json() == {"ready": True, "loading": False}
    without_scope = client.get("/readyz", headers={"X-API-Key": keys.personal_only})
    assert "pid" not in without_scope.json() and "products" not in without_scope.json()
    detailed = client.get("/readyz", headers={"X-API-Key": ops}).json()
    assert detailed["products"]["personal"]["ready"] and isinstance(detailed["pid"], int)

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"X-API-Key": keys.personal_only}).status_code == 403
    metrics = client.get("/metrics", headers={"X-API-Key": ops})
    assert metrics.status_code == 200 and "yidai_product_ready" in metrics.text


def test_ops_endpoints_can_be_configured_open(
    service_settings: Settings, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(service_settings.model_copy(update={"ops_endpoints_require_key": False}))
    assert client.get("/metrics").status_code == 200
    assert "pid" in client.get("/readyz").json()
