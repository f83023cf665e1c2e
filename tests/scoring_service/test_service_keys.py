"""``yidai keys create``: the key is printed once, only its salted hash is stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from scoring_service.security import KeyRing
from yidai.cli import app
from yidai.settings import reset_settings_cache


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
