"""Declarations: names, lock file, fingerprints, catalog."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from features import FEATURE_SETS, get_feature_set
from features.catalog import render_catalog
from features.declarations import Feature, check_locked, lock_entry, read_lock
from yidai.core.errors import YidaiError

ROOT = Path(__file__).resolve().parents[2]


def test_four_sets_with_entities_and_hints() -> None:
    assert set(FEATURE_SETS) == {
        "personal_credit_v1",
        "personal_credit_v2",
        "personal_credit_v3",
        "merchant_credit_v1",
        "merchant_credit_v2",
        "merchant_credit_v3",
        "merchant_credit_v4",
        "sme_credit_v1",
        "sme_credit_v2",
        "sme_credit_v3",
        "sme_credit_v4",
        "sme_credit_v5",
        "payment_fraud_v1",
        "payment_fraud_v2",
    }
    for fs in FEATURE_SETS.values():
        assert len(fs.columns) == len(set(fs.columns)) >= 15
        assert len(fs.monotone) == len(fs.columns)
        assert set(fs.monotone) <= {-1, 0, 1}
        assert all(fs.reason_groups[c] for c in fs.columns)


def test_credit_v2_sets_reuse_the_v1_declarations() -> None:
    """v2 keeps v1's features unchanged (same declarations, same order) and adds its own;
    merchant keeps all of them, personal drops only the MCC diversity. The active set is v2
    or a later version that starts with v2's declarations."""
    from features import CREDIT_FEATURE_SETS

    dropped = {"personal_credit": ["customer_mcc_diversity_90d"]}
    for base in ("personal_credit", "merchant_credit"):
        v1, v2 = FEATURE_SETS[f"{base}_v1"], FEATURE_SETS[f"{base}_v2"]
        kept = [f for f in v1.features if f.name not in dropped.get(base, [])]
        assert list(v2.features[: len(kept)]) == kept
        assert [c for c in v1.columns if c not in v2.columns] == dropped.get(base, [])
        assert len(v2.columns) > len(kept)
        active = FEATURE_SETS[CREDIT_FEATURE_SETS[base.removesuffix("_credit")]]
        assert active.version >= 2 and list(active.features[: len(v2.features)]) == list(
            v2.features
        )


def test_lock_file_matches_declarations() -> None:
    lock = read_lock()
    for name, fs in FEATURE_SETS.items():
        assert lock[name] == lock_entry(fs), f"{name}: run `yidai features lock` after review"
        check_locked(fs)


def test_changed_definition_without_new_version_is_refused() -> None:
    fs = FEATURE_SETS["personal_credit_v1"]
    first = fs.features[0]
    changed = dataclasses.replace(first, expr="sum(spend) * 2")
    edited = dataclasses.replace(fs, features=(changed, *fs.features[1:]))
    assert edited.fingerprint != fs.fingerprint
    with pytest.raises(YidaiError, match=r"changed without a new version.*personal_credit_v2"):
        check_locked(edited)
    dropped = dataclasses.replace(fs, features=fs.features[1:])
    with pytest.raises(YidaiError, match=first.name):
        check_locked(dropped)
    bumped = dataclasses.replace(fs, version=99)  # a version never locked
    with pytest.raises(YidaiError, match=r"not in feature_sets.lock.json"):
        check_locked(bumped)


def test_reordering_columns_changes_the_fingerprint() -> None:
    fs = FEATURE_SETS["merchant_credit_v1"]
    swapped = dataclasses.replace(fs, features=(fs.features[1], fs.features[0], *fs.features[2:]))
    assert swapped.fingerprint != fs.fingerprint


def test_unknown_feature_set_and_feature() -> None:
    with pytest.raises(YidaiError, match=r"unknown feature set 'nope_v1'.*personal_credit_v1"):
        get_feature_set("nope_v1")
    with pytest.raises(YidaiError, match="has no feature 'customer_nothing_30d'"):
        FEATURE_SETS["personal_credit_v1"].feature("customer_nothing_30d")


@pytest.mark.parametrize(
    ("name", "entity", "window", "message"),
    [
        ("CustomerSpend", "customer", "30d", "not <entity>_<measure>_<window>"),
        ("merchant_spend_30d", "customer", "30d", "must start with its entity"),
        ("customer_spend_45d", "customer", "45d", "known window"),
    ],
)
def test_bad_declarations_are_refused(name: str, entity: str, window: str, message: str) -> None:
    with pytest.raises(YidaiError, match=message):
        Feature(name, entity, "customer_pos", window, "d", "agg", "sum(spend)")


def test_catalog_is_up_to_date() -> None:
    committed = (ROOT / "docs" / "features.md").read_text(encoding="utf-8")
    assert committed == render_catalog(), "run `yidai features catalog --write docs/features.md`"
    for fs in FEATURE_SETS.values():
        for f in fs.features:
            assert f"`{f.name}`" in committed


def test_changing_a_source_changes_the_fingerprint(monkeypatch: pytest.MonkeyPatch) -> None:
    from features import sources

    fs = FEATURE_SETS["merchant_credit_v1"]
    before = fs.fingerprint
    src = sources.SOURCES["merchant_pos"]
    edited = dataclasses.replace(src, where="status <> 'declined'")
    monkeypatch.setitem(sources.SOURCES, "merchant_pos", edited)
    assert fs.fingerprint != before
