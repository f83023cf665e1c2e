"""DuckDB SQL transpiled to Spark SQL (no JVM): the idioms the rewrite handles, and the
engine setting."""

from __future__ import annotations

import pytest

from yidai.core.errors import YidaiError
from yidai.core.settings import reset_settings_cache
from yidai.core.spark import engine_name, to_spark_sql


def test_division_is_in_double_as_in_duckdb() -> None:
    out = to_spark_sql("SELECT sum(a) / 30 / nullif(sum(b), 0) AS x FROM t")
    assert out.count("AS DOUBLE") == 4


def test_decimal_casts_round_like_duckdb() -> None:
    out = to_spark_sql("SELECT CAST(amount AS DECIMAL(18, 2)) AS a FROM t")
    assert "ROUND(CAST(amount AS DOUBLE) * 100)" in out
    assert to_spark_sql("SELECT CAST('1.5' AS DECIMAL(18, 2))").count("ROUND") == 0


def test_star_replace_is_expanded_from_the_schema() -> None:
    schema = {"t": {"a": "double", "b": "string"}}.get
    out = to_spark_sql("SELECT * REPLACE (CAST(a AS DOUBLE) AS a) FROM t", schema)
    assert "REPLACE" not in out and "AS b" in out


def test_range_and_duckdb_only_functions() -> None:
    assert "RANGE(0, 6) AS m(m)" in to_spark_sql("SELECT m.m FROM k CROSS JOIN range(6) m(m)")
    out = to_spark_sql("SELECT regexp_full_match(x, '[0-9]+'), isfinite(y) FROM t")
    assert "RLIKE" in out and "ISNAN" in out


def test_engine_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    reset_settings_cache()
    assert engine_name() == "duckdb"
    monkeypatch.setenv("YIDAI_ENGINE", "spark")
    reset_settings_cache()
    assert engine_name() == "spark"
    with pytest.raises(YidaiError, match="unknown engine"):
        engine_name("flink")
    reset_settings_cache()
