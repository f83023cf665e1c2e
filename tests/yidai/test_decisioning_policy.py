"""Policy files: validated on load, versioned by content, challenger variants."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from yidai.core.errors import YidaiError
from yidai.decisioning import PRODUCTS, CreditPolicy, PaymentPolicy, load_policy
from yidai.decisioning.policy import load_product_policy

POLICY_DIR = Path(__file__).resolve().parents[2] / "yidai" / "policies"


@pytest.mark.parametrize("product", PRODUCTS)
def test_shipped_policies_load_with_version_and_hash(product: str) -> None:
    policy = load_product_policy(product, POLICY_DIR)
    assert policy.product == product
    assert len(policy.content_hash) == 64
    assert policy.policy_version.startswith(policy.version + "+")
    challenger = policy.challenger_policy()
    assert challenger.version.endswith("-challenger")
    assert isinstance(policy, PaymentPolicy if product == "payment" else CreditPolicy)


@pytest.mark.parametrize("product", PRODUCTS)
def test_shipped_policies_read_the_feature_set_their_model_trains_on(product: str) -> None:
    """A policy naming another version than its model's would serve vectors the champion was
    not trained on (the service refuses that at load); catch it before shipping."""
    from features.engine import active_feature_sets
    from models.training import get_spec

    policy = load_product_policy(product, POLICY_DIR)
    assert policy.feature_set == get_spec(policy.model).feature_set
    assert policy.feature_set in active_feature_sets()  # built and published by default


def test_editing_a_policy_changes_its_hash(tmp_path: Path) -> None:
    src = (POLICY_DIR / "personal.yaml").read_text()
    (tmp_path / "personal.yaml").write_text(src)
    first = load_policy(tmp_path / "personal.yaml")
    (tmp_path / "personal.yaml").write_text(src.replace("multiple: 1.5", "multiple: 1.6"))
    second = load_policy(tmp_path / "personal.yaml")
    assert first.version == second.version
    assert first.content_hash != second.content_hash


def test_challenger_overrides_are_applied() -> None:
    policy = load_product_policy("personal", POLICY_DIR)
    assert isinstance(policy, CreditPolicy)
    challenger = policy.challenger_policy()
    overrides = policy.challenger.overrides
    assert challenger.cutoffs.approve_min_score == overrides["cutoffs"]["approve_min_score"]
    assert challenger.cutoffs.refer_min_score == policy.cutoffs.refer_min_score


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["cutoffs"].update(refer_min_score=700), "refer_min_score"),
        (lambda d: d["limit"].update(kind="magic"), "limit"),
        (lambda d: d.update(pricing={"A": 1.5}), "annual rates"),
        (lambda d: d["hard_rules"][0].update(op="=~"), "hard_rules.0.op"),
        (lambda d: d.update(unknown_field=1), "unknown_field"),
        (lambda d: d.update(challenger={"overrides": {"cutoffs": {"max_pd": 3}}}), "max_pd"),
    ],
)
def test_invalid_policy_names_the_problem(tmp_path: Path, mutate, message: str) -> None:
    data = yaml.safe_load((POLICY_DIR / "personal.yaml").read_text())
    mutate(data)
    path = tmp_path / "personal.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(YidaiError, match=message) as info:
        load_policy(path)
    assert str(path) in str(info.value)


def test_payment_tiers_must_be_ordered(tmp_path: Path) -> None:
    data = yaml.safe_load((POLICY_DIR / "payment.yaml").read_text())
    data["tiers"][0], data["tiers"][1] = data["tiers"][1], data["tiers"][0]
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(YidaiError, match="increasing max_amount"):
        load_policy(tmp_path / "p.yaml")


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(YidaiError, match="cannot read policy"):
        load_policy(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("product: [unclosed")
    with pytest.raises(YidaiError, match="not valid YAML"):
        load_policy(tmp_path / "bad.yaml")
