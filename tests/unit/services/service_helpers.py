"""Builders for the service simulator tests: a small fleet, a service spec, requests, and a one-call run."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from stargate.domain import Cluster, Fleet, Provider, Queue, Site, Team
from stargate.domain.services import ServiceSpec
from stargate.domain.teams import PriorityClass
from stargate.sim import SimConfig, TraceJobLike
from stargate.sim.service_report import simulate_services
from stargate.sim.service_run import ServiceRequests
from stargate.sim.services_sim import ServiceSimulator

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


def fleet(nodes: int = 1, gpus_per_node: int = 8, price: str = "2") -> Fleet:
    """One cluster 'c' of ``nodes`` × ``gpus_per_node`` H100-SXM GPUs; queue 'train' (class 'normal', which a
    'high' job preempts) and queue 'serve' (class 'high')."""
    return Fleet(
        name="serving",
        as_of=None,
        providers=[Provider(id="own", name="own", kind="owned")],  # type: ignore[arg-type]
        sites=[Site(id="s", provider="own", region="r")],
        clusters=[
            Cluster(
                id="c",
                site="s",
                gpu_model="H100-SXM",
                gpus_per_node=gpus_per_node,
                nodes=nodes,
                price_per_gpu_hour_usd=Decimal(price),
            )
        ],
        priority_classes=[
            PriorityClass(name="normal", value=500),
            PriorityClass(name="high", value=1000),
        ],
        teams=[Team(id="t", name="t")],
        queues=[
            Queue(id="train", team="t", priority_classes=["normal"], default_priority_class="normal"),
            Queue(id="serve", team="t", priority_classes=["high"], default_priority_class="high"),
        ],
    )


def spec(**changes: Any) -> ServiceSpec:
    """A service of 1-GPU replicas on 'serve': prefill 10,000 tokens/s, step 0.01 s at batch 1 and 0.02 s at its
    full batch of 64; objective TTFT <= 1 s; ``changes`` replace keys (a ``profile`` dict updates the profile)."""
    profile: dict[str, Any] = {
        "gpu_model": "H100-SXM",
        "prefill_tokens_per_s": 10_000.0,
        "decode_tokens_per_s": 3_200.0,
        "max_concurrent_sequences": 64,
        "decode_step_s": 0.01,
        "source": "hand-made for these tests",
    }
    profile.update(changes.pop("profile", {}))
    data: dict[str, Any] = {
        "name": "chat",
        "queue": "serve",
        "gpus_per_replica": 1,
        "min_replicas": 1,
        "max_replicas": 1,
        "objective": {"ttft_s": 1.0},
        "profiles": [profile],
        "cold_start_s": 0.0,
    }
    data.update(changes)
    return ServiceSpec.model_validate(data)


def requests(
    service: ServiceSpec, arrival: Sequence[float], prompt: Sequence[int], output: Sequence[int]
) -> ServiceRequests:
    """``service`` with these requests (sorted by arrival by the caller)."""
    return ServiceRequests(
        service,
        np.array(arrival, dtype=np.float64),
        np.array(prompt, dtype=np.int64),
        np.array(output, dtype=np.int64),
    )


def run(
    services: list[ServiceRequests],
    jobs: Sequence[TraceJobLike] = (),
    *,
    the_fleet: Fleet | None = None,
    tick_s: float = 10.0,
    requests_at_s: float = 0.0,
    **config: Any,
) -> tuple[dict[str, Any], ServiceSimulator]:
    """Simulate on :func:`fleet` (or ``the_fleet``) with the engine told actual run times."""
    config.setdefault("estimates", "actual")
    return simulate_services(
        the_fleet or fleet(),
        list(jobs),
        SimConfig(**config),
        EPOCH,
        services,
        requests_at_s=requests_at_s,
        tick_s=tick_s,
    )
