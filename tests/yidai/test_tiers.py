"""Amount tiers (yidai.jobs.analytics.tiers): one function, its SQL twin and one tier table."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

import yidai
from yidai.decisioning import decide_payment, load_payment_policy
from yidai.jobs.analytics.tiers import (
    CREDIT_TIERS,
    DEFAULT_TIERS,
    amount_tier,
    amount_tier_sql,
    tier_labels,
)

POLICY_DIR = Path(yidai.__file__).parent / "policies"
EDGES = [0.0, 0.5, 200.0, 200.01, 2_000.0, 5_000.0, 20_000.0, 20_000.01, 100_000.0, 1e9]


@pytest.mark.parametrize("tiers", [DEFAULT_TIERS, CREDIT_TIERS], ids=["payment", "credit"])
def test_the_sql_twin_gives_the_same_labels(tiers: tuple[tuple[str, float], ...]) -> None:
    amounts = pd.Series([*EDGES, np.nan])
    expected = amount_tier(amounts, tiers).astype(object).tolist()
    con = duckdb.connect()
    con.register("payments", pd.DataFrame({"amount": amounts}))
    got = con.sql(f"SELECT {amount_tier_sql('amount', tiers)} AS t FROM payments").df()["t"]
    assert got.iloc[:-1].tolist() == expected[:-1]
    assert pd.isna(got.iloc[-1]) and pd.isna(expected[-1])  # no amount, no tier


def test_a_missing_amount_gets_the_missing_label_as_last_category() -> None:
    tiers = amount_tier(pd.Series([10.0, None, "n/a", 1e6]), CREDIT_TIERS, missing="unknown")
    assert tiers.tolist() == ["<=5k", "unknown", "unknown", ">100k"]
    assert list(tiers.cat.categories) == [*tier_labels(CREDIT_TIERS), "unknown"]


def test_the_payment_decisions_and_the_views_share_the_policy_tier_table() -> None:
    policy = load_payment_policy(POLICY_DIR)
    table = tuple(
        (t.name, math.inf if t.max_amount is None else float(t.max_amount)) for t in policy.tiers
    )
    # the fallback of the views has the bounds of the shipped policy
    assert [upper for _, upper in DEFAULT_TIERS] == [upper for _, upper in table]
    views = amount_tier(pd.Series(EDGES), table).astype(object).tolist()
    decisions = [decide_payment(policy, amount, 0.0).tier for amount in EDGES]
    assert views == decisions
