"""Shared fixtures of the simulator tests: one tiny simulation per test session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from simulator import SimConfig, SimulationSummary, simulate


@dataclass(frozen=True)
class SimRun:
    config: SimConfig
    landing: Path
    truth: Path
    summary: SimulationSummary


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> SimRun:
    """The tiny preset (with its default defect rate), simulated once."""
    root = tmp_path_factory.mktemp("sim_tiny")
    config = SimConfig.preset("tiny", seed=7)
    summary = simulate(config, root / "landing", root / "truth")
    return SimRun(config, root / "landing", root / "truth", summary)


@pytest.fixture(scope="session")
def clean_short_run(tmp_path_factory: pytest.TempPathFactory) -> SimRun:
    """A short, defect-free run (4 months, streamed in 3 chunks) for determinism and clean data."""
    root = tmp_path_factory.mktemp("sim_clean")
    config = SimConfig.preset("tiny", seed=11, months=4, defect_rate=0.0, chunk_size=300)
    summary = simulate(config, root / "landing", root / "truth")
    return SimRun(config, root / "landing", root / "truth", summary)


@pytest.fixture(scope="session")
def clean_year_run(tmp_path_factory: pytest.TempPathFactory) -> SimRun:
    """A defect-free tiny year with a busy loan book (line reviews, defaults, charge-offs)."""
    root = tmp_path_factory.mktemp("sim_lines")
    config = SimConfig.preset("tiny", seed=5, defect_rate=0.0, application_rate=4.0)
    summary = simulate(config, root / "landing", root / "truth")
    return SimRun(config, root / "landing", root / "truth", summary)
