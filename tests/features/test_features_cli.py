"""The ``yidai features`` commands on a small synthetic warehouse."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from features.synthetic import synthetic_warehouse
from yidai.cli import app
from yidai.errors import YidaiError
from yidai.settings import reset_settings_cache


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("YIDAI_HOME", str(tmp_path))
    reset_settings_cache()
    wh = tmp_path / "warehouse" / "yidai.duckdb"
    wh.parent.mkdir(parents=True)
    con = duckdb.connect(str(wh))
    synthetic_warehouse(con, n_pos=3_000, n_payments=800, n_orders=300, days=120)
    con.close()
    yield tmp_path
    reset_settings_cache()


def test_build_publish_and_training_set_commands(home: Path) -> None:
    runner = CliRunner()
    built = runner.invoke(app, ["features", "build", "--as-of", "2026-01-20", "--from",
                                "2026-01-17", "-f", "merchant_credit_v1"])  # fmt: skip
    assert built.exit_code == 0, built.output
    assert "merchant_credit_v1/merchant" in built.output
    published = runner.invoke(app, ["features", "build", "--as-of", "2026-01-20"])
    assert published.exit_code == 0, published.output
    published = runner.invoke(app, ["features", "publish", "--as-of", "2026-01-20"])
    assert published.exit_code == 0, published.output
    assert (home / "serving" / "features" / "payment_fraud_v1" / "CURRENT").exists()
    out = home / "ts.parquet"
    made = runner.invoke(app, ["features", "training-set", "sme_credit_v1", "--as-of",
                               "2026-01-28", "--out", str(out), "--include-declined"])  # fmt: skip
    assert made.exit_code == 0, made.output
    assert out.exists()


def test_bad_input_is_a_user_error(home: Path) -> None:
    runner = CliRunner()
    bad_day = runner.invoke(app, ["features", "build", "--as-of", "2026-02-30"])
    assert isinstance(bad_day.exception, YidaiError)
    assert "not a date" in str(bad_day.exception)
    bad_set = runner.invoke(app, ["features", "build", "--as-of", "2026-01-20", "-f", "x_v1"])
    assert isinstance(bad_set.exception, YidaiError)
    assert "unknown feature set 'x_v1'" in str(bad_set.exception)
    catalog = runner.invoke(app, ["features", "catalog"])
    assert catalog.exit_code == 0 and "payer_txn_count_1h" in catalog.output
