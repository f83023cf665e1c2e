"""A merchant line's limit is never guessed: until the live nightly limits are loaded (or
while they cannot be), merchant drawdowns, repayments and line views answer 503 with why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scoring_service.decide import Caller
from scoring_service.ledger import drawdown, line_view
from scoring_service.resources import NotReady, Resources
from yidai.audit import AuditStore, DecisionRow
from yidai.core import publishing
from yidai.core.settings import Settings
from yidai.jobs.limits.serving import LIMITS_FILE, limits_root

from .conftest import publish_limits

MERCHANT, ACCOUNT = "M-limits-1", "A-limits-1"


@pytest.fixture
def store(tmp_path: Path) -> Any:
    audit = AuditStore(f"sqlite:///{tmp_path / 'audit.db'}")
    audit.record_decision(
        DecisionRow(
            decision_id=ACCOUNT, module="m", idempotency_key=None, request_hash="h",
            product="merchant", entity_id=MERCHANT, outcome="approve", arm="champion",
            model_version="merchant_pd:1", policy_version="p", response={}, record={},
            open_line=(MERCHANT, 11_000.0),
        )
    )  # fmt: skip
    yield audit
    audit.close()


def _draw(resources: Resources, audit: AuditStore, amount: float) -> dict[str, Any]:
    body = {"account_id": ACCOUNT, "amount": amount, "term_months": 3}
    return dict(json.loads(drawdown(resources, audit, body, Caller("m")).json))


def test_no_merchant_drawdown_before_the_live_limits_are_loaded(
    tmp_path: Path, store: AuditStore
) -> None:
    settings = Settings(home=tmp_path, serving_dir=tmp_path / "serving", policy_dir=tmp_path)
    publish_limits(settings.serving, [(MERCHANT, ACCOUNT, 8_500.0, "active")], "v1")
    resources = Resources(settings, products=())
    # Start-up, before the first load: 503 with the reason, not the approval's 11,000.
    with pytest.raises(NotReady, match="merchant limits are still loading"):
        _draw(resources, store, 9_000.0)
    with pytest.raises(NotReady):
        line_view(resources, store, ACCOUNT)
    assert resources.status()["loading"] is True
    resources.refresh()
    assert resources.status()["loading"] is False
    assert resources.status()["merchant_limits"] == {
        "ready": True, "version": "v1", "as_of": "2026-06-30", "problem": None,
    }  # fmt: skip
    refused = _draw(resources, store, 9_000.0)
    assert (refused["status"], refused["credit_limit"]) == ("rejected", 8_500.0)
    assert refused["reason_codes"][0]["code"] == "DD_INSUFFICIENT_LIMIT"
    assert _draw(resources, store, 1_000.0)["status"] == "accepted"


def test_a_live_version_that_fails_to_load_blocks_merchant_drawdowns(
    tmp_path: Path, store: AuditStore
) -> None:
    settings = Settings(home=tmp_path, serving_dir=tmp_path / "serving", policy_dir=tmp_path)
    publish_limits(settings.serving, [(MERCHANT, ACCOUNT, 8_500.0, "frozen")], "v1")
    resources = Resources(settings, products=())
    resources.refresh()
    frozen = _draw(resources, store, 1_000.0)
    assert frozen["reason_codes"][0]["code"] == "DD_LINE_FROZEN"
    # The next night's version is corrupt: the frozen line must not fall back to 11,000,
    # nor to last night's table: the live version is the one the pointer names.
    root = limits_root(settings.serving)
    meta = {"version": "v2", "as_of": "2026-07-01"}
    publishing.write_version(
        root, "v2", meta, lambda tmp: (tmp / LIMITS_FILE).write_bytes(b"not parquet")
    )
    publishing.publish(root, "v2", meta)
    resources.refresh()
    status = resources.status()
    assert status["ready"] is False and status["merchant_limits"]["ready"] is False
    assert "merchant limits v2 failed to load" in status["merchant_limits"]["problem"]
    with pytest.raises(NotReady, match="merchant limits v2 failed to load"):
        _draw(resources, store, 1_000.0)


def test_no_published_limits_is_reported_by_name(tmp_path: Path, store: AuditStore) -> None:
    settings = Settings(home=tmp_path, serving_dir=tmp_path / "serving", policy_dir=tmp_path)
    resources = Resources(settings, products=())
    resources.refresh()
    problem = resources.status()["merchant_limits"]["problem"]
    assert "no merchant limits published" in problem and "yidai limits refresh" in problem
    with pytest.raises(NotReady, match="no merchant limits published"):
        _draw(resources, store, 1.0)
