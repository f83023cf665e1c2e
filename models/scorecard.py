"""Points scaling and risk grades from a calibrated PD.

``points = offset + factor * ln(odds)`` with ``odds = (1 - PD) / PD`` (good:bad),
``factor = PDO / ln 2`` and ``offset = base_score - factor * ln(base_odds)``: a PD at
``base_odds`` scores ``base_score``, and every doubling of the odds adds ``PDO`` points.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from yidai.core.errors import YidaiError

#: Grade upper PD bounds (inclusive): A <= 0.5%, B <= 1%, ... F <= 16%, G above.
DEFAULT_GRADE_BOUNDS: tuple[tuple[str, float], ...] = (
    ("A", 0.005),
    ("B", 0.01),
    ("C", 0.02),
    ("D", 0.04),
    ("E", 0.08),
    ("F", 0.16),
)
LAST_GRADE = "G"
_PD_FLOOR = 1e-6


@dataclass(frozen=True)
class Scorecard:
    """Score scaling (base score at base odds, points to double the odds) and PD grades."""

    base_score: float = 600.0
    base_odds: float = 50.0
    pdo: float = 20.0
    grade_bounds: tuple[tuple[str, float], ...] = field(default=DEFAULT_GRADE_BOUNDS)
    last_grade: str = LAST_GRADE

    def __post_init__(self) -> None:
        if self.base_odds <= 0 or self.pdo <= 0:
            raise YidaiError("scorecard: base odds and PDO must be positive")
        bounds = [b for _, b in self.grade_bounds]
        if any(not 0 < b < 1 for b in bounds) or bounds != sorted(bounds):
            raise YidaiError("scorecard: grade PD bounds must increase within (0, 1)")

    @property
    def factor(self) -> float:
        """Points per unit of log-odds: ``PDO / ln 2``."""
        return self.pdo / math.log(2.0)

    @property
    def offset(self) -> float:
        """``base_score - factor * ln(base_odds)``."""
        return self.base_score - self.factor * math.log(self.base_odds)

    @property
    def grades(self) -> tuple[str, ...]:
        """All grades, best first."""
        return (*(g for g, _ in self.grade_bounds), self.last_grade)

    def points(self, pd_: np.ndarray | float) -> np.ndarray:
        """Score points (higher = safer) of one or many PDs."""
        p = np.clip(np.asarray(pd_, dtype=np.float64), _PD_FLOOR, 1.0 - _PD_FLOOR)
        return self.offset + self.factor * np.log((1.0 - p) / p)

    def pd_at(self, points: np.ndarray | float) -> np.ndarray:
        """Inverse of :meth:`points`."""
        log_odds = (np.asarray(points, dtype=np.float64) - self.offset) / self.factor
        return 1.0 / (1.0 + np.exp(log_odds))

    def grade(self, pd_: np.ndarray | float) -> np.ndarray:
        """Risk grade per PD (``A`` best); PD exactly on a bound gets the better grade."""
        p = np.asarray(pd_, dtype=np.float64)
        bounds = np.array([b for _, b in self.grade_bounds])
        return np.asarray(self.grades, dtype=object)[np.searchsorted(bounds, p, side="left")]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["grade_bounds"] = [[g, b] for g, b in self.grade_bounds]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scorecard:
        return cls(
            base_score=float(data["base_score"]),
            base_odds=float(data["base_odds"]),
            pdo=float(data["pdo"]),
            grade_bounds=tuple((str(g), float(b)) for g, b in data["grade_bounds"]),
            last_grade=str(data["last_grade"]),
        )
