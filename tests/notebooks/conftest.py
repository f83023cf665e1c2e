"""One small simulated, ingested environment shared by every notebook test of the session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def notebook_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A YIDAI_HOME with a tiny simulation (landing + truth) ingested into its warehouse.

    1500 merchants reviewed 2.5 times as often as the preset's: the tiny period matures only
    five months of applications, the first of which alone is the credit notebook's training
    window, and at the preset's rate that month held 0-3 defaults depending on the draw; 800
    customers keep the fraud feature build short.
    """
    from simulator import SimConfig, simulate
    from yidai.ingest import ingest_landing
    from yidai.core.settings import Settings

    home = tmp_path_factory.mktemp("notebook-home")
    settings = Settings(home=home)
    config = SimConfig.preset("tiny", n_customers=800, n_merchants=1500, application_rate=2.5)
    simulate(config, settings.landing, settings.truth)
    # The simulator injects delivery defects on purpose: failed files stay in the manifest.
    ingest_landing(settings.landing, settings.warehouse)
    return home
