"""The nightly merchant limit refresh end to end: real snapshot files, a real LightGBM model,
a real DuckDB warehouse, real version folders and pointer swaps (yidai.jobs.limits)."""

from __future__ import annotations

import json
import logging
import resource
import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.definitions import CREDIT_FEATURE_SETS, get_feature_set
from features.serving import FeatureSnapshot, load_snapshot
from models.estimator import GradientBoostedPD
from models.registry import LoadedModel
from models.scorecard import Scorecard
from tests.support.samples import insert_rows
from tests.support.synthetic import synthetic_merchant_profiles
from yidai.core import publishing
from yidai.core.errors import YidaiError
from yidai.core.settings import Settings
from yidai.decisioning.exposure import exposure as book_exposure
from yidai.decisioning.merchant_limits import REASONS, load_merchant_limit_policy
from yidai.decisioning.policy import CreditPolicy, load_credit_policy
from yidai.jobs.limits import (
    current_limits_pointer,
    load_published_limits,
    read_limit_runs,
    read_limits_summary,
    read_limits_table,
)
from yidai.jobs.limits.refresh import RefreshResult, read_loan_book, run_refresh

FS = get_feature_set(CREDIT_FEATURE_SETS["merchant"])  # the set the merchant policy reads
PROFILE_COLUMNS = FS.profile_columns("merchant")
POLICY_DIR = Path(__file__).resolve().parents[2] / "yidai" / "policies"
DAY1 = date(2026, 3, 31)
N_SNAPSHOT = 600
DELINQUENT = [f"m{i:04d}" for i in range(0, 10)]
COLLAPSED = [f"m{i:04d}" for i in range(10, 20)]
BOOKED = [f"m{i:04d}" for i in range(0, 300)]
NO_FEATURES = [f"m{i:04d}" for i in range(600, 610)]


def make_profiles(n: int, seed: int) -> pd.DataFrame:
    """Seeded merchant profiles (the merchant set's columns) and their default label."""
    return synthetic_merchant_profiles(n, seed)


@pytest.fixture(scope="module")
def estimator() -> GradientBoostedPD:
    """A real calibrated LightGBM merchant PD trained on seeded profiles."""
    data = make_profiles(6_000, seed=1)
    X = data[PROFILE_COLUMNS].copy()
    X["merchant_requested_to_turnover_now"] = np.random.default_rng(2).uniform(0, 3, len(X))
    X = X[FS.columns]
    est = GradientBoostedPD(n_estimators=40, min_child_samples=30, n_jobs=1)
    return est.fit(X[:4_000], data["label"][:4_000], eval_set=(X[4_000:], data["label"][4_000:]))


@pytest.fixture(scope="module")
def model(estimator: GradientBoostedPD) -> LoadedModel:
    """The estimator as the registry's loader would return it."""
    est = estimator
    metadata = {
        "feature_set": FS.name,
        "feature_set_version": FS.fingerprint,
        "feature_names": FS.columns,
        "calibrator": est.calibrator_.to_dict(),
        "scorecard": Scorecard().to_dict(),
        "reason_groups": {},
    }
    return LoadedModel(
        name="merchant_pd",
        version="1",
        alias="champion",
        run_id="test",
        booster=est.booster_,
        metadata=metadata,
    )


@pytest.fixture(scope="module")
def credit_policy() -> CreditPolicy:
    return load_credit_policy("merchant", POLICY_DIR)


def publish_snapshot_files(serving: Path, profiles: pd.DataFrame, as_of: date) -> FeatureSnapshot:
    """Write a merchant snapshot in the feature store's serving layout and load it
    with the feature store's own loader."""
    set_dir = serving / "features" / FS.name
    snapshot_id = f"{as_of.isoformat()}_test"
    folder = set_dir / snapshot_id
    folder.mkdir(parents=True, exist_ok=True)
    profiles[["entity_id", *PROFILE_COLUMNS]].to_parquet(folder / "merchant.parquet", index=False)
    meta = {
        "feature_set": FS.name,
        "version": FS.version,
        "fingerprint": FS.fingerprint,
        "as_of": as_of.isoformat(),
        "columns": FS.columns,
        "profiles": {"merchant": PROFILE_COLUMNS},
        "rows": {"merchant": len(profiles)},
        "snapshot_id": snapshot_id,
    }
    (set_dir / "CURRENT").write_text(json.dumps(meta), encoding="utf-8")
    return load_snapshot(serving, FS.name)


