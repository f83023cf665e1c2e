"""The limit refresh with its scoring on Spark (mapInPandas, the champion broadcast): the same
PDs as the model scores itself, and the same published version id and limits as DuckDB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.registry import LoadedModel
from tests.yidai.test_limits_refresh import (  # noqa: F401  (fixtures)
    DAY1,
    credit_policy,
    estimator,
    model,
    refresh,
    write_warehouse,
)
from yidai.core.settings import reset_settings_cache
from yidai.core.spark import stop_spark
from yidai.decisioning.policy import CreditPolicy
from yidai.jobs.limits import read_limits_table
from yidai.jobs.limits.spark_scoring import predict_pd_spark


def _world(root: Path) -> dict[str, object]:
    warehouse = root / "warehouse" / "yidai.duckdb"
    write_warehouse(warehouse, DAY1)
    return {"serving": root / "serving", "warehouse": warehouse, "tmp": root}


def test_refresh_on_spark_publishes_the_duckdb_version(
    tmp_path: Path,
    model: LoadedModel,  # noqa: F811  (the imported fixture)
    credit_policy: CreditPolicy,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    on_duckdb = refresh(_world(tmp_path / "duckdb"), DAY1, model, credit_policy)
    monkeypatch.setenv("YIDAI_ENGINE", "spark")
    monkeypatch.setenv("YIDAI_SPARK_SHUFFLE_PARTITIONS", "2")
    reset_settings_cache()
    try:
        X = np.random.default_rng(3).uniform(0, 2, (1_000, len(model.feature_names)))
        X[::7, 0] = np.nan
        assert np.array_equal(predict_pd_spark(model, X, partitions=3), model.predict_pd(X))
        spark_world = _world(tmp_path / "spark")
        on_spark = refresh(spark_world, DAY1, model, credit_policy)
    finally:
        stop_spark()
        monkeypatch.delenv("YIDAI_ENGINE")
        reset_settings_cache()
    assert on_spark.published and on_spark.version == on_duckdb.version
    a = read_limits_table(tmp_path / "duckdb" / "serving")
    b = read_limits_table(spark_world["serving"])  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(a, b)
