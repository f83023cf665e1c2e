"""A hermetic test session: nothing of the caller's environment or earlier runs leaks in.

Before any test module is imported, every ``YIDAI_*``, ``MLFLOW_*`` and ``AIRFLOW_*``
variable of the caller is removed (the Airflow tests set their own throw-away home in
``tests/dags/conftest.py``), no ``.env`` file is read (``YIDAI_ENV_FILE`` is empty), and
``YIDAI_HOME`` points at a fresh temporary folder, so a test that forgets to set its own
home writes there and never into the checkout's ``var/``.  Subprocesses started by tests
inherit the same environment.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

CALLER_PREFIXES = ("YIDAI_", "MLFLOW_", "AIRFLOW_", "AIRFLOW__")
_HOME_KEY = "_yidai_test_session_home"


def scrub_caller_environment(environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """Remove the caller's Yidai, MLflow and Airflow variables; return their names."""
    removed = sorted(k for k in environ if k.startswith(CALLER_PREFIXES))
    for name in removed:
        del environ[name]
    return removed


@pytest.hookimpl(tryfirst=True)  # before tests/dags/conftest.py sets its AIRFLOW_HOME
def pytest_configure(config: pytest.Config) -> None:
    removed = scrub_caller_environment(os.environ)
    home = Path(tempfile.mkdtemp(prefix="yidai-test-home-"))
    os.environ[_HOME_KEY] = str(home)
    os.environ["YIDAI_HOME"] = str(home)
    os.environ["YIDAI_ENV_FILE"] = ""
    if removed:
        config.stash_removed_variables = removed  # type: ignore[attr-defined]


def pytest_report_header(config: pytest.Config) -> str:
    removed = getattr(config, "stash_removed_variables", [])
    note = f"; ignored from the caller: {', '.join(removed)}" if removed else ""
    return f"hermetic environment: YIDAI_HOME={os.environ.get('YIDAI_HOME')}{note}"


def pytest_unconfigure(config: pytest.Config) -> None:
    home = os.environ.pop(_HOME_KEY, None)
    if home:
        shutil.rmtree(home, ignore_errors=True)
