"""Simulation knobs and their named presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date

from yidai.core.errors import YidaiError
from yidai.core.settings import DEFAULT_PERFORMANCE_MONTHS


@dataclass(frozen=True)
class SimConfig:
    """Everything that decides a simulation: same config, same bytes.

    Counts are entities at the end of the period (a few percent of them join during it).
    ``chunk_size`` bounds memory: customers, merchants and SMEs are simulated in chunks of this
    many entities, month by month, so the large preset streams with bounded memory.
    Credit applications start after ``history_months`` of behaviour (6 fill the 180-day
    feature windows); ``application_rate`` scales their number (re-applications, line
    reviews), so that matured cohorts hold enough defaults to validate the PD models.
    ``performance_months`` is the credit truth's horizon (an application's ``defaulted`` and
    ``true_pd``: 90+ days past due within that many months), the same window as the label
    (``YIDAI_PERFORMANCE_MONTHS``; ``yidai simulate`` passes the setting on).
    """

    seed: int = 42
    n_customers: int = 20_000
    n_merchants: int = 2_000
    n_smes: int = 500
    n_mall_sellers: int = 300
    start: date = date(2025, 10, 1)
    months: int = 12
    defect_rate: float = 0.002
    chunk_size: int = 50_000
    pos_per_customer_month: float = 12.0
    external_pos_share: float = 0.4  # share of POS turnover paid with other banks' cards
    fraud_intensity: float = 1.0  # scales every fraud scenario's frequency
    history_months: int = 1  # months of behaviour before the first credit application
    application_rate: float = 1.0  # scales every product's applications per entity and year
    performance_months: int = DEFAULT_PERFORMANCE_MONTHS  # the credit truth's horizon

    PRESETS = ("tiny", "notebook", "demo", "large")

    @classmethod
    def preset(cls, name: str, **overrides: object) -> SimConfig:
        """A named preset (``tiny`` for tests, ``notebook``, ``demo``, ``large``) with optional
        overrides."""
        presets: dict[str, dict[str, object]] = {
            "tiny": dict(
                n_customers=800, n_merchants=80, n_smes=40, n_mall_sellers=30, defect_rate=0.01
            ),
            # the notebooks' world (their tests and `make docs`): the tiny period matures only
            # five months of applications, the first of which alone is the credit notebook's
            # training window; 1500 merchants reviewed 2.5 times as often as the tiny
            # preset's give that month about 10 defaults (at 1x it held 0-3, depending on the
            # draw); 800 customers keep the fraud notebook's feature build short
            "notebook": dict(
                n_customers=800,
                n_merchants=1500,
                n_smes=40,
                n_mall_sellers=30,
                defect_rate=0.01,
                application_rate=2.5,
            ),
            # 24 months ending 2026-09-30: 6 months of behaviour, then 18 of applications, of
            # which the first 12 mature within a 6-month performance window by the end; the
            # out-of-time test (the last matured months) then follows ~8 months of training
            # decisions from a portfolio whose applicants have credit history, not only its
            # launch months (see docs/benchmarks.md, Models)
            "demo": dict(
                n_customers=20_000,
                n_merchants=2_000,
                n_smes=500,
                n_mall_sellers=300,
                start=date(2024, 10, 1),
                months=24,
                history_months=6,
                application_rate=10.0,
            ),
            "large": dict(
                n_customers=1_000_000,
                n_merchants=100_000,
                n_smes=25_000,
                n_mall_sellers=5_000,
                chunk_size=50_000,
            ),
        }
        if name not in presets:
            raise YidaiError(f"unknown preset {name!r}; choose one of {', '.join(presets)}")
        given = {k: v for k, v in overrides.items() if v is not None}
        values = {**presets[name], **given}
        if "history_months" not in given:  # a shorter period keeps room for applications
            months = int(values.get("months", cls.months))  # type: ignore[call-overload]
            history = int(values.get("history_months", cls.history_months))  # type: ignore[call-overload]
            values["history_months"] = max(1, min(history, months - 2))
        return cls(**values).validated()  # type: ignore[arg-type]

    def replace(self, **changes: object) -> SimConfig:
        """A copy with some fields changed (``None`` values are ignored)."""
        kept = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **kept).validated()  # type: ignore[arg-type]

    def validated(self) -> SimConfig:
        """Self, after checking every knob; a clear error naming the bad one otherwise."""
        for name in ("n_customers", "n_merchants", "n_smes", "n_mall_sellers"):
            if getattr(self, name) < 5:
                raise YidaiError(f"{name} must be at least 5, got {getattr(self, name)}")
        if self.n_customers > 50_000_000:
            raise YidaiError("n_customers above 50M is not supported")
        if not 3 <= self.months <= 36:
            raise YidaiError(f"months must be between 3 and 36, got {self.months}")
        if not 0.0 <= self.defect_rate <= 0.2:
            raise YidaiError(f"defect_rate must be between 0 and 0.2, got {self.defect_rate}")
        if self.chunk_size < 100:
            raise YidaiError(f"chunk_size must be at least 100, got {self.chunk_size}")
        if self.pos_per_customer_month <= 0:
            raise YidaiError("pos_per_customer_month must be positive")
        if not 0.0 <= self.external_pos_share < 0.95:
            raise YidaiError("external_pos_share must be in [0, 0.95)")
        if not 1 <= self.history_months <= self.months - 2:
            raise YidaiError(
                f"history_months must be between 1 and months - 2 ({self.months - 2}), "
                f"got {self.history_months}"
            )
        if not 0.0 < self.application_rate <= 50.0:
            raise YidaiError(f"application_rate must be in (0, 50], got {self.application_rate}")
        if not 4 <= self.performance_months <= 24:
            raise YidaiError(
                f"performance_months must be between 4 and 24 (90+ days past due must fit), "
                f"got {self.performance_months}"
            )
        if self.fraud_intensity < 0:
            raise YidaiError("fraud_intensity must be >= 0")
        return self
