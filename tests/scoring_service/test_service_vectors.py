"""The service's single-request vectors equal the offline batch path, column for column."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import load_snapshot
from features.request import PAIR_FIELDS, _recent_history, request_features_batch
from scoring_service.vectors import RequestVectorizer
from tests.support.sandbox import MODELS, Sandbox
from yidai.core.settings import Settings


def _batch_of_one(snapshot, profiles: dict, fields: dict, history=None, seen=None) -> np.ndarray:  # type: ignore[no-untyped-def]
    fs = snapshot.feature_set
    from features.definitions import get_feature_set
    from features.request import profile_defaults

    fset = get_feature_set(fs)
    prof: dict[str, np.ndarray] = {}
    for entity in fset.profile_entities:
        vec = profiles.get(entity)
        vec = profile_defaults(fset, entity) if vec is None else vec
        for j, c in enumerate(fset.profile_columns(entity)):
            prof[c] = np.asarray(vec[j : j + 1], np.float64)
    arrays = {k: np.array([v], dtype=object) for k, v in fields.items()}
    return request_features_batch(fset, prof, arrays, history=history, seen_before_today=seen)[0]


@pytest.mark.parametrize("product", ["personal", "merchant", "sme"])
def test_credit_vector_equals_batch_path(sandbox: Sandbox, product: str) -> None:
    snapshot = load_snapshot(sandbox.serving, MODELS[product][1])
    vectorizer = RequestVectorizer(snapshot)
    rng = np.random.default_rng(1)
    for entity in [*sandbox.entities[product][:15], "unknown-entity"]:
        profile = snapshot.get(entity)
        request = {"requested_amount": float(rng.uniform(1, 1e5))}
        fast = vectorizer.vector(profile, request, entity)
        slow = _batch_of_one(snapshot, {snapshot.entity: profile}, request)
        np.testing.assert_array_equal(fast, slow)


def test_payment_vector_equals_batch_path(sandbox: Sandbox) -> None:
    """Random recent events (some today, some yesterday, repeated devices) and seen flags."""
    snapshot = load_snapshot(sandbox.serving, MODELS["payment"][1])
    vectorizer = RequestVectorizer(snapshot)
    rng = np.random.default_rng(3)
    payers = [*sandbox.entities["payment"][:12], "unknown-payer"]
    for i, payer in enumerate(payers):
        ts = dt.datetime(2026, 7, 1, int(rng.integers(0, 24)), int(rng.integers(0, 60)))
        recent = [
            {
                "ts": ts - dt.timedelta(minutes=int(rng.integers(1, 24 * 60))),
                "amount": round(float(rng.uniform(1, 900)), 2),
                "counterpart_id": f"p{rng.integers(0, 3)}",
                "device_id": None if rng.random() < 0.2 else f"d{rng.integers(0, 2)}",
                "channel": str(rng.choice(["app", "web"])),
            }
            for _ in range(int(rng.integers(0, 8)))
        ]
        request = {
            "payer_id": payer,
            "event_type": "pos" if i % 3 == 0 else "payment",
            "ts": ts,
            "amount": float(rng.uniform(1, 30_000)),
            "counterpart_id": f"p{rng.integers(0, 4)}",
            "merchant_id": None,
            "mcc": "7995" if i % 4 == 0 else "5411",
            "entry_mode": "manual" if i % 5 == 0 else "chip",
            "channel": "app",
            "device_id": None if i % 6 == 0 else f"d{rng.integers(0, 3)}",
            "payment_type": "transfer_out" if i % 2 else "e_payment",
            "recent": recent,
        }
        fast = vectorizer.vector(snapshot.get(payer), request, payer)
        seen = {f: np.array([snapshot.seen_before(payer, f, request.get(f))]) for f in PAIR_FIELDS}
        profiles = {
            "payer": snapshot.get(payer, "payer"),
            "counterpart": snapshot.get(request["counterpart_id"], "counterpart"),
            "merchant": None,
        }
        fields = {k: v for k, v in request.items() if k != "recent"}
        slow = _batch_of_one(snapshot, profiles, fields, _recent_history(payer, recent), seen)
        np.testing.assert_array_equal(fast, slow, err_msg=f"payer {i}")


@pytest.mark.parametrize("product", ["personal", "payment"])
def test_fast_margin_equals_booster_predict(
    sandbox: Sandbox, sandbox_home: Path, product: str
) -> None:
    from models.registry import load_model
    from scoring_service.fastpredict import single_row_margin

    settings = Settings(
        home=sandbox_home, mlflow_tracking_uri=f"sqlite:///{sandbox_home / 'mlflow' / 'mlflow.db'}"
    )
    model = load_model(MODELS[product][0], "champion", settings=settings)
    fast = single_row_margin(model)
    assert fast is not None
    rng = np.random.default_rng(5)
    X = rng.normal(0, 1, (40, len(model.feature_names))) * rng.choice([1, 10, 1000], (40, 1))
    X[rng.random(X.shape) < 0.2] = np.nan
    got = np.array([fast(row) for row in X])
    np.testing.assert_array_equal(got, model.booster.predict(X, raw_score=True))
    # the credit models blend a linear part into the trees' margin (issue 18); fraud does not
    assert (model.blend is not None) == (product == "personal")
    served = np.concatenate(  # one row at a time, as scoring_service.decide does
        [model.blended_margin(np.array([g]), row[None, :]) for g, row in zip(got, X, strict=True)]
    )
    np.testing.assert_allclose(served, model.margin(X), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        model.calibrator.predict(served), model.predict_pd(X), rtol=0, atol=1e-12
    )
    contributions = np.array([fast.contributions(row) for row in X])
    np.testing.assert_array_equal(contributions, model.booster.predict(X, pred_contrib=True))
    for row, contribution in zip(X, contributions, strict=True):  # one row, as served
        blended = model.blended_contributions(contribution[None, :-1], row[None, :])
        fast_reasons = model.reason_coder.reasons(blended, values=row[None, :])
        assert fast_reasons == model.reason_codes(row[None, :])


def test_usual_payment_context_is_what_each_payer_used_before(
    sandbox: Sandbox, service_settings: Settings
) -> None:
    """The demo's everyday checkouts: a device, payee and channel the payer really used."""
    from scoring_service.demo import usual_payment_context

    snapshot = load_snapshot(sandbox.serving, MODELS["payment"][1])
    payers = [*sandbox.entities["payment"][:20], "unknown-payer"]
    context = usual_payment_context(service_settings, payers)
    assert context["unknown-payer"] == {}
    assert sum(len(c) == 3 for c in context.values()) >= 10
    for payer in payers[:-1]:
        for field, value in context[payer].items():
            assert snapshot.seen_before(payer, field, value), (payer, field, value)
    # seen_values: one pass, the same as the pairs of that payer
    payer = next(p for p in payers if "device_id" in context[p])
    assert snapshot.folder is not None
    pairs = pd.read_parquet(snapshot.folder / "pairs.parquet")
    mine = pairs[(pairs["payer_id"].astype(str) == payer) & (pairs["field"] == "device_id")]
    brute = sorted(set(mine["value"].astype(str)))
    assert brute and snapshot.seen_values([payer], "device_id")[payer] == brute

    # the demo's checkouts: 8 customers in their usual context, then the first on a new phone
    from scoring_service.demo import demo_checkouts

    rows = demo_checkouts(service_settings)
    customers = [r[0] for r in rows]
    assert len(rows) == 9 and len(set(customers[:8])) == 8
    assert set(customers) <= set(sandbox.entities["personal"])
    assert rows[-1] == (customers[0], "D-NEW-PHONE", "S-NEW-SELLER", "app")
    first = usual_payment_context(service_settings, customers[:1])[customers[0]]
    assert rows[0][1:] == (first.get("device_id", "D-1"), first.get("counterpart_id", "S001"),
                           first.get("channel", "app"))  # fmt: skip
