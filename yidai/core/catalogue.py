"""The catalogue of products and models: the one list the others derive from.

Each model has a name (its MLflow registered name), a kind (``credit`` PD or ``fraud``
probability), the product it decides and the feature set it trains on (the *active* set:
moving a model to a new feature-set version is a one-line change here).
``features.definitions`` declares the feature sets; the training specs
(``models.training.MODEL_SPECS``), the pipeline and DAGs, the CLI, monitoring and the
scoring sandbox read their model lists from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ModelKind = Literal["credit", "fraud"]

#: Credit products (a PD model each), then the payment product (the fraud model).
CREDIT_PRODUCTS: tuple[str, ...] = ("personal", "merchant", "sme")
#: The revolving-line credit products (a borrower's line is reviewed again and again, and
#: all its reviews share one default).
LINE_PRODUCTS: tuple[str, ...] = ("merchant", "sme")
PAYMENT_PRODUCT = "payment"
PRODUCTS: tuple[str, ...] = (*CREDIT_PRODUCTS, PAYMENT_PRODUCT)


@dataclass(frozen=True)
class CatalogueModel:
    """One model: its registered name, kind, product and the feature set it trains on."""

    name: str
    kind: ModelKind
    product: str
    feature_set: str


MODELS: tuple[CatalogueModel, ...] = (
    CatalogueModel("personal_pd", "credit", "personal", "personal_credit_v3"),
    CatalogueModel("merchant_pd", "credit", "merchant", "merchant_credit_v4"),
    CatalogueModel("sme_pd", "credit", "sme", "sme_credit_v5"),
    CatalogueModel("payment_fraud", "fraud", PAYMENT_PRODUCT, "payment_fraud_v2"),
)
MODEL_NAMES: tuple[str, ...] = tuple(m.name for m in MODELS)
CREDIT_MODELS: tuple[CatalogueModel, ...] = tuple(m for m in MODELS if m.kind == "credit")
(FRAUD_MODEL,) = (m for m in MODELS if m.kind == "fraud")
