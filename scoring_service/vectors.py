"""One request's full feature vector, with the feature store's own single-request path.

``features.request_features`` runs the declared compute functions on a
``features.request.SingleRequest`` (plain values, no pandas: microseconds), the path the
feature store's parity tests check against the offline training rows.  Credit sets get the
applicant's snapshot vector; the payment set goes through the snapshot's ``vector(request)``
(payer / counterpart / merchant profiles and the seen-before-today pairs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from features.definitions import get_feature_set
from features.request import request_features


class RequestVectorizer:
    """Full feature vectors (feature-set column order) of single requests for one snapshot."""

    def __init__(self, snapshot: Any) -> None:

        self.snapshot = snapshot
        self.fs = get_feature_set(snapshot.feature_set)
        self.by_snapshot = self.fs.entity == "payer"

    def vector(
        self, profile: np.ndarray | None, request: Mapping[str, Any], entity_id: str
    ) -> np.ndarray:
        """The request's full vector; ``profile`` is the entity's snapshot vector or None."""

        if self.by_snapshot:
            return np.asarray(self.snapshot.vector(request, entity_id), dtype=np.float64)
        return request_features(self.fs, profile, request)

    def read(self, request: Mapping[str, Any], entity_id: str) -> tuple[np.ndarray, Any]:
        """The request's full vector and the entity's profile (None: unknown), read from the
        snapshot together: the payment set's profiles and pairs are one store read (one
        Redis round trip)."""
        full, profile = self.snapshot.vector_and_profile(request, entity_id)
        return np.asarray(full, dtype=np.float64), profile
