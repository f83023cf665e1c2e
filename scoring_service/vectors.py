"""One request's full feature vector, fast, with the feature store's own functions.

``features.request_features`` builds DataFrames for a batch of one (about 1 ms).  For the
credit feature sets, whose request-time features only read the request's numbers and the
profile, :class:`RequestVectorizer` runs the *same declared compute functions* on a
one-row stand-in of ``features.request.RequestBatch`` (microseconds); anything else (the
payment set's velocity and novelty features) goes through the snapshot's own
``vector(request)``.  A test checks both paths give identical vectors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from yidai.errors import YidaiError


class _OneRequest:
    """The part of ``RequestBatch`` the credit request features use, for one request."""

    n = 1

    def __init__(self, name: str, profile: Mapping[str, float], fields: Mapping[str, Any]):
        self._name = name
        self._profile = profile
        self._fields = fields

    def profile(self, column: str) -> np.ndarray:
        try:
            return np.array([self._profile[column]], dtype=np.float64)
        except KeyError:
            raise YidaiError(f"{self._name}: no profile column {column!r}") from None

    def number(self, name: str) -> np.ndarray:
        value = self._fields.get(name)
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            number = float("nan")
        if number != number:
            raise YidaiError(f"{self._name}: request field {name!r} is missing or not a number")
        return np.array([number])


class RequestVectorizer:
    """Full feature vectors (feature-set column order) of single requests for one snapshot."""

    def __init__(self, snapshot: Any) -> None:
        from features.request import get_feature_set, profile_defaults

        self.snapshot = snapshot
        self.fs = get_feature_set(snapshot.feature_set)
        self.fast = self.fs.entity != "payer"
        if self.fast:
            profile_cols = list(snapshot.profile_columns())
            self._profile_names = profile_cols
            self._defaults = profile_defaults(self.fs, self.fs.entity)
            position = {c: i for i, c in enumerate(profile_cols)}
            self._gather = np.array([position.get(c, -1) for c in self.fs.columns], dtype=np.intp)
            self._requests = [
                (j, f.compute)
                for j, f in enumerate(self.fs.features)
                if f.kind == "request" and f.compute is not None
            ]

    def vector(
        self, profile: np.ndarray | None, request: Mapping[str, Any], entity_id: str
    ) -> np.ndarray:
        """The request's full vector; ``profile`` is the entity's snapshot vector or None."""
        if not self.fast:
            return np.asarray(self.snapshot.vector(request, entity_id), dtype=np.float64)
        base = self._defaults if profile is None else profile
        out = base[self._gather]  # request-time slots get filled below
        if self._requests:
            batch = _OneRequest(
                self.fs.name, dict(zip(self._profile_names, base.tolist(), strict=True)), request
            )
            for j, compute in self._requests:
                out[j] = float(np.asarray(compute(batch))[0])
        return out
