"""Prometheus metrics of inference services, registered on the app's registry (``GET /metrics``).

Every process counts what its own proxy served (requests by outcome, tokens, requests in flight, latencies); the
scheduler leader sets the replica gauges.
"""

import contextlib
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


@dataclass(frozen=True, slots=True)
class Counted:
    """One service's metrics, looked up once (a labelled metric's lookup costs more than its update)."""

    answered: Any
    failed: Any
    retries: Any
    prompt_tokens: Any
    output_tokens: Any
    in_flight: Any
    ttft: Any
    latency: Any


class ServiceMetrics:
    """The metrics of every service (labelled by service)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.requests = Counter(
            "stargate_service_requests",
            "Requests through the proxy by outcome: answered (by a replica, any status), failed (the proxy answered "
            "502 or 503, or the answer was cut off), requests.",
            ["service", "outcome"],
            registry=r,
        )
        self.retries = Counter(
            "stargate_service_retries", "Requests sent again to another replica, requests.", ["service"], registry=r
        )
        self.tokens = Counter(
            "stargate_service_tokens",
            "Prompt and output tokens of the requests, tokens.",
            ["service", "kind"],
            registry=r,
        )
        self.in_flight = Gauge(
            "stargate_service_in_flight",
            "Requests in flight through this process now, requests.",
            ["service"],
            registry=r,
        )
        self.ttft = Histogram(
            "stargate_service_ttft_seconds",
            "Time to the first byte of a streamed answer, s.",
            ["service"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.latency = Histogram(
            "stargate_service_latency_seconds",
            "End-to-end latency of answered requests (arrival to last byte), s.",
            ["service"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.replicas = Gauge(
            "stargate_service_replicas", "Replicas by state (leader only), replicas.", ["service", "state"], registry=r
        )
        self._of: dict[str, Counted] = {}
        self.desired = Gauge(
            "stargate_service_desired_replicas",
            "Replicas the autoscaler asks for (leader only).",
            ["service"],
            registry=r,
        )

    def of(self, service: str) -> Counted:
        """The proxy's metrics of ``service``."""
        found = self._of.get(service)
        if found is None:
            found = self._of[service] = Counted(
                self.requests.labels(service=service, outcome="answered"),
                self.requests.labels(service=service, outcome="failed"),
                self.retries.labels(service=service),
                self.tokens.labels(service=service, kind="prompt"),
                self.tokens.labels(service=service, kind="output"),
                self.in_flight.labels(service=service),
                self.ttft.labels(service=service),
                self.latency.labels(service=service),
            )
        return found

    def forget(self, service: str) -> None:
        """Drop the leader's gauges of a service that is gone."""
        for state in ("pending", "starting", "ready", "draining"):
            with contextlib.suppress(KeyError):
                self.replicas.remove(service, state)
        with contextlib.suppress(KeyError):
            self.desired.remove(service)
