"""The drift policy shared by the monitoring alert and the promotion gate: PSI severity
thresholds, and the features whose drift is *structural* (declared here, with the reason).

A structural feature moves with calendar time by construction, whatever the customers do:
``*_tenure_days_life`` counts the days since an entity's first trace, so on a book whose
history began on a fixed day every entity's tenure grows by one a day and the distribution
slides right month after month.  Compared with a fixed reference (the training window), its
PSI passes any threshold within a few months although nothing changed in the population.
Such a feature is not silently excluded: monitoring compares it with a *rolling* reference
(the weeks just before the current window, so a sudden jump still alarms), and the gate
names it in its verdict instead of blocking on its train-vs-OOT PSI.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from models.metrics import PSI_ALERT_THRESHOLD

#: PSI at or above this is a shift worth watching (amber); below it the feature is stable.
PSI_WATCH_THRESHOLD = 0.10

#: Status of a PSI row: ``stable`` < watch <= ``shift`` < alert <= ``drift``; ``unknown`` = NaN.
STATUSES = ("stable", "shift", "drift", "unknown")

#: The colour of each status, the same on every page and in the alert text's legend.
STATUS_COLOURS = {
    "stable": "#2e7d32",  # green
    "shift": "#f9a825",  # amber
    "drift": "#c62828",  # red
    "unknown": "#9e9e9e",  # grey
}

_TENURE = (
    "days since the first trace of the entity: grows by one a day for every entity of a book "
    "whose history starts on a fixed day, so its distribution slides with calendar time"
)

#: Features whose drift against a fixed reference is structural, with the reason.  Their
#: drift is measured against a rolling reference (see module docstring).
STRUCTURAL_DRIFT: Mapping[str, str] = {
    "customer_tenure_days_life": _TENURE,
    "merchant_tenure_days_life": _TENURE,
    "sme_tenure_days_life": _TENURE,
}


@dataclass(frozen=True)
class DriftThresholds:
    """PSI thresholds per severity: ``watch`` (amber, reported) and ``alert`` (red, the
    monitoring alert fires and the promotion gate blocks)."""

    watch: float = PSI_WATCH_THRESHOLD
    alert: float = PSI_ALERT_THRESHOLD

    def __post_init__(self) -> None:
        if not 0 < self.watch <= self.alert:
            raise ValueError(f"PSI thresholds need 0 < watch <= alert, got {self}")

    def status(self, psi: float) -> str:
        """``stable`` (psi < watch), ``shift`` (watch <= psi < alert), ``drift`` (psi >=
        alert) or ``unknown`` (NaN)."""
        if psi is None or not math.isfinite(psi):
            return "unknown"
        return "drift" if psi >= self.alert else "shift" if psi >= self.watch else "stable"


def is_structural(feature: str) -> bool:
    """Whether ``feature``'s drift against a fixed reference is declared structural."""
    return feature in STRUCTURAL_DRIFT


@dataclass(frozen=True)
class GateDrift:
    """The features that drifted between training and the gate's window (PSI >= alert),
    and the structural ones that passed it too (named, not blocking)."""

    drifted: list[tuple[str, float]]
    structural: list[tuple[str, float]]

    def describe(self, threshold: float, limit: int = 5) -> str:
        """``features drifted ...: a 0.41, b 0.30`` (empty when nothing drifted)."""
        if not self.drifted:
            return ""
        names = ", ".join(f"{f} {v:.2f}" for f, v in self.drifted[:limit])
        more = f" and {len(self.drifted) - limit} more" if len(self.drifted) > limit else ""
        return (
            f"features drifted between training and the OOT window (PSI >= {threshold:.2f}): "
            f"{names}{more}"
        )

    def structural_note(self) -> str:
        """The structural features over the threshold, for the gate's verdict."""
        if not self.structural:
            return ""
        names = ", ".join(f"{f} {v:.2f}" for f, v in self.structural)
        return f"structural drift not blocking (grows with calendar time): {names}"


def gate_drift(feature_psi: Mapping[str, float] | None, threshold: float) -> GateDrift:
    """Split the train-vs-OOT feature PSIs at or above ``threshold`` (a NaN PSI never
    counts) into drifted features (they block the gate) and structural ones (named only),
    each sorted by PSI, largest first."""
    over = sorted(
        ((str(f), float(v)) for f, v in (feature_psi or {}).items() if v >= threshold),
        key=lambda item: (-item[1], item[0]),
    )
    return GateDrift(
        drifted=[(f, v) for f, v in over if not is_structural(f)],
        structural=[(f, v) for f, v in over if is_structural(f)],
    )
