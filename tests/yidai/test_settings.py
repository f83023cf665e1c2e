"""Settings: the environment, the env file, and the suite's hermetic environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from yidai.core.settings import Settings, get_settings, reset_settings_cache


def test_the_suite_runs_without_the_callers_variables() -> None:
    """tests/conftest.py removed the caller's YIDAI_/MLFLOW_ variables before any test."""
    ours = {"YIDAI_HOME", "YIDAI_ENV_FILE"}
    leaked = [k for k in os.environ if k.startswith(("YIDAI_", "MLFLOW_")) and k not in ours]
    assert leaked == []
    assert os.environ["YIDAI_ENV_FILE"] == ""


def test_the_default_home_is_the_sessions_temporary_folder_not_the_checkout() -> None:
    reset_settings_cache()
    home = get_settings().home
    assert home == Path(os.environ["YIDAI_HOME"])
    assert Path.cwd() / "var" != home
    assert get_settings().tracking_uri == f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"


def test_an_env_file_is_read_only_when_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("YIDAI_SEED=7\n")
    assert Settings().seed == 42  # the suite names no env file
    monkeypatch.setenv("YIDAI_ENV_FILE", ".env")
    assert Settings().seed == 7
    monkeypatch.setenv("YIDAI_SEED", "9")  # the environment wins over the file
    assert Settings().seed == 9
    monkeypatch.delenv("YIDAI_ENV_FILE")
    monkeypatch.delenv("YIDAI_SEED")
    assert Settings().seed == 7  # outside the suite: ./.env by default
