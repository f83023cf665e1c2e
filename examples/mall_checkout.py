"""Example integration: a 融e购 mall checkout that offers instant credit (逸贷) and checks
payment risk through the Yidai scoring service's typed client.

Against a running service (``yidai serve``) with a key of the checkout module::

    yidai keys create --module mall_checkout --scopes personal-credit,payment-risk
    YIDAI_API_KEY=yd_... uv run python examples/mall_checkout.py --customer C123 --amount 2599

Self-contained demo (builds a small sandbox under var/examples, serves it in-process on a
free loopback port, runs a few checkouts)::

    uv run python examples/mall_checkout.py --demo
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from scoring_service.client import YidaiAPIError, YidaiClient


@dataclass(frozen=True)
class Order:
    order_id: str
    customer_id: str
    seller_id: str
    amount: float
    device_id: str
    channel: str = "app"


def checkout(yidai: YidaiClient, order: Order) -> str:
    """What the checkout page shows: payment risk first, then the instant credit offer."""
    risk = yidai.payment_risk(
        order.customer_id, order.amount, order.channel,
        counterpart_id=order.seller_id, device_id=order.device_id,
        idempotency_key=f"pay-{order.order_id}",
    )  # fmt: skip
    if risk.action == "decline":
        return (
            f"{order.order_id}: payment declined ({', '.join(r.code for r in risk.reason_codes)})"
        )
    step_up = " after SMS code" if risk.action == "step_up" else ""
    try:
        offer = yidai.personal_credit(
            order.customer_id, order.amount, seller_id=order.seller_id,
            order_id=order.order_id, idempotency_key=f"credit-{order.order_id}",
        )  # fmt: skip
    except YidaiAPIError as exc:  # credit unavailable: the order is still paid by card
        return f"{order.order_id}: pay by card{step_up} (instant credit unavailable: {exc})"
    if offer.decision == "approve" and offer.approved_amount >= order.amount:
        plans = ", ".join(f"{t.months} x {t.monthly_payment:.2f} CNY" for t in offer.term_options)
        return (
            f"{order.order_id}: 逸贷 instant credit up to {offer.limit:.0f} CNY at "
            f"{offer.annual_rate:.1%} (grade {offer.grade}); instalments {plans}{step_up}"
        )
    reasons = ", ".join(r.code for r in offer.reason_codes) or "amount above the limit"
    return f"{order.order_id}: pay by card{step_up} (no instant credit: {reasons})"


def _demo() -> None:
    # heavy, and only for the self-contained demo: the service, and the tests' sandbox
    # (MLflow, LightGBM); the checkout above needs nothing but the client
    import uvicorn

    from features.definitions import CREDIT_FEATURE_SETS
    from scoring_service.demo import entity_ids
    from scoring_service.main import create_app
    from scoring_service.security import create_key
    from tests.support.sandbox import build_sandbox
    from yidai.core.settings import Settings

    home = Path("var/examples/mall_checkout").resolve()
    settings = Settings(home=home, mlflow_tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
    if not (settings.serving / "features" / CREDIT_FEATURE_SETS["personal"] / "CURRENT").exists():
        print("building a small sandbox (synthetic snapshots + registered models) ...")
        build_sandbox(settings)
    key, _ = create_key(
        settings.api_keys_file, "mall_checkout", ["personal-credit", "payment-risk"]
    )  # type: ignore[arg-type]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    customers = entity_ids(settings, ["personal"])["personal"]
    with YidaiClient(f"http://127.0.0.1:{port}", key) as yidai:
        # the sandbox publishes no merchant limits: wait until loaded, not until ready
        yidai.wait_until_loaded()
        for i, amount in enumerate((199.0, 2599.0, 8999.0, 45000.0)):
            order = Order(f"O{i:04d}", customers[i * 7 % len(customers)], "S001", amount, "D-1")
            print(checkout(yidai, order))
    server.should_exit = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", action="store_true", help="self-contained demo")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--customer", default="C1")
    parser.add_argument("--amount", type=float, default=2599.0)
    parser.add_argument("--seller", default="S001", help="the mall seller (the payee)")
    parser.add_argument("--device", default="D-1", help="the customer's device id")
    parser.add_argument("--channel", default="app", help="payment channel (app, ...)")
    parser.add_argument(
        "--order-id", help="the mall's order id (default: a new unique one; the idempotency "
        "keys derive from it, so a retry of the same order must pass the same id)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.demo:
        _demo()
        return
    key = os.environ.get("YIDAI_API_KEY")
    if not key:
        sys.exit("set YIDAI_API_KEY (yidai keys create --module mall_checkout --scopes ...)")
    with YidaiClient(args.url, key) as yidai:
        order_id = args.order_id or f"O{uuid.uuid4().hex[:16].upper()}"
        order = Order(order_id, args.customer, args.seller, args.amount, args.device, args.channel)
        print(checkout(yidai, order))


if __name__ == "__main__":
    main()
