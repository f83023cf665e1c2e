"""One small simulated, ingested environment shared by every notebook test of the session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def notebook_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A YIDAI_HOME with the notebooks' small simulation (landing + truth) ingested into its
    warehouse: the ``notebook`` preset, as `make docs` renders them."""
    from simulator import SimConfig, simulate
    from yidai.ingest import ingest_landing
    from yidai.core.settings import Settings

    home = tmp_path_factory.mktemp("notebook-home")
    settings = Settings(home=home)
    config = SimConfig.preset("notebook")
    simulate(config, settings.landing, settings.truth)
    # The simulator injects delivery defects on purpose: failed files stay in the manifest.
    ingest_landing(settings.landing, settings.warehouse)
    return home