def day_profiles(day: int) -> pd.DataFrame:
    profiles = make_profiles(N_SNAPSHOT, seed=100 + day)
    profiles.insert(0, "entity_id", [f"m{i:04d}" for i in range(N_SNAPSHOT)])
    collapsed = profiles["entity_id"].isin(COLLAPSED)
    profiles.loc[collapsed, "merchant_net_turnover_30d"] = (
        profiles.loc[collapsed, "merchant_net_turnover_90d"] * 0.01
    )
    return profiles


def delivered_payment(day: date) -> pd.DataFrame:
    """One payment on ``day``: the warehouse holds that day's delivery (jobs refuse a day
    without ingested rows)."""
    return pd.DataFrame(
        {
            "payment_id": [f"P{day:%Y%m%d}"],
            "ts": [datetime.combine(day, datetime.min.time()) + timedelta(hours=9)],
            "payer_type": "customer",
            "payer_id": "c0001",
            "payment_type": "e_payment",
            "amount": 100.0,
            "channel": "app",
            "status": "success",
        }
    )


def write_warehouse(path: Path, as_of: date) -> None:
    """A loan book: 310 merchants with lines (10 without features), 10 of them 40 days past
    due."""
    rng = np.random.default_rng(5)
    merchants = BOOKED + NO_FEATURES
    n = len(merchants)
    limits = rng.choice([20_000.0, 50_000.0, 80_000.0, 150_000.0], n)
    opened = datetime(2025, 10, 1)
    apps = pd.DataFrame(
        {
            "application_id": [f"A{m}" for m in merchants],
            "ts": [opened + timedelta(days=int(d)) for d in rng.integers(0, 60, n)],
            "product": "merchant",
            "applicant_id": merchants,
            "requested_amount": limits,
            "decision": "approved",
            "approved_limit": limits,
            "annual_rate": 0.06,
        }
    )
    month_end = datetime(2026, 2, 28)
    perf = pd.DataFrame(
        {
            "account_id": apps["application_id"],
            "snapshot_date": month_end,
            "credit_limit": limits,
            "outstanding": np.round(limits * rng.uniform(0, 0.9, n), 2),
            "days_past_due": 0,
        }
    )
    overdue = pd.DataFrame(
        {
            "schedule_id": [f"S{m}" for m in DELINQUENT],
            "account_id": [f"A{m}" for m in DELINQUENT],
            "due_date": datetime.combine(as_of - timedelta(days=40), datetime.min.time()),
            "amount_due": 1_000.0,
            "paid_at": pd.NaT,
            "amount_paid": 0.0,
            "days_past_due": 40,
        }
    )
    for table, frame in (
        ("loan_applications", apps),
        ("loan_performance", perf),
        ("loan_repayments", overdue),
        ("payments", delivered_payment(as_of)),
    ):
        insert_rows(path, table, frame)


@pytest.fixture()
def world(tmp_path: Path) -> Iterator[dict[str, object]]:
    warehouse = tmp_path / "warehouse" / "yidai.duckdb"
    write_warehouse(warehouse, DAY1)
    yield {"serving": tmp_path / "serving", "warehouse": warehouse, "tmp": tmp_path}


def inputs(
    world: dict[str, object], as_of: date, model: LoadedModel, credit_policy: CreditPolicy
) -> dict[str, object]:
    """Everything run_refresh needs for ``as_of`` (the snapshot is published first)."""
    serving = world["serving"]
    assert isinstance(serving, Path)
    warehouse = world["warehouse"]
    assert isinstance(warehouse, Path)
    return {
        "snapshot": publish_snapshot_files(serving, day_profiles((as_of - DAY1).days), as_of),
        "model": model,
        "book": read_loan_book(warehouse, as_of),
        "policy": load_merchant_limit_policy(POLICY_DIR / "merchant_limits.yaml"),
        "credit_policy": credit_policy,
        "serving_dir": serving,
    }


def refresh(
    world: dict[str, object], as_of: date, model: LoadedModel, credit_policy: CreditPolicy
) -> RefreshResult:
    return run_refresh(as_of, **inputs(world, as_of, model, credit_policy))  # type: ignore[arg-type]


def test_loan_book_reads_lines_balances_and_arrears(world: dict[str, object]) -> None:
    book = read_loan_book(world["warehouse"], DAY1)  # type: ignore[arg-type]
    assert len(book) == len(BOOKED) + len(NO_FEATURES)
    late = book.set_index("merchant_id").loc[DELINQUENT, "dpd"]
    assert (late == 40).all()
    assert (book.loc[~book["merchant_id"].isin(DELINQUENT), "dpd"] == 0).all()
    assert (book["outstanding"] <= book["book_line"]).all()
    assert read_loan_book(world["warehouse"], date(2025, 9, 30)).empty  # type: ignore[arg-type]


