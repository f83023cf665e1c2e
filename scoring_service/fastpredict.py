"""Single-row LightGBM margins and contributions through the booster's fast single-row C API.

``Booster.predict`` re-creates a predictor (deep copies of its parameters, input checks) on
every call: ~80 us for one row.  LightGBM's ``LGBM_BoosterPredictForMatSingleRowFast`` keeps
one prepared configuration and scores a row in a few microseconds, with the same trees,
iterations and ``num_threads=1``; tests assert the margins equal ``Booster.predict``'s and
the contributions equal ``predict(pred_contrib=True)``'s.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

import numpy as np


class _PreparedRow:
    """One prepared single-row prediction (``predict_type``) with its output buffer."""

    def __init__(self, booster: Any, n_features: int, predict_type: int, n_out: int) -> None:
        # heavy: LightGBM
        from lightgbm import basic

        num_iteration = booster.best_iteration if booster.best_iteration > 0 else -1
        self._lib = basic._LIB
        self._config = ctypes.c_void_p()
        basic._safe_call(
            self._lib.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(predict_type),
                ctypes.c_int(0),
                ctypes.c_int(num_iteration),
                ctypes.c_int(basic._C_API_DTYPE_FLOAT64),
                ctypes.c_int32(n_features),
                basic._c_str("num_threads=1"),
                ctypes.byref(self._config),
            )
        )
        self._predict = self._lib.LGBM_BoosterPredictForMatSingleRowFast
        self._safe_call = basic._safe_call
        self.out = np.zeros(n_out, dtype=np.float64)
        self._out_ptr = ctypes.c_void_p(self.out.ctypes.data)
        self._out_len = ctypes.c_int64(0)
        self._out_len_ref = ctypes.byref(self._out_len)
        self.lock = threading.Lock()  # the prepared configuration holds one row buffer

    def run(self, data: np.ndarray) -> None:
        """Predict ``data`` (contiguous float64) into :attr:`out`; hold :attr:`lock`."""
        self._safe_call(
            self._predict(
                self._config, ctypes.c_void_p(data.ctypes.data), self._out_len_ref, self._out_ptr
            )
        )

    def __del__(self) -> None:
        config = getattr(self, "_config", None)
        if config is not None and config.value:
            self._lib.LGBM_FastConfigFree(config)


class SingleRowMargin:
    """Raw margin (``raw_score=True``) and feature contributions of one float64 row, for one
    booster."""

    def __init__(self, booster: Any, n_features: int) -> None:
        # heavy: LightGBM
        from lightgbm import basic

        self.n_features = n_features
        self._booster = booster  # keeps the booster (and its handle) alive
        self._margin = _PreparedRow(booster, n_features, basic._C_API_PREDICT_RAW_SCORE, 1)
        self._contrib = _PreparedRow(
            booster, n_features, basic._C_API_PREDICT_CONTRIB, n_features + 1
        )

    def _row(self, row: np.ndarray) -> np.ndarray:
        data = np.ascontiguousarray(row, dtype=np.float64).reshape(-1)
        if data.shape[0] != self.n_features:
            raise ValueError(f"expected {self.n_features} features, got {data.shape[0]}")
        return data

    def __call__(self, row: np.ndarray) -> float:
        """The margin of ``row`` (``n_features`` values, NaN for missing)."""
        data = self._row(row)
        prepared = self._margin
        with prepared.lock:
            prepared.run(data)
            return float(prepared.out[0])

    def contributions(self, row: np.ndarray) -> np.ndarray:
        """Per-feature contributions of ``row`` to its margin, then the bias (SHAP values:
        ``n_features + 1`` values, as ``Booster.predict(pred_contrib=True)`` gives)."""
        data = self._row(row)
        prepared = self._contrib
        with prepared.lock:
            prepared.run(data)
            return prepared.out.copy()


def single_row_margin(model: Any) -> SingleRowMargin | None:
    """The fast margin of a binary LightGBM model (``models.registry.LoadedModel``: its
    ``calibrator`` and ``blended_margin``, which adds a linear part to the booster's), or
    None for anything else (then the model's own ``predict_pd`` is used)."""
    booster = getattr(model, "booster", None)
    needs = ("calibrator", "blended_margin", "blended_contributions")
    if booster is None or any(getattr(model, name, None) is None for name in needs):
        return None
    try:
        if booster.num_model_per_iteration() != 1:
            return None
        return SingleRowMargin(booster, len(model.feature_names))
    except Exception:  # an unusual booster: fall back to the model's own predict
        return None
