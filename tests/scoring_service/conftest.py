"""A real serving environment shared by the service tests (built once per session).

Synthetic warehouse -> published feature snapshots -> small LightGBM models registered in a
real MLflow SQLite registry (champion for every product, plus a challenger for personal
credit).  Each test gets its own audit store, key file and policy folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from scoring_service.security import SCOPES, create_key
from tests.support.pg_local import PostgresCluster
from tests.support.sandbox import Sandbox, build_sandbox
from yidai.core.settings import Settings

POLICIES = Path(__file__).resolve().parents[2] / "yidai" / "policies"


def settings_at(home: Path, tmp: Path, **overrides: object) -> Settings:
    """Settings on the shared sandbox ``home`` with per-test audit, keys, policies and
    serving folder: the sandbox's feature snapshots (linked, read-only) and the test's own
    merchant limits, published empty at first (no merchant has a refreshed line yet)."""
    values: dict[str, object] = {
        "home": home,
        "mlflow_tracking_uri": f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
        "audit_db_url": f"sqlite:///{tmp / 'audit' / 'decisions.db'}",
        "api_keys_file": tmp / "api_keys.json",
        "policy_dir": tmp / "policies",
        "service_reload_seconds": 0.2,
    }
    if "serving_dir" not in overrides:
        values["serving_dir"] = own_serving(home / "serving", tmp / "serving")
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def own_serving(shared: Path, own: Path) -> Path:
    """``own`` with a link to the shared feature snapshots and an empty limits version."""
    if not own.exists():
        own.mkdir(parents=True)
        (own / "features").symlink_to(shared / "features", target_is_directory=True)
        publish_limits(own, [], "v-empty")
    return own


@pytest.fixture(scope="session")
def sandbox_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sandbox")


@pytest.fixture(scope="session")
def sandbox(sandbox_home: Path) -> Sandbox:
    return build_sandbox(
        Settings(
            home=sandbox_home,
            mlflow_tracking_uri=f"sqlite:///{sandbox_home / 'mlflow' / 'mlflow.db'}",
        )
    )


@pytest.fixture
def service_settings(sandbox: Sandbox, sandbox_home: Path, tmp_path: Path) -> Settings:
    shutil.copytree(POLICIES, tmp_path / "policies")
    return settings_at(sandbox_home, tmp_path)


@dataclass
class Keys:
    all: str
    personal_only: str


@pytest.fixture
def keys(service_settings: Settings) -> Keys:
    path = service_settings.api_keys_file
    assert path is not None
    everything, _ = create_key(path, "ops_console", list(SCOPES))
    personal, _ = create_key(path, "mall_checkout", ["personal-credit"])
    return Keys(everything, personal)


@pytest.fixture
def make_client() -> Iterator[Callable[[Settings], TestClient]]:
    """Start the real app in-process (lifespan, loaders, audit store) and wait until ready."""
    from scoring_service.main import create_app

    opened: list[TestClient] = []

    def make(settings: Settings, wait_ready: bool = True) -> TestClient:
        client = TestClient(create_app(settings))
        client.__enter__()
        opened.append(client)
        if wait_ready:
            wait_until(lambda: client.get("/readyz").status_code == 200, what="service ready")
        else:  # everything tried once (keys first): the detailed report says what is missing
            wait_until(lambda: not client.get("/readyz").json()["loading"], what="first load")
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """The real app under uvicorn on a free loopback port; yields its base URL."""
    import threading

    import uvicorn

    from scoring_service.main import create_app

    port = _free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: srv.started, what="uvicorn start")
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def server(service_settings: Settings) -> Iterator[str]:
    """The real app under uvicorn on a free loopback port; yields its base URL."""
    with serving(service_settings) as url:
        yield url


def loosen_policy(settings: Settings, product: str) -> None:
    """The synthetic SMEs and merchants have tiny cash flows: let the line minimum and the
    cut-offs fit them (edits the per-test copy of ``<product>.yaml``)."""
    path = settings.policies / f"{product}.yaml"
    data = yaml.safe_load(path.read_text())
    data["limit"].update(min_limit=10, round_to=10, max_expected_loss=None)
    data["cutoffs"] = {"approve_min_score": 0, "refer_min_score": 0}
    data["hard_rules"] = []
    path.write_text(yaml.safe_dump(data))


def publish_limits(
    serving_dir: Path, lines: list[tuple[str, str, float, str]], version: str = "v-test"
) -> None:
    """Publish a nightly merchant limits version: (merchant, account, line, status) rows."""
    import pandas as pd

    from yidai.core import publishing
    from yidai.jobs.limits.serving import LIMITS_FILE, READ_COLUMNS, limits_root

    rows = []
    for merchant, account, line, status in lines:
        ok = status == "active"
        rows.append(
            {
                "merchant_id": merchant, "account_id": account, "credit_line": line,
                "outstanding": line / 5, "available": line * 4 / 5 if ok else 0.0,
                "status": status, "decision": "increase" if ok else "freeze",
                "reason_code": "INCREASE_TURNOVER_GROWTH" if ok else "FREEZE_DELINQUENT",
                "grade": "B" if ok else "E",
            }
        )  # fmt: skip
    table = pd.DataFrame(rows, columns=list(READ_COLUMNS))
    root = limits_root(serving_dir)
    meta = {"version": version, "as_of": "2026-06-30"}
    publishing.write_version(root, version, meta, lambda tmp: table.to_parquet(tmp / LIMITS_FILE))
    publishing.publish(root, version, meta)


def wait_until(check: Callable[[], bool], *, what: str, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A real PostgreSQL server for the whole session (fails, never skips, if missing)."""
    try:
        cluster = PostgresCluster()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        cluster.start()
    except RuntimeError as exc:
        cluster.stop()
        pytest.fail(f"cannot start a PostgreSQL test cluster: {exc}")
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def audit_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty audit store URL on each backend: a SQLite file or a new database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit' / 'decisions.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.new_database()
