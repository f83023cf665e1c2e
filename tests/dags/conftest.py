"""Airflow test environment: a throw-away AIRFLOW_HOME set before Airflow is first imported.

Airflow reads its configuration when imported, so the home is exported from
``pytest_configure`` (run as this conftest loads, before the test modules import Airflow)
and the metadata database is migrated once per session by the ``airflow_db`` fixture.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.airflow_cluster import PRISTINE_DB, snapshot_sqlite

_HOME_KEY = "_yidai_test_airflow_home"


def pytest_configure(config: pytest.Config) -> None:
    home = Path(tempfile.mkdtemp(prefix="yidai-airflow-test-"))
    config.stash_home = home  # type: ignore[attr-defined]
    os.environ[_HOME_KEY] = str(home)
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[2] / "dags")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"


def pytest_unconfigure(config: pytest.Config) -> None:
    home = os.environ.pop(_HOME_KEY, None)
    if home:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[Path]:
    """Migrate the session's Airflow metadata DB and create the pools (about 10 s)."""
    from yidai.cli.airflow_local import setup_airflow

    started = time.monotonic()
    home = setup_airflow()
    print(f"airflow db migrate + pools: {time.monotonic() - started:.1f} s")
    # a copy before any test writes runs into it: a fresh metadata DB for a test's own
    # Airflow processes (tests/support/airflow_cluster.py) without migrating again
    snapshot_sqlite(home / "airflow.db", home / PRISTINE_DB)
    yield home