def test_loan_book_takes_the_latest_line_all_balances_and_current_arrears(
    tmp_path: Path,
) -> None:
    """Several accounts per merchant: the latest reviewed line, every balance, and only
    arrears still unpaid at the as-of date (not an old month-end figure)."""
    warehouse = tmp_path / "yidai.duckdb"
    as_of = date(2026, 3, 31)

    def app(account: str, merchant: str, day: int, line: float) -> dict[str, object]:
        return {
            "application_id": account,
            "ts": datetime(2025, 10, 1) + timedelta(days=day),
            "product": "merchant",
            "applicant_id": merchant,
            "requested_amount": line,
            "decision": "approved",
            "approved_limit": line,
            "annual_rate": 0.06,
        }

    insert_rows(
        warehouse,
        "loan_applications",
        [
            app("A1", "mx", 0, 150_000.0),  # first line, balance still running off
            app("A2", "mx", 60, 50_000.0),  # line review: the line now
            app("A3", "mx", 90, 80_000.0) | {"ts": datetime(2026, 4, 2)},  # after the as-of
            app("B1", "my", 0, 40_000.0),  # paid off, late long ago
            app("B2", "my", 30, 60_000.0),
        ],
    )

    def perf(account: str, month_end: datetime, line: float, out: float, dpd: int) -> dict:
        return {
            "account_id": account,
            "snapshot_date": month_end,
            "credit_limit": line,
            "outstanding": out,
            "days_past_due": dpd,
        }

    feb, jan = datetime(2026, 2, 28), datetime(2026, 1, 31)
    insert_rows(
        warehouse,
        "loan_performance",
        [
            perf("A1", jan, 150_000.0, 90_000.0, 0),
            perf("A1", feb, 150_000.0, 70_000.0, 0),
            perf("A2", feb, 50_000.0, 20_000.0, 0),
            perf("B1", jan, 40_000.0, 5_000.0, 45),  # old month-end arrears, since cured
            perf("B1", feb, 40_000.0, 0.0, 0),
            perf("B2", feb, 60_000.0, 10_000.0, 0),
        ],
    )

    def item(sid: str, account: str, due: datetime, paid: datetime | None) -> dict:
        return {
            "schedule_id": sid,
            "account_id": account,
            "due_date": due,
            "amount_due": 1_000.0,
            "paid_at": paid if paid is not None else pd.NaT,
            "amount_paid": 1_000.0 if paid is not None else 0.0,
            "days_past_due": 0 if paid is None else max((paid - due).days, 0),
        }

    insert_rows(
        warehouse,
        "loan_repayments",
        [
            item("S1", "B1", datetime(2025, 12, 10), datetime(2026, 2, 1)),  # late, paid
            item("S2", "B2", datetime(2026, 3, 21), None),  # 10 days past due now
            item("S3", "A2", datetime(2026, 3, 1), datetime(2026, 3, 1)),
        ],
    )
    book = read_loan_book(warehouse, as_of).set_index("merchant_id")
    assert book.loc["mx", "book_line"] == 50_000.0  # the latest line, not the first or a later
    assert book.loc["mx", "outstanding"] == 90_000.0  # both accounts' latest balances
    assert book.loc["mx", "dpd"] == 0
    assert book.loc["my", "book_line"] == 60_000.0
    assert book.loc["my", "outstanding"] == 10_000.0  # the paid-off account adds nothing
    assert book.loc["my", "dpd"] == 10  # the unpaid item, not January's cured 45
    # March 20: the item is not yet due, and January's arrears were paid in February
    earlier = read_loan_book(warehouse, date(2026, 3, 20)).set_index("merchant_id")
    assert earlier.loc["my", "dpd"] == 0


def test_a_line_review_after_the_last_refresh_replaces_the_line(
    world: dict[str, object], model: LoadedModel, credit_policy: CreditPolicy
) -> None:
    first = refresh(world, DAY1, model, credit_policy)
    serving, warehouse = world["serving"], world["warehouse"]
    assert isinstance(serving, Path) and isinstance(warehouse, Path)
    t1 = read_limits_table(serving, version=first.version).set_index("merchant_id")
    reviewed = "m0100"
    new_line = float(t1.loc[reviewed, "credit_line"]) + 77_000.0
    insert_rows(
        warehouse,
        "loan_applications",
        [
            {
                "application_id": "review-1",
                "ts": datetime.combine(DAY1 + timedelta(days=1), datetime.min.time())
                + timedelta(hours=10),
                "product": "merchant",
                "applicant_id": reviewed,
                "requested_amount": new_line,
                "decision": "approved",
                "approved_limit": new_line,
                "annual_rate": 0.06,
            }
        ],
    )
    day2 = refresh(world, DAY1 + timedelta(days=1), model, credit_policy)
    t2 = read_limits_table(serving, version=day2.version).set_index("merchant_id")
    assert t2.loc[reviewed, "previous_line"] == new_line
    others = t2.index.intersection(t1.index).drop(reviewed)
    assert (t2.loc[others, "previous_line"] == t1.loc[others, "credit_line"]).all()


