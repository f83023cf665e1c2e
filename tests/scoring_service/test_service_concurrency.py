"""On PostgreSQL a request waiting for the audit store does not stall the service: while one
drawdown waits for its line's row lock (held by another transaction), the same uvicorn worker
still answers /healthz and records other decisions; the drawdown completes once the lock goes.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
import psycopg

from scoring_service.client import YidaiClient
from tests.support.pg_local import PostgresCluster
from tests.support.sandbox import Sandbox
from yidai.core.settings import Settings

from .conftest import loosen_policy, serving, wait_until

_WAITING_ON_LOCK = (
    "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    " AND query LIKE 'SELECT product, borrower_id, credit_limit FROM credit_lines%'"
)


def test_a_request_blocked_on_a_row_lock_does_not_stall_the_worker(
    sandbox: Sandbox, service_settings: Settings, keys: Any, postgres: PostgresCluster
) -> None:
    settings = service_settings.model_copy(update={"audit_db_url": postgres.new_database()})
    loosen_policy(settings, "sme")
    with serving(settings) as url, YidaiClient(url, keys.all) as yidai:
        wait_until(lambda: yidai.readiness()[0], what="ready over HTTP")
        offer = next(
            o for o in map(yidai.sme_credit, sandbox.entities["sme"]) if o.decision == "approve"
        )
        account = offer.account_id
        assert account is not None

        drawn: list[httpx.Response] = []
        with psycopg.connect(settings.audit_url) as locker:
            locker.execute(
                "SELECT 1 FROM credit_lines WHERE account_id = %s FOR UPDATE", (account,)
            )
            blocked = threading.Thread(
                target=lambda: drawn.append(
                    httpx.post(
                        f"{url}/v1/drawdowns",
                        json={"account_id": account, "amount": 10.0, "term_months": 3},
                        headers={"X-API-Key": keys.all},
                        timeout=120,
                    )
                ),
                daemon=True,
            )
            blocked.start()
            with psycopg.connect(settings.audit_url, autocommit=True) as watcher:
                wait_until(
                    lambda: watcher.execute(_WAITING_ON_LOCK).fetchone() == (1,),
                    what="the drawdown waiting for the line's row lock",
                )
            # The worker is free: an operations probe and a decision that writes to the
            # store both complete while the drawdown is still waiting.
            with httpx.Client(base_url=url, timeout=30) as other:
                assert other.get("/healthz").json() == {"status": "ok"}
                person = sandbox.entities["personal"][0]
                decided = other.post(
                    "/v1/decisions/personal-credit",
                    json={"customer_id": person, "requested_amount": 5000},
                    headers={"X-API-Key": keys.all},
                )
                assert decided.status_code == 200, decided.text
                looked_up = other.get(
                    f"/v1/decisions/{decided.json()['decision_id']}",
                    headers={"X-API-Key": keys.all},
                )
                assert looked_up.status_code == 200
            assert blocked.is_alive() and not drawn  # still held by the lock
            locker.rollback()  # release the row lock
        blocked.join(timeout=60)
        assert len(drawn) == 1 and drawn[0].status_code == 200, drawn
        assert drawn[0].json()["status"] == "accepted"
        assert drawn[0].json()["outstanding_before"] == 0.0
