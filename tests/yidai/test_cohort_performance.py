"""Cohort performance (yidai.jobs.analytics.model_monitoring.cohort_performance), as the
monitoring report (weeks / months of ``ts``) and the dashboard (booking months) call it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from yidai.jobs.analytics.model_monitoring import cohort_performance

COLUMNS = ["model", "cohort", "n", "positives", "positive_rate", "mean_score", "auc", "ks"]


def scored_applications() -> pd.DataFrame:
    """Two booking months of matured loans (40 and 4) and a month not matured yet."""
    rng = np.random.default_rng(5)
    months = ["2026-01-01"] * 40 + ["2026-02-01"] * 4 + ["2026-03-01"] * 10
    label = np.r_[rng.integers(0, 2, 40), [0, 1, 0, 1], np.full(10, np.nan)]
    pd_ = np.clip(0.3 * np.nan_to_num(label) + rng.uniform(0, 0.6, len(label)), 0, 1)
    return pd.DataFrame(
        {"booking_month": pd.to_datetime(months), "ts": pd.to_datetime(months), "label": label,
         "pd": pd_}
    )  # fmt: skip


def test_booking_month_cohorts_with_a_minimum_size_for_the_ranking() -> None:
    scored = scored_applications()
    perf = cohort_performance(scored, score="pd", cohort="booking_month", min_rows=30)
    assert list(perf.columns) == COLUMNS
    assert perf["cohort"].tolist() == list(pd.to_datetime(["2026-01-01", "2026-02-01"]))
    assert perf["n"].tolist() == [40, 4]
    assert 0.5 < perf["auc"].iloc[0] <= 1.0 and np.isnan(perf["auc"].iloc[1])  # 4 < 30 loans
    january = scored.iloc[:40]
    assert perf["mean_score"].iloc[0] == january["pd"].mean()
    assert perf["positive_rate"].iloc[0] == january["label"].mean()
    # without the minimum, the small cohort is ranked too; by ts months, the same cohorts
    by_ts = cohort_performance(scored, score="pd", model="personal_pd")
    assert not np.isnan(by_ts["auc"].iloc[1]) and set(by_ts["model"]) == {"personal_pd"}
    assert by_ts["n"].tolist() == perf["n"].tolist()


def test_nothing_matured_gives_the_columns_and_no_rows() -> None:
    scored = scored_applications().iloc[44:]
    perf = cohort_performance(scored, score="pd", cohort="booking_month", fraud=True)
    assert perf.empty and list(perf.columns) == [*COLUMNS, "average_precision"]
