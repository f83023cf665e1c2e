"""The DAGs on the Spark engine: the same DAG files; the warehouse pool is one slot only for
DuckDB (one writer of the file), on Spark it bounds the tasks sending work to the cluster."""

from __future__ import annotations

import pytest

from yidai.cli.airflow_local import SPARK_POOL_DESCRIPTION, pool_slots
from yidai.core.settings import reset_settings_cache
from yidai.jobs.pipeline import WAREHOUSE_POOL


def test_the_warehouse_pool_has_one_slot_on_duckdb_and_the_spark_setting_on_spark(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reset_settings_cache()
    assert pool_slots()[WAREHOUSE_POOL][0] == 1
    monkeypatch.setenv("YIDAI_ENGINE", "spark")
    monkeypatch.setenv("YIDAI_SPARK_POOL_SLOTS", "6")
    reset_settings_cache()
    try:
        assert pool_slots() == {WAREHOUSE_POOL: (6, SPARK_POOL_DESCRIPTION)}
    finally:
        monkeypatch.undo()
        reset_settings_cache()
