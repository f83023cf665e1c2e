"""Single-row LightGBM margins through the booster's fast single-row C API.

``Booster.predict`` re-creates a predictor (deep copies of its parameters, input checks) on
every call: ~80 us for one row.  LightGBM's ``LGBM_BoosterPredictForMatSingleRowFast`` keeps
one prepared configuration and scores a row in a few microseconds, with the same trees,
iterations and ``num_threads=1``; a test asserts the margins equal ``Booster.predict``'s.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

import numpy as np


class SingleRowMargin:
    """Raw margin (``raw_score=True``) of one float64 row, for one booster."""

    def __init__(self, booster: Any, n_features: int) -> None:
        from lightgbm import basic

        num_iteration = booster.best_iteration if booster.best_iteration > 0 else -1
        self.n_features = n_features
        self._lib = basic._LIB
        self._safe_call = basic._safe_call
        self._booster = booster  # keeps the booster (and its handle) alive
        self._config = ctypes.c_void_p()
        self._safe_call(
            self._lib.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(basic._C_API_PREDICT_RAW_SCORE),
                ctypes.c_int(0),
                ctypes.c_int(num_iteration),
                ctypes.c_int(basic._C_API_DTYPE_FLOAT64),
                ctypes.c_int32(n_features),
                basic._c_str("num_threads=1"),
                ctypes.byref(self._config),
            )
        )
        self._out = np.zeros(1, dtype=np.float64)
        self._out_len = ctypes.c_int64(0)
        self._lock = threading.Lock()  # the prepared configuration holds one row buffer

    def __call__(self, row: np.ndarray) -> float:
        """The margin of ``row`` (``n_features`` values, NaN for missing)."""
        data = np.ascontiguousarray(row, dtype=np.float64).reshape(-1)
        if data.shape[0] != self.n_features:
            raise ValueError(f"expected {self.n_features} features, got {data.shape[0]}")
        with self._lock:
            self._safe_call(
                self._lib.LGBM_BoosterPredictForMatSingleRowFast(
                    self._config,
                    data.ctypes.data_as(ctypes.c_void_p),
                    ctypes.byref(self._out_len),
                    self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
                )
            )
            return float(self._out[0])

    def __del__(self) -> None:
        config = getattr(self, "_config", None)
        if config is not None and config.value:
            self._lib.LGBM_FastConfigFree(config)


def single_row_margin(model: Any) -> SingleRowMargin | None:
    """The fast margin of a binary LightGBM model (``models.registry.LoadedModel``), or None
    for anything else (then the model's own ``predict_proba`` is used)."""
    booster = getattr(model, "booster", None)
    if booster is None or getattr(model, "calibrator", None) is None:
        return None
    try:
        if booster.num_model_per_iteration() != 1:
            return None
        return SingleRowMargin(booster, len(model.feature_names))
    except Exception:  # an unusual booster: fall back to the model's own predict
        return None