def test_a_balance_within_the_book_line_is_not_over_limit_only_accrual_is(
    world: dict[str, object], model: LoadedModel, credit_policy: CreditPolicy
) -> None:
    """The core book lets a borrower draw up to the book's line: a balance drawn above the
    last published figure but within the book's line is honoured as the current line (not
    ``KEEP_OVER_LIMIT``); only a balance past the book's line (interest accrual) is over."""
    first = refresh(world, DAY1, model, credit_policy)
    serving = world["serving"]
    assert isinstance(serving, Path)
    t1 = read_limits_table(serving, version=first.version).set_index("merchant_id")
    day2 = DAY1 + timedelta(days=1)
    given = inputs(world, day2, model, credit_policy)
    book = given["book"]
    assert isinstance(book, pd.DataFrame)
    book = book.set_index("merchant_id")
    # active, scored lines the first night cut below the book's line
    cut = t1[
        (t1["status"] == "active")
        & t1.index.isin(BOOKED)
        & ~t1.index.isin(DELINQUENT + COLLAPSED)
        & (t1["credit_line"] < book["book_line"].reindex(t1.index) - 1_000)
    ]
    assert len(cut) >= 2, "the fixture's first night cuts no line below the book's line"
    within, accrued = cut.index[0], cut.index[1]
    drawn = (float(t1.loc[within, "credit_line"]) + float(book.loc[within, "book_line"])) / 2
    over = float(book.loc[accrued, "book_line"]) * 1.02  # a month or two of interest
    book.loc[within, "outstanding"] = drawn
    book.loc[accrued, "outstanding"] = over
    given["book"] = book.reset_index()
    result = run_refresh(day2, **given)  # type: ignore[arg-type]
    t2 = read_limits_table(serving, version=result.version).set_index("merchant_id")

    assert drawn > t1.loc[within, "credit_line"]  # above the last published figure
    assert t2.loc[within, "previous_line"] == pytest.approx(drawn)  # honoured, not over it
    assert t2.loc[within, "reason_code"] != "KEEP_OVER_LIMIT"
    assert t2.loc[within, "credit_line"] >= drawn - 1e-6
    assert t2.loc[accrued, "previous_line"] == pytest.approx(book.loc[accrued, "book_line"])
    assert t2.loc[accrued, "reason_code"] == "KEEP_OVER_LIMIT"
    assert t2.loc[accrued, "credit_line"] == pytest.approx(t2.loc[accrued, "previous_line"])
    over_limit = t2[(t2["status"] == "active") & (t2["outstanding"] > t2["credit_line"] + 1e-6)]
    assert list(over_limit.index) == [accrued]


def test_first_refresh_publishes_bounded_reasoned_lines(
    world: dict[str, object], model: LoadedModel, credit_policy: CreditPolicy
) -> None:
    result = refresh(world, DAY1, model, credit_policy)
    serving = world["serving"]
    assert isinstance(serving, Path)
    assert result.published and not result.reused
    assert current_limits_pointer(serving) == result.version
    table = read_limits_table(serving).set_index("merchant_id")
    assert len(table) == N_SNAPSHOT + len(NO_FEATURES)
    assert set(table["reason_code"]) <= set(REASONS)
    assert np.isfinite(table[["credit_line", "available", "utilisation"]]).all().all()
    assert (table.loc[DELINQUENT, "reason_code"] == "FREEZE_DELINQUENT").all()
    assert (table.loc[COLLAPSED[:5], "status"] == "frozen").all()  # booked + collapsed
    assert (table.loc[NO_FEATURES, "reason_code"] == "FREEZE_NO_TURNOVER").all()
    assert (table.loc[NO_FEATURES, "credit_line"] > 0).all()
    booked = table.loc[BOOKED]
    moved = booked[booked["status"] == "active"]
    assert len(moved) > 150
    assert (moved["credit_line"] <= moved["previous_line"] * 1.3 + 1e-6).all()
    assert (moved["credit_line"] >= moved["previous_line"] * 0.5 - 1e-6).all()
    assert (moved["credit_line"] >= moved["outstanding"]).all()
    assert (table["decision"] == "new").sum() > 10
    assert (table.loc[table["status"] == "frozen", "available"] == 0).all()

    published = load_published_limits(serving)
    assert published.version == result.version and published.as_of == DAY1
    late = published.get(DELINQUENT[0])
    assert late is not None and late.status == "frozen" and late.available == 0.0
    assert published.get("no-such-merchant") is None

    changes = read_limits_table(serving, "changes.parquet")
    changed = table[
        (table["credit_line"] != table["previous_line"])
        | (table["status"] != table["previous_status"])
    ]
    assert set(changes["merchant_id"]) == set(changed.index)
    assert changes["reason_code"].notna().all() and changes["reason_text"].notna().all()
    assert np.allclose(changes["change"], changes["credit_line"] - changes["previous_line"])


