"""Yidai models: metrics, calibrated LightGBM PD / fraud estimators, scorecard, reason codes,
training with out-of-time validation, and the MLflow registry.

Public API (import from the submodules; nothing heavy is imported here):

* ``models.training.train_model(name, *, settings=None, as_of=None, gate=None) -> TrainResult``
  for ``personal_pd``, ``merchant_pd``, ``sme_pd``, ``payment_fraud`` (``MODEL_SPECS``).
* ``models.registry.load_model(name, alias="champion", *, expected_feature_set_version=None)
  -> LoadedModel`` with ``predict_pd(X) -> (n,)``, ``score_points``, ``grade``,
  ``reason_codes(X, top_k)``; ``models.registry.promote(name, version, reason=...)``.
* ``models.metrics``: auc, gini, ks, psi, psi_by_feature, brier, calibration_table, lift,
  average_precision, card_precision_top_k (standard), card_fraud_share_top_k,
  amount_weighted_recall, roc_curve.
* ``models.estimator.GradientBoostedPD``, ``models.scorecard.Scorecard``,
  ``models.reasons.ReasonCoder`` (per-row ``FeatureReason`` codes).
"""
