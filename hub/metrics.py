"""The hub's Prometheus metrics, in a registry of its own per app."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "omnihub_http_requests",
            "HTTP requests handled",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "omnihub_http_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
        )
        self.ingested = Counter(
            "omnihub_ingested_messages",
            "Inbound contacts stored, by channel",
            ["channel"],
            registry=self.registry,
        )
        self.ingest_duplicates = Counter(
            "omnihub_ingest_duplicates",
            "Inbound contacts seen again and not stored twice",
            ["channel"],
            registry=self.registry,
        )
        self.ingest_seconds = Histogram(
            "omnihub_ingest_seconds",
            "Time to ingest one inbound contact",
            ["channel"],
            registry=self.registry,
        )

        self.bounces = Counter(
            "omnihub_bounces",
            "Delivery reports about sent mail, hard or soft",
            ["kind"],
            registry=self.registry,
        )

        self.webhook_rejected = Counter(
            "omnihub_webhook_rejected",
            "Webhooks refused for a bad or missing signature",
            ["path"],
            registry=self.registry,
        )

        self.live_in_flight = Gauge(
            "omnihub_live_in_flight",
            "HTTP requests and chat frames being served now (a campaign waits for none)",
            registry=self.registry,
        )

    def watch_live(self, in_flight: Callable[[], float]) -> None:
        """Read the live traffic's count at each scrape."""
        self.live_in_flight.set_function(in_flight)

    def render(self) -> bytes:
        return generate_latest(self.registry)
