"""``yidai keys create``: the key is printed once, only its salted hash is stored."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from scoring_service.security import KeyRing, create_key
from yidai.cli import app
from yidai.core.settings import Settings, reset_settings_cache

from .conftest import wait_until


def test_keys_create_prints_once_and_stores_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keys.json"
    monkeypatch.setenv("YIDAI_API_KEYS_FILE", str(path))
    reset_settings_cache()
    try:
        result = CliRunner().invoke(
            app, ["keys", "create", "--module", "mall_checkout",
                  "--scopes", "personal-credit,payment-risk"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        key = result.stdout.strip().splitlines()[0]
        assert key.startswith("yd_") and key not in path.read_text()
        found = KeyRing.load(path).verify(key)
        assert found is not None and found.module == "mall_checkout"
        assert found.scopes == {"personal-credit", "payment-risk"}
        assert KeyRing.load(path).verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
        bad = CliRunner().invoke(app, ["keys", "create", "--module", "x", "--scopes", "root"])
        assert bad.exit_code != 0
    finally:
        reset_settings_cache()


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Run ``yidai`` commands on a key file under ``tmp_path``, whatever the caller's env."""
    import os

    for name in list(os.environ):
        if name.startswith(("YIDAI_", "MLFLOW_", "AIRFLOW_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env of the caller's working directory

    def run(path: Path, *args: str) -> Any:
        monkeypatch.setenv("YIDAI_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("YIDAI_API_KEYS_FILE", str(path))
        reset_settings_cache()
        try:
            return CliRunner().invoke(app, list(args))
        finally:
            reset_settings_cache()

    yield run


def test_a_revoked_key_is_refused_from_the_next_reload(
    service_settings: Settings,
    make_client: Callable[[Settings], TestClient],
    cli_env: Callable[..., Any],
) -> None:
    path = service_settings.api_keys_file
    assert path is not None
    made = cli_env(path, "keys", "create", "--module", "ops_console", "--scopes", "decisions-read")
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[0]
    other, _ = create_key(path, "risk_console", ["decisions-read"])
    key_id = key.split("_")[1]
    listed = cli_env(path, "keys", "list")
    line = next(row for row in listed.stdout.splitlines() if row.startswith(key_id))
    expected = (dt.datetime.now(dt.UTC) + dt.timedelta(days=365)).date().isoformat()
    assert "active" in line and f"expires {expected}" in line  # the default: one year

    client = make_client(service_settings)

    def status(api_key: str) -> int:
        return client.get("/v1/decisions/none", headers={"X-API-Key": api_key}).status_code

    assert status(key) == 404  # authenticated: the decision does not exist
    revoked = cli_env(path, "keys", "revoke", key_id)
    assert revoked.exit_code == 0, revoked.output
    assert key.split("_", 2)[2] not in path.read_text()  # the file stays hashed
    wait_until(lambda: status(key) == 401, what="the revoked key refused after a reload")
    assert status(other) == 404  # the other key still works
    assert KeyRing.load(path).verify(key) is None
    listed = cli_env(path, "keys", "list")
    assert "revoked" in next(r for r in listed.stdout.splitlines() if r.startswith(key_id))
    assert cli_env(path, "keys", "revoke", "000000000000").exit_code != 0  # unknown id


def test_expired_keys_are_refused_and_expiry_is_chosen_at_creation(
    tmp_path: Path,
    service_settings: Settings,
    make_client: Callable[[Settings], TestClient],
    cli_env: Callable[..., Any],
) -> None:
    path = service_settings.api_keys_file
    assert path is not None
    expired, record = create_key(path, "old_checkout", ["decisions-read"], expires_in_days=-1)
    live, _ = create_key(path, "new_checkout", ["decisions-read"], expires_in_days=1)
    ring = KeyRing.load(path)
    assert ring.verify(expired) is None and ring.keys[record.key_id].state() == "expired"
    assert ring.verify(live) is not None
    client = make_client(service_settings)
    assert client.get("/v1/decisions/x", headers={"X-API-Key": expired}).status_code == 401
    assert client.get("/v1/decisions/x", headers={"X-API-Key": live}).status_code == 404

    other = tmp_path / "other_keys.json"
    forever = cli_env(other, "keys", "create", "--module", "m1", "--scopes", "decisions-read",
                      "--no-expiry")  # fmt: skip
    week = cli_env(other, "keys", "create", "--module", "m2", "--scopes", "decisions-read",
                   "--expires-in-days", "7")  # fmt: skip
    assert forever.exit_code == 0 and week.exit_code == 0, forever.output + week.output
    stored = {k["module"]: k for k in json.loads(other.read_text())["keys"]}
    assert stored["m1"]["expires_at"] is None
    in_a_week = dt.datetime.fromisoformat(stored["m2"]["expires_at"]) - dt.datetime.fromisoformat(
        stored["m2"]["created_at"]
    )
    assert abs(in_a_week - dt.timedelta(days=7)) < dt.timedelta(seconds=2)
    both = cli_env(other, "keys", "create", "--module", "m3", "--scopes", "decisions-read",
                   "--no-expiry", "--expires-in-days", "3")  # fmt: skip
    assert both.exit_code != 0
    assert cli_env(other, "keys", "create", "--module", "m4", "--scopes", "decisions-read",
                   "--expires-in-days", "0").exit_code != 0  # fmt: skip


def test_key_files_written_before_expiry_existed_still_load(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    key, _ = create_key(path, "legacy", ["decisions-read"])
    data = json.loads(path.read_text())
    for entry in data["keys"]:
        del entry["expires_at"], entry["revoked_at"]
    path.write_text(json.dumps(data))
    found = KeyRing.load(path).verify(key)
    assert found is not None and found.state() == "active" and found.expires_at is None
