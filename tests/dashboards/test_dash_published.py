"""Published tables: versions, atomic pointer, pruning, failure leaves the old version."""

from __future__ import annotations

import pandas as pd
import pytest

from yidai.jobs.analytics.dashboard_tables import (
    current_version,
    publish_tables,
    read_meta,
    read_table,
)


def test_publish_then_read_the_current_version(tmp_path):
    area = tmp_path / "portfolio"
    assert current_version(area) is None
    assert read_table(area, "t") is None
    v1 = publish_tables(area, {"t": pd.DataFrame({"a": [1, 2]})}, {"as_of": "2025-10-01"})
    v2 = publish_tables(area, {"t": pd.DataFrame({"a": [3]})})
    assert v2 > v1 and current_version(area) == v2
    assert read_table(area, "t")["a"].tolist() == [3]
    assert read_table(area, "t", v1)["a"].tolist() == [1, 2]
    assert read_meta(area, v1)["as_of"] == "2025-10-01"


def test_old_versions_are_pruned(tmp_path):
    area = tmp_path / "a"
    versions = [publish_tables(area, {"t": pd.DataFrame({"a": [i]})}, keep=2) for i in range(4)]
    kept = sorted(p.name for p in area.iterdir() if p.is_dir())
    assert kept == versions[-2:]


def test_a_failed_publication_keeps_the_old_version(tmp_path):
    area = tmp_path / "a"
    v1 = publish_tables(area, {"t": pd.DataFrame({"a": [1]})})

    class Boom(pd.DataFrame):
        def to_parquet(self, *args, **kwargs):  # type: ignore[override]
            raise OSError("disk full")

    with pytest.raises(OSError):
        publish_tables(area, {"t": pd.DataFrame({"a": [2]}), "u": Boom({"b": [1]})})
    assert current_version(area) == v1
    assert [p.name for p in area.iterdir() if p.is_dir()] == [v1]
