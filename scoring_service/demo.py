"""Example calls on a real serving home: ids with a profile in the published snapshots, and
the demo's mall checkouts (``scripts/demo-serve.sh``, ``examples/mall_checkout.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from features import load_snapshot
from features.definitions import CREDIT_FEATURE_SETS, FRAUD_FEATURE_SET
from yidai.core.errors import YidaiError
from yidai.core.settings import Settings

PRODUCT_FEATURE_SETS = {**CREDIT_FEATURE_SETS, "payment": FRAUD_FEATURE_SET}


def entity_ids(
    settings: Settings, products: Sequence[str] = tuple(PRODUCT_FEATURE_SETS)
) -> dict[str, list[str]]:
    """Ids with a profile in the live snapshot of each product."""
    out: dict[str, list[str]] = {}
    for product in products:
        snap = load_snapshot(settings.serving, PRODUCT_FEATURE_SETS[product])
        out[product] = snap.entity_ids()
    return out


def usual_payment_context(
    settings: Settings, payer_ids: Sequence[str]
) -> dict[str, dict[str, str]]:
    """A device, a payee and a channel each payer used before (the published payment
    snapshot's seen-before pairs; ``app`` when the payer used it), for example calls that look
    like the payer's everyday payments.  A payer without history gets an empty dict."""
    snap = load_snapshot(settings.serving, FRAUD_FEATURE_SET)
    out: dict[str, dict[str, str]] = {payer: {} for payer in payer_ids}
    for field in ("device_id", "counterpart_id", "channel"):
        for payer, values in snap.seen_values(payer_ids, field).items():
            out[payer][field] = "app" if field == "channel" and "app" in values else values[0]
    return out


def demo_checkouts(settings: Settings, n: int = 8) -> list[tuple[str, str, str, str]]:
    """``(customer, device, seller, channel)`` of the demo's example checkouts: ``n`` customers
    spread over the personal snapshot, each on their usual device and channel paying a payee
    they paid before, then the first one again on a new phone at a new seller."""
    ids = entity_ids(settings, ["personal"])["personal"]
    picked = ids[:: max(1, len(ids) // n)][:n]
    if not picked:
        raise YidaiError("the published personal snapshot has no customers to check out")
    usual = usual_payment_context(settings, picked)
    rows = [
        (c, usual[c].get("device_id", "D-1"), usual[c].get("counterpart_id", "S001"),
         usual[c].get("channel", "app"))
        for c in picked
    ]  # fmt: skip
    return [*rows, (picked[0], "D-NEW-PHONE", "S-NEW-SELLER", "app")]
