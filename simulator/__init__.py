"""Seeded simulator of the bank's online ecosystem: landing zone plus ground truth.

Entry points: :class:`SimConfig` (with :meth:`SimConfig.preset`) and :func:`simulate`.
"""

from simulator.config import SimConfig
from simulator.core import SimulationSummary, simulate

__all__ = ["SimConfig", "SimulationSummary", "simulate"]
