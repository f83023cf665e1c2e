"""The ``yidai features`` commands on a small synthetic warehouse."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner, Result

from tests.support.synthetic import synthetic_warehouse
from yidai.cli import app
from yidai.core.errors import YidaiError
from yidai.core.settings import reset_settings_cache


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
    assert (home / "serving" / "features" / "payment_fraud_v2" / "CURRENT").exists()
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


@pytest.fixture()
def bare_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A home without a warehouse."""
    monkeypatch.delenv("YIDAI_WAREHOUSE_PATH", raising=False)
    monkeypatch.delenv("YIDAI_SERVING_DIR", raising=False)
    monkeypatch.setenv("YIDAI_HOME", str(tmp_path))
    reset_settings_cache()
    yield tmp_path
    reset_settings_cache()


def _error(result: Result) -> str:
    assert isinstance(result.exception, YidaiError), result.output
    return str(result.exception)


def test_every_command_refuses_a_missing_warehouse_and_creates_nothing(bare_home: Path) -> None:
    runner = CliRunner()
    warehouse = bare_home / "warehouse" / "yidai.duckdb"
    out = bare_home / "ts.parquet"
    for args in (
        ["features", "build", "--as-of", "2026-01-20"],
        ["features", "build", "--as-of", "2026-01-20", "--from", "2026-01-10"],
        ["features", "publish", "--as-of", "2026-01-20"],
        ["features", "training-set", "sme_credit_v1", "--as-of", "2026-01-20", "--out", str(out)],
    ):
        message = _error(runner.invoke(app, args))
        assert f"warehouse {warehouse} does not exist" in message, args
    assert list(bare_home.iterdir()) == []  # no warehouse, serving folder or training set


def _built_days(home: Path) -> list[str]:
    con = duckdb.connect(str(home / "warehouse" / "yidai.duckdb"), read_only=True)
    try:
        schemas = {r[0] for r in con.execute("SELECT schema_name FROM duckdb_schemas()").fetchall()}
        if "feat" not in schemas:
            return []
        rows = con.execute("SELECT DISTINCT CAST(as_of AS VARCHAR) FROM feat.builds").fetchall()
        return sorted(r[0] for r in rows)
    finally:
        con.close()


def test_a_day_without_ingested_rows_is_refused(home: Path) -> None:
    """The synthetic data ends in early 2026: a day of 2027 has nothing to build from."""
    runner = CliRunner()
    message = _error(runner.invoke(app, ["features", "build", "--as-of", "2027-03-01"]))
    assert "no ingested rows for 2027-03-01" in message
    assert "latest event is on 2026-" in message and "yidai ingest --day 2027-03-01" in message
    assert _built_days(home) == []
    out = home / "ts.parquet"
    args = ["features", "training-set", "sme_credit_v1", "--as-of", "2027-03-01", "--out", str(out)]
    assert "no ingested rows for 2027-03-01" in _error(runner.invoke(app, args))
    assert not out.exists()


def test_an_empty_training_set_is_refused(home: Path) -> None:
    """Early in the data no credit application has matured: nothing to train on."""
    out = home / "ts.parquet"
    args = ["features", "training-set", "merchant_credit_v2", "--as-of", "2025-10-05"]
    message = _error(CliRunner().invoke(app, [*args, "--out", str(out)]))
    assert "no merchant_credit_v2 training rows as of 2025-10-05" in message
    assert not out.exists()


def test_publish_checks_every_set_before_publishing_any(home: Path) -> None:
    runner = CliRunner()
    built = runner.invoke(app, ["features", "build", "--as-of", "2026-01-20", "-f",
                                "personal_credit_v2"])  # fmt: skip
    assert built.exit_code == 0, built.output
    message = _error(runner.invoke(app, ["features", "publish", "--as-of", "2026-01-20"]))
    assert "has no complete build as of 2026-01-20" in message
    assert not (home / "serving").exists()  # personal_credit_v2 was not published either


def test_an_empty_build_is_not_published(tmp_path: Path) -> None:
    """A day with a delivery but no entity at all builds empty profiles: never published."""
    from features import build_features, publish_snapshot
    from yidai.core.warehouse import ensure_tables

    path = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(path))
    ensure_tables(con)
    con.execute(
        "INSERT INTO payments (payment_id, ts, payer_type, payer_id, payment_type, amount, "
        "channel, status) VALUES ('p1', TIMESTAMP '2026-01-20 10:00', 'customer', 'c1', "
        "'e_payment', 10.0, 'app', 'success')"
    )
    build_features(con, dt.date(2026, 1, 20), ["merchant_credit_v2"])
    con.close()
    with pytest.raises(YidaiError, match="built as of 2026-01-20 with no rows"):
        publish_snapshot(path, tmp_path / "serving", dt.date(2026, 1, 20), ["merchant_credit_v2"])
    assert not (tmp_path / "serving").exists()
