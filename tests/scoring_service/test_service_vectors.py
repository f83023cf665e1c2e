"""The fast single-request vectors equal the feature store's own ``request_features``."""

from __future__ import annotations

import numpy as np
import pytest

from features import load_snapshot, request_features
from scoring_service.sandbox import MODELS, Sandbox
from scoring_service.vectors import RequestVectorizer


@pytest.mark.parametrize("product", ["personal", "merchant", "sme"])
def test_fast_vector_equals_request_features(sandbox: Sandbox, product: str) -> None:
    snapshot = load_snapshot(sandbox.serving, MODELS[product][1])
    vectorizer = RequestVectorizer(snapshot)
    assert vectorizer.fast
    rng = np.random.default_rng(1)
    for entity in [*sandbox.entities[product][:15], "unknown-entity"]:
        profile = snapshot.get(entity)
        request = {"requested_amount": float(rng.uniform(1, 1e5))}
        fast = vectorizer.vector(profile, request, entity)
        slow = request_features(snapshot.feature_set, profile, request)
        np.testing.assert_array_equal(fast, slow)
