"""The policy simulator's model comparison: champion, challenger and scorecard on the same
applicants, judged by the simulator's truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from yidai.core.errors import YidaiError
from yidai.jobs.analytics.policy_sim import compare_models


def _scored() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pd": [0.01, 0.02, 0.03, 0.20, 0.30, 0.40],
            "model_version": "personal_pd v3",
            "scorecard_pd": [0.05, 0.30, 0.02, 0.04, 0.20, 0.25],
            "scorecard_version": "personal_pd_scorecard v1",
            "true_defaulted": [0.0, 0.0, 0.0, 1.0, 1.0, np.nan],
            "label": [0.0, np.nan, 0.0, 1.0, np.nan, np.nan],
        }
    )


def test_each_model_approves_its_safest_share_and_is_judged_by_the_truth() -> None:
    scored = _scored()
    table = compare_models(scored, approval_rate=0.5).set_index("model")
    assert list(table.index) == ["champion", "scorecard"]
    # champion approves its 3 lowest PDs (rows 0-2): no true default
    assert table.at["champion", "true_bad_rate"] == 0.0
    assert table.at["champion", "expected_bad_rate"] == pytest.approx(0.02)
    # scorecard approves rows 2, 3, 0 (PD 0.02, 0.04, 0.05): one of three defaults
    assert table.at["scorecard", "true_bad_rate"] == pytest.approx(1 / 3)
    known = scored["true_defaulted"].notna()
    expected = roc_auc_score(scored.loc[known, "true_defaulted"], scored.loc[known, "scorecard_pd"])
    assert table.at["scorecard", "true_auc"] == pytest.approx(expected)
    assert table.at["champion", "true_auc"] == pytest.approx(1.0)
    assert table.at["scorecard", "version"] == "personal_pd_scorecard v1"
    # matured labels: rows 0, 2, 3
    assert table.at["champion", "label_auc"] == pytest.approx(1.0)


def test_the_approval_rate_is_checked() -> None:
    with pytest.raises(YidaiError, match="approval rate"):
        compare_models(_scored(), approval_rate=0.0)
