"""The catalogue of products and models (yidai.core.catalogue) and the lists derived from it."""

from __future__ import annotations

from pathlib import Path

import pytest

import yidai
from features.definitions import CREDIT_FEATURE_SETS, FRAUD_FEATURE_SET, get_feature_set
from models.training import MODEL_SPECS
from tests.support.sandbox import MODELS as SANDBOX_MODELS
from yidai.core import catalogue
from yidai.decisioning import load_product_policy
from yidai.jobs import monitoring, pipeline

POLICY_DIR = Path(yidai.__file__).parent / "policies"


def test_every_product_has_one_model_and_every_model_a_product() -> None:
    assert sorted(m.product for m in catalogue.MODELS) == sorted(catalogue.PRODUCTS)
    assert len(set(catalogue.MODEL_NAMES)) == len(catalogue.MODELS)
    assert catalogue.FRAUD_MODEL.product == catalogue.PAYMENT_PRODUCT
    assert {m.product for m in catalogue.CREDIT_MODELS} == set(catalogue.CREDIT_PRODUCTS)


@pytest.mark.parametrize("model", catalogue.MODELS, ids=lambda m: m.name)
def test_each_model_trains_on_a_declared_set_of_its_product(
    model: catalogue.CatalogueModel,
) -> None:
    feature_set = get_feature_set(model.feature_set)  # declared (a clear error otherwise)
    assert feature_set.base_name.startswith(model.product)
    assert (feature_set.entity == "payer") == (model.kind == "fraud")


@pytest.mark.parametrize("model", catalogue.MODELS, ids=lambda m: m.name)
def test_the_training_spec_and_the_policy_follow_the_catalogue(
    model: catalogue.CatalogueModel,
) -> None:
    spec = MODEL_SPECS[model.name]
    assert (spec.kind, spec.feature_set) == (model.kind, model.feature_set)
    assert spec.product == (model.product if model.kind == "credit" else None)
    policy = load_product_policy(model.product, POLICY_DIR)
    assert (policy.model, policy.feature_set) == (model.name, model.feature_set)


def test_the_model_lists_derive_from_the_catalogue() -> None:
    assert tuple(MODEL_SPECS) == pipeline.MODEL_NAMES == catalogue.MODEL_NAMES
    assert {*CREDIT_FEATURE_SETS.values(), FRAUD_FEATURE_SET} == {
        m.feature_set for m in catalogue.MODELS
    }
    assert {m.product: (m.name, m.feature_set) for m in catalogue.MODELS} == SANDBOX_MODELS
    assert (*monitoring.CREDIT_MODELS, monitoring.FRAUD_MODEL) == catalogue.MODEL_NAMES
