"""Yidai feature store on DuckDB: features declared once, point-in-time training sets, and an
online snapshot that the scoring service reads without touching the warehouse.

Public API (stable):

* ``FEATURE_SETS``: name -> :class:`FeatureSet` (``.columns`` order, ``.monotone`` hints,
  ``.reason_groups``, ``.version``, ``.fingerprint``); ``get_feature_set(name)``.
* Offline: ``build_features(con, as_of, feature_sets=None)``,
  ``build_features_history(con, start, end, feature_sets=None)``,
  ``credit_spine(con, product, as_of, performance_months=None, include_declined=False)``,
  ``fraud_spine(con, as_of, label_delay_days=None, start=None)``,
  ``build_training_set(con, spine, feature_set) -> DataFrame``.
* Online: ``publish_snapshot(con_or_path, serving_dir, as_of)``,
  ``load_snapshot(serving_dir, feature_set) -> FeatureSnapshot`` (``.get(entity_id)``,
  ``.vector(request)``), ``current_pointer(serving_dir, feature_set)``,
  ``request_features(get_feature_set(name), profile_vector, request)``.
"""

from typing import TYPE_CHECKING, Any

from features.declarations import Feature, FeatureSet
from features.definitions import FEATURE_SETS, get_feature_set

if TYPE_CHECKING:
    from features.engine import build_features, build_features_history
    from features.request import request_features
    from features.serving import (
        FeatureSnapshot,
        current_pointer,
        load_snapshot,
        publish_snapshot,
    )
    from features.training import (
        CREDIT_FEATURE_SETS,
        FRAUD_FEATURE_SET,
        build_training_set,
        credit_spine,
        fraud_spine,
    )

# The offline and publishing side (DuckDB, pandas) loads on first use: a scoring worker
# imports only what it reads.
_LAZY = {
    "build_features": "features.engine",
    "build_features_history": "features.engine",
    "request_features": "features.request",
    "FeatureSnapshot": "features.serving",
    "current_pointer": "features.serving",
    "load_snapshot": "features.serving",
    "publish_snapshot": "features.serving",
    "CREDIT_FEATURE_SETS": "features.training",
    "FRAUD_FEATURE_SET": "features.training",
    "build_training_set": "features.training",
    "credit_spine": "features.training",
    "fraud_spine": "features.training",
}


def __getattr__(name: str) -> Any:
    """The lazily loaded part of the public API."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'features' has no attribute {name!r}")
    # deferred: DuckDB and pandas only for the callers that need them
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "CREDIT_FEATURE_SETS",
    "FEATURE_SETS",
    "FRAUD_FEATURE_SET",
    "Feature",
    "FeatureSet",
    "FeatureSnapshot",
    "build_features",
    "build_features_history",
    "build_training_set",
    "credit_spine",
    "current_pointer",
    "fraud_spine",
    "get_feature_set",
    "load_snapshot",
    "publish_snapshot",
    "request_features",
]
