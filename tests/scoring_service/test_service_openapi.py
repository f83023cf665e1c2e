"""Property-based API test: schemathesis against the service's own OpenAPI document.

The real app under uvicorn on the shared sandbox home (models, snapshots, policies, a key
with every scope), every check schemathesis has, positive and negative data.  Any 5xx or
any response the document does not describe fails the test.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import hypothesis.configuration
import pytest
import schemathesis
from schemathesis import Case
from schemathesis.checks import CHECKS, load_all_checks

from scoring_service.main import create_app
from scoring_service.security import SCOPES, create_key
from tests.support.sandbox import Sandbox

from .conftest import POLICIES, publish_limits, serving, settings_at, wait_until

# Bounded so the whole test stays around a minute on a loaded 2-core machine.
MAX_EXAMPLES = 50

# Hypothesis caches what it scans at collection in .hypothesis/ of the working directory:
# keep it out of the checkout (no example database is kept: database=None below).
hypothesis.configuration.set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "yidai-hypothesis")

load_all_checks()
# Every check schemathesis has (named here so none is left out by a default).
ALL_CHECKS: list[Any] = list(CHECKS.get_all())

# The document of the app itself (building it reads no settings); requests go to uvicorn.
# (schemathesis.pytest.from_fixture would load it lazily, but it breaks on pytest 9.)
schema = schemathesis.openapi.from_dict(create_app().openapi())


@dataclass(frozen=True)
class Live:
    url: str
    key: str


@pytest.fixture(scope="module")
def live(
    sandbox: Sandbox, sandbox_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    """The app under uvicorn, ready, with a key that has every scope (one per module).

    Its own copy of the serving folder with published merchant limits: every product and
    lookup is servable, so no answer may be a 5xx.
    """
    tmp = tmp_path_factory.mktemp("openapi")
    shutil.copytree(POLICIES, tmp / "policies")
    shutil.copytree(sandbox.serving, tmp / "serving")
    settings = settings_at(sandbox_home, tmp, serving_dir=tmp / "serving")
    merchant = sandbox.entities["merchant"][0]
    publish_limits(settings.serving, [(merchant, "LA-0001", 50_000.0, "active")])
    assert settings.api_keys_file is not None
    key, _ = create_key(settings.api_keys_file, "ops_console", list(SCOPES))
    with serving(settings) as url:
        wait_until(lambda: httpx.get(f"{url}/readyz").status_code == 200, what="ready")
        yield Live(url, key)


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,
    database=None,
)
@pytest.mark.parametrize("with_key", [True, False], ids=["key-with-every-scope", "no-key"])
def test_api_matches_its_document(case: Case, live: Live, with_key: bool) -> None:
    """No 5xx, every answer as documented (status, content type, body schema, headers)."""
    headers = {"X-API-Key": live.key} if with_key else {}
    case.call_and_validate(base_url=live.url, headers=headers, checks=ALL_CHECKS)
