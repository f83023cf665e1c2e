"""Prometheus metrics of one service process (``GET /metrics``).

Each worker process keeps its own registry; with several workers, scrape each one or run a
single worker per container (the usual set-up behind a load balancer).
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    """The service's counters and histograms in a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "yidai_http_requests", "HTTP requests by route and status.", ["route", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "yidai_http_request_seconds", "Request latency by route.", ["route"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.decisions = Counter(
            "yidai_decisions", "Decisions by product, outcome and arm.",
            ["product", "outcome", "arm"], registry=self.registry,
        )  # fmt: skip
        self.ready = Gauge(
            "yidai_product_ready", "1 if the product can be decided.", ["product"],
            registry=self.registry,
        )  # fmt: skip
        self.reloads = Gauge(
            "yidai_resource_reloads", "Bundles swapped in since start.", registry=self.registry
        )
        self.reload_failures = Gauge(
            "yidai_resource_reload_failures", "Artefacts that failed to load since start.",
            registry=self.registry,
        )  # fmt: skip
        # Labelled children, looked up once per label set (``labels()`` takes a lock and
        # builds the key on every call); the label sets are few: routes, statuses, outcomes.
        self._decision_counters: dict[tuple[str, str, str], Any] = {}
        self._route_metrics: dict[tuple[str, int], tuple[Any, Any]] = {}

    def count(self, product: str, answer: Any) -> None:
        """Count a fresh decision (idempotent replays are not counted again)."""
        if answer.outcome is not None:
            key = (product, answer.outcome, answer.arm)
            counter = self._decision_counters.get(key)
            if counter is None:
                counter = self._decision_counters[key] = self.decisions.labels(*key)
            counter.inc()

    def observe(self, route: str, status: int, seconds: float) -> None:
        """One HTTP request: its count by route and status, and its latency by route."""
        found = self._route_metrics.get((route, status))
        if found is None:
            found = self._route_metrics[(route, status)] = (
                self.requests.labels(route, str(status)),
                self.latency.labels(route),
            )
        found[0].inc()
        found[1].observe(seconds)

    def render(self, resources: Any) -> bytes:
        """Prometheus text exposition, with the resource gauges refreshed."""
        status = resources.status()
        for product, info in status["products"].items():
            self.ready.labels(product).set(1 if info["ready"] else 0)
        self.reloads.set(resources.reloads)
        self.reload_failures.set(resources.reload_failures)
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware: latency and status per route template (cheap, no body access)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.metrics.observe(path, status[0], time.perf_counter() - start)