def test_committed_exposure_of_a_held_line_is_its_balance() -> None:
    line = np.array([100_000.0, 100_000.0, 100_000.0, 0.0])
    outstanding = np.array([30_000.0, 150_000.0, 150_000.0, 0.0])
    status = np.array(["active", "active", "frozen", "none"])
    exposure = book_exposure(line, outstanding, status)
    assert exposure.tolist() == [100_000.0, 150_000.0, 150_000.0, 0.0]


def test_summary_figures_add_up(
    world: dict[str, object], model: LoadedModel, credit_policy: CreditPolicy
) -> None:
    result = refresh(world, DAY1, model, credit_policy)
    serving = world["serving"]
    assert isinstance(serving, Path)
    summary = read_limits_summary(serving)
    assert summary == json.loads(json.dumps(result.summary))
    table = read_limits_table(serving)
    counted = sum(summary[k] for k in ("new", "increase", "keep", "decrease", "freeze"))
    assert counted + summary["no_line"] == summary["merchants"] == len(table)
    assert sum(summary["reasons"].values()) == len(table)
    by_grade = read_limits_table(serving, "summary_by_grade.parquet")
    assert by_grade["merchants"].sum() == len(table)
    assert by_grade["exposure_before"].sum() == pytest.approx(summary["exposure_before"])
    assert by_grade["exposure_after"].sum() == pytest.approx(summary["exposure_after"])
    assert by_grade["exposure_change"].sum() == pytest.approx(summary["exposure_change"])
    assert summary["exposure_change"] == pytest.approx(
        summary["exposure_after"] - summary["exposure_before"]
    )
    active = table["status"] == "active"
    held = table.loc[active, ["credit_line", "outstanding"]].max(axis=1)  # a held line: balance
    expected_after = held.sum() + table.loc[~active, "outstanding"].sum()
    assert summary["exposure_after"] == pytest.approx(expected_after)
    assert summary["lines_after"] == summary["lines_before"] + summary["new"]
    runs = read_limit_runs(serving)
    assert list(runs["version"]) == [result.version]


def test_rerun_is_idempotent_and_next_day_builds_on_the_published_version(
    world: dict[str, object], model: LoadedModel, credit_policy: CreditPolicy
) -> None:
    serving = world["serving"]
    assert isinstance(serving, Path)
    first = refresh(world, DAY1, model, credit_policy)
    mtime = (first.path / "limits.parquet").stat().st_mtime_ns
    again = refresh(world, DAY1, model, credit_policy)
    assert again.version == first.version and again.reused and again.published
    assert (first.path / "limits.parquet").stat().st_mtime_ns == mtime

    day2 = refresh(world, DAY1 + timedelta(days=1), model, credit_policy)
    assert day2.version != first.version
    assert day2.summary["previous_version"] == first.version
    assert current_limits_pointer(serving) == day2.version
    t1 = read_limits_table(serving, version=first.version).set_index("merchant_id")
    t2 = read_limits_table(serving).set_index("merchant_id")
    common = t1.index.intersection(t2.index)
    assert (t2.loc[common, "previous_line"] == t1.loc[common, "credit_line"]).all()
    assert (t2.loc[DELINQUENT, "status"] == "frozen").all()
    # a back-fill of an older date is written (same version) but never un-publishes a newer one
    backfill = refresh(world, DAY1, model, credit_policy)
    assert backfill.version == first.version and not backfill.published
    assert current_limits_pointer(serving) == day2.version
    assert len(read_limit_runs(serving)) == 2


