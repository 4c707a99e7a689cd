"""Helpers for simulator tests: a tiny fleet and a one-call run."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from stargate.domain import Cluster, Fleet, Provider, Queue, Site, Team
from stargate.sim import SimConfig, Simulator, TraceJobLike, run_simulation


def tiny_fleet(nodes: int = 1, cloud_nodes: int = 0, cloud_price: float = 4.0) -> Fleet:
    """One owned cluster of ``nodes`` × 8 GPUs (and a cloud cluster when ``cloud_nodes``); queue 'q'."""
    providers = [Provider(id="own", name="own", kind="owned")]  # type: ignore[arg-type]
    sites = [Site(id="s", provider="own", region="r")]
    clusters = [
        Cluster(id="a", site="s", gpu_model="H100-SXM", gpus_per_node=8, nodes=nodes, price_per_gpu_hour_usd=Decimal(1))
    ]
    if cloud_nodes:
        providers.append(Provider(id="cl", name="cl", kind="cloud"))  # type: ignore[arg-type]
        sites.append(Site(id="cs", provider="cl", region="r"))
        clusters.append(
            Cluster(
                id="cloud",
                site="cs",
                gpu_model="H100-SXM",
                gpus_per_node=8,
                nodes=cloud_nodes,
                price_per_gpu_hour_usd=Decimal(str(cloud_price)),
            )
        )
    return Fleet(
        name="tiny",
        as_of=None,
        providers=providers,
        sites=sites,
        clusters=clusters,
        teams=[Team(id="t", name="t")],
        queues=[Queue(id="q", team="t")],
    )


def run_sim(
    jobs: Sequence[TraceJobLike],
    policy: str = "stargate",
    *,
    nodes: int = 1,
    cloud_nodes: int = 0,
    trim: int = 0,
    **config: Any,
) -> tuple[dict[str, Any], Simulator]:
    """Run ``jobs`` on :func:`tiny_fleet` and return (summary, simulator).

    Estimates are the actual run times (the oracle mode) unless ``estimates=`` says otherwise: these scenarios'
    expectations are computed by hand from exact run times."""
    settings = config.pop("settings", {})
    config.setdefault("estimates", "actual")
    cfg = SimConfig(policy=policy, settings=settings, **config)
    return run_simulation(tiny_fleet(nodes, cloud_nodes), jobs, cfg, trim_jobs=trim)