def test_a_write_failing_midway_publishes_nothing(
    world: dict[str, object], model: LoadedModel, credit_policy: CreditPolicy
) -> None:
    serving = world["serving"]
    assert isinstance(serving, Path)
    first = refresh(world, DAY1, model, credit_policy)
    day2 = DAY1 + timedelta(days=1)
    prepared = inputs(world, day2, model, credit_policy)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))  # files over 4 KB cannot be written
    try:
        with pytest.raises(YidaiError, match="nothing was published"):
            run_refresh(day2, **prepared)  # type: ignore[arg-type]
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert current_limits_pointer(serving) == first.version
    assert [p.name for p in (serving / "limits" / "versions").iterdir()] == [first.version]
    assert load_published_limits(serving).version == first.version
    # the next run succeeds normally
    assert refresh(world, DAY1 + timedelta(days=1), model, credit_policy).published


def test_concurrent_reader_sees_the_old_or_the_new_version_only(
    world: dict[str, object], model: LoadedModel, credit_policy: CreditPolicy
) -> None:
    serving = world["serving"]
    assert isinstance(serving, Path)
    refresh(world, DAY1, model, credit_policy)
    seen: list[tuple[str, float]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read_forever() -> None:
        while not stop.is_set():
            try:
                published = load_published_limits(serving)
                record = published.get("m0100")
                assert record is not None
                seen.append((published.version, record.credit_line))
            except BaseException as exc:
                errors.append(exc)
                return

    reader = threading.Thread(target=read_forever)
    reader.start()
    try:
        versions = [refresh(world, DAY1 + timedelta(days=d), model, credit_policy).version
                    for d in range(1, 4)]  # fmt: skip
    finally:
        stop.set()
        reader.join()
    assert not errors
    assert len({v for v, _ in seen}) >= 2
    lines = {
        v: read_limits_table(serving, version=v).set_index("merchant_id").loc["m0100"]
        for v in {v for v, _ in seen}
    }
    for version, line in seen:
        assert line == lines[version]["credit_line"]
        assert lines[version]["version"] == version
    assert current_limits_pointer(serving) == versions[-1]


def test_cli_refresh_with_the_real_loaders_and_clear_errors(
    tmp_path: Path,
    model: LoadedModel,
    estimator: GradientBoostedPD,
    credit_policy: CreditPolicy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Empty snapshot and missing champion stop the run (nothing published); once a champion
    is registered in MLflow, `yidai limits refresh` publishes and `show` reads it back."""
    from typer.testing import CliRunner

    from yidai.cli import app
    from yidai.core.settings import reset_settings_cache

    monkeypatch.setenv("YIDAI_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    reset_settings_cache()
    settings = Settings(home=tmp_path)
    write_warehouse(settings.warehouse, DAY1)
    runner = CliRunner()
    empty = publish_snapshot_files(settings.serving, day_profiles(0).iloc[:0], DAY1)
    with pytest.raises(YidaiError, match="empty"):
        run_refresh(
            DAY1,
            snapshot=empty,
            model=model,
            book=read_loan_book(settings.warehouse, DAY1),
            policy=load_merchant_limit_policy(POLICY_DIR / "merchant_limits.yaml"),
            credit_policy=credit_policy,
            serving_dir=settings.serving,
        )
    out = runner.invoke(app, ["limits", "refresh", "--as-of", str(DAY1), "--no-progress"])
    assert isinstance(out.exception, YidaiError) and "empty" in str(out.exception)
    publish_snapshot_files(settings.serving, day_profiles(0), DAY1)
    out = runner.invoke(app, ["limits", "refresh", "--as-of", str(DAY1), "--no-progress"])
    assert isinstance(out.exception, YidaiError) and "merchant_pd" in str(out.exception)
    assert current_limits_pointer(settings.serving) is None
    assert not (settings.serving / "limits").exists()

    register_champion(estimator, settings)
    out = runner.invoke(app, ["limits", "refresh", "--as-of", str(DAY1), "--no-progress"])
    assert out.exit_code == 0, out.output
    assert "published" in out.output and "committed exposure" in out.output
    version = current_limits_pointer(settings.serving)
    assert version is not None and version in out.output
    out = runner.invoke(app, ["limits", "show", "--merchant", DELINQUENT[0]])
    assert out.exit_code == 0 and "FREEZE_DELINQUENT" in out.output
    out = runner.invoke(app, ["limits", "show", "--changes", "5"])
    assert out.exit_code == 0 and "exposure" in out.output
    reset_settings_cache()


def register_champion(estimator: GradientBoostedPD, settings: Settings) -> None:
    """Register the estimator as the merchant_pd champion in the home's MLflow store."""
    from models.registry import GateDecision, ModelPackage, log_and_register

    package = ModelPackage(
        name="merchant_pd",
        estimator=estimator,
        scorecard=Scorecard(),
        feature_set=FS.name,
        feature_set_version=FS.fingerprint,
        reason_groups={},
        params={},
        metrics={"oot_auc": 0.7},
        primary_metric="oot_auc",
    )
    log_and_register(package, GateDecision(True, "first registered version"), settings=settings)


@pytest.fixture()
def cli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A home read by the CLI through YIDAI_HOME (no caller environment), breaker at 20 %."""
    from yidai.core.settings import get_settings, reset_settings_cache

    for name in ("MLFLOW_TRACKING_URI", "YIDAI_WAREHOUSE_PATH", "YIDAI_SERVING_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("YIDAI_HOME", str(tmp_path))
    monkeypatch.setenv("YIDAI_LIMITS_MAX_CHANGE_SHARE", "0.2")
    reset_settings_cache()
    yield get_settings()
    reset_settings_cache()


def invoke(*args: str) -> object:
    from typer.testing import CliRunner

    from yidai.cli import app

    return CliRunner().invoke(app, list(args))


def error_of(result: object) -> str:
    exc = getattr(result, "exception", None)
    assert isinstance(exc, YidaiError), getattr(result, "output", result)
    return str(exc)


def test_refresh_refuses_each_missing_input_and_publishes_nothing(
    cli_home: Settings, estimator: GradientBoostedPD, credit_policy: CreditPolicy
) -> None:
    settings = cli_home
    refresh_day = ("limits", "refresh", "--as-of", str(DAY1), "--no-progress")
    limits_dir = settings.serving / "limits"
    # no warehouse: named, and not created
    assert "does not exist" in error_of(invoke(*refresh_day))
    assert not settings.warehouse.exists() and not settings.warehouse.parent.exists()
    # a warehouse whose data stops before the day
    write_warehouse(settings.warehouse, DAY1)
    later = DAY1 + timedelta(days=3)
    message = error_of(invoke("limits", "refresh", "--as-of", str(later), "--no-progress"))
    assert f"no ingested rows for {later}" in message and f"latest event is on {DAY1}" in message
    # no published snapshot of the merchant set
    message = error_of(invoke(*refresh_day))
    assert f"no published snapshot of {FS.name}" in message
    # a snapshot of an earlier day: no feature rows for the refresh day
    publish_snapshot_files(settings.serving, day_profiles(0), DAY1 - timedelta(days=1))
    message = error_of(invoke(*refresh_day))
    assert f"no feature rows for {DAY1}" in message and str(DAY1 - timedelta(days=1)) in message
    # the day's snapshot but no champion
    publish_snapshot_files(settings.serving, day_profiles(0), DAY1)
    assert "merchant_pd" in error_of(invoke(*refresh_day))
    assert not limits_dir.exists()
    # an empty loan book (the loaded inputs path)
    register_champion(estimator, settings)
    from features.serving import load_snapshot as load
    from models.registry import load_model

    with pytest.raises(YidaiError, match="loan book as of 2026-03-31 is empty"):
        run_refresh(
            DAY1,
            snapshot=load(settings.serving, FS.name),
            model=load_model("merchant_pd", "champion", settings=settings),
            book=read_loan_book(settings.warehouse, DAY1).iloc[:0],
            policy=load_merchant_limit_policy(POLICY_DIR / "merchant_limits.yaml"),
            credit_policy=credit_policy,
            serving_dir=settings.serving,
        )
    assert current_limits_pointer(settings.serving) is None
    assert not limits_dir.exists()
    # every input present: published
    assert invoke(*refresh_day).exit_code == 0  # type: ignore[attr-defined]
    assert current_limits_pointer(settings.serving) is not None


def test_breaker_refuses_a_night_moving_too_much_of_the_book_unless_forced(
    world: dict[str, object],
    model: LoadedModel,
    credit_policy: CreditPolicy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from yidai.jobs.limits.breaker import LimitsBreakerError

    serving = world["serving"]
    assert isinstance(serving, Path)
    root = serving / "limits"
    # a first publication (no previous version) is not held back, however much it moves
    first = run_refresh(DAY1, **inputs(world, DAY1, model, credit_policy), max_change_share=0.2)  # type: ignore[arg-type]
    assert first.published and first.summary["book_change_share"] > 0.2
    assert first.summary["forced_reason"] is None and not first.summary["breaker_applied"]

    day2 = DAY1 + timedelta(days=1)
    prepared = inputs(world, day2, model, credit_policy)
    with pytest.raises(LimitsBreakerError) as tripped:
        run_refresh(day2, **prepared, max_change_share=0.2)  # type: ignore[arg-type]
    message = str(tripped.value)
    assert "of the book" in message and "over the limit of 20.0%" in message
    assert (
        "YIDAI_LIMITS_MAX_CHANGE_SHARE" in message
        and f"limits {first.version} stay live" in message
    )
    assert f'--as-of {day2} --force --reason "why"' in message
    assert current_limits_pointer(serving) == first.version
    assert [p.name for p in (root / "versions").iterdir()] == [first.version]
    assert list(read_limit_runs(serving)["version"]) == [first.version]

    with pytest.raises(YidaiError, match="needs a reason"):
        run_refresh(day2, **prepared, max_change_share=0.2, force_reason="  ")  # type: ignore[arg-type]
    reason = "policy recalibration approved by the credit committee"
    with caplog.at_level(logging.WARNING, logger="yidai.jobs.limits.breaker"):
        forced = run_refresh(day2, **prepared, max_change_share=0.2, force_reason=reason)  # type: ignore[arg-type]
    share = forced.summary["book_change_share"]
    assert forced.published and current_limits_pointer(serving) == forced.version
    assert share > 0.2 and f"{100 * share:.1f}%" in message
    warnings = [r.getMessage() for r in caplog.records if "FORCED" in r.getMessage()]
    assert len(warnings) == 1 and reason in warnings[0] and f"{100 * share:.1f}%" in warnings[0]
    assert publishing.read_manifest(root, forced.version)["forced_reason"] == reason
    assert read_limits_summary(serving)["forced_reason"] == reason
    # a re-run of the forced night (same inputs: same version) is not tripped again
    again = run_refresh(day2, **prepared, max_change_share=0.2)  # type: ignore[arg-type]
    assert again.reused and again.version == forced.version and again.published


def test_breaker_lets_a_night_under_the_limit_through(
    world: dict[str, object], model: LoadedModel, credit_policy: CreditPolicy
) -> None:
    refresh(world, DAY1, model, credit_policy)
    day2 = DAY1 + timedelta(days=1)
    prepared = inputs(world, day2, model, credit_policy)
    moved = run_refresh(day2, **prepared, max_change_share=1.0)  # type: ignore[arg-type]
    share = moved.summary["book_change_share"]
    assert 0 < share < 1 and moved.summary["book_change_limit"] == 1.0
    assert moved.summary["breaker_applied"]
    assert moved.summary["forced_reason"] is None
    assert publishing.read_manifest(moved.path.parents[1], moved.version)["forced_reason"] is None


def test_cli_refresh_force_needs_a_reason_and_the_breaker_reads_the_setting(
    cli_home: Settings, estimator: GradientBoostedPD
) -> None:
    settings = cli_home
    write_warehouse(settings.warehouse, DAY1)
    day2 = DAY1 + timedelta(days=1)
    payment = {str(k): v for k, v in delivered_payment(day2).iloc[0].items()}
    insert_rows(settings.warehouse, "payments", [payment])
    register_champion(estimator, settings)
    publish_snapshot_files(settings.serving, day_profiles(0), DAY1)
    first = invoke("limits", "refresh", "--as-of", str(DAY1), "--no-progress")
    assert first.exit_code == 0, first.output  # type: ignore[attr-defined]
    live = current_limits_pointer(settings.serving)
    publish_snapshot_files(settings.serving, day_profiles(1), day2)
    night = ("limits", "refresh", "--as-of", str(day2), "--no-progress")

    assert "--force needs --reason" in error_of(invoke(*night, "--force"))
    assert "--force needs --reason" in error_of(invoke(*night, "--force", "--reason", " "))
    assert "--reason only goes with --force" in error_of(invoke(*night, "--reason", "x"))
    tripped = error_of(invoke(*night))
    assert "circuit breaker" in tripped and "over the limit of 20.0%" in tripped
    assert current_limits_pointer(settings.serving) == live
    forced = invoke(*night, "--force", "--reason", "new underwriting policy, signed off")
    assert forced.exit_code == 0, forced.output  # type: ignore[attr-defined]
    assert "FORCED past the breaker: new underwriting policy, signed off" in forced.output  # type: ignore[attr-defined]
    assert current_limits_pointer(settings.serving) not in (None, live)
    assert read_limits_summary(settings.serving)["forced_reason"] == (
        "new underwriting policy, signed off"
    )
