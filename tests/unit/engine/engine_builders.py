"""Fluent builders for engine tests: tiny fleets and job requests that read like the scenario.

fleet = FleetBuilder().owned("own").cluster("a", nodes=2, gpn=8).queue("ml").build()
job = make_job("j1").gpus(8).queue("ml").at(0).runs(3600).build()
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from stargate.domain import Building, Cluster, Contract, Fleet, Provider, Queue, Quota, Site, Team
from stargate.engine import FleetIndex, JobRequest, Scheduler, get_policy

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
DAY = 86_400.0


class FleetBuilder:
    """Build a :class:`Fleet` step by step; the last provider/site added is where clusters go."""

    def __init__(self, name: str = "test") -> None:
        self.parts: dict[str, list[Any]] = {
            k: [] for k in ("providers", "sites", "buildings", "clusters", "contracts", "teams", "queues")
        }
        self.name = name
        self._site = ""

    def provider(
        self, pid: str, kind: str = "owned", region: str = "r1", power_mw: float | None = None, pue: float = 1.2
    ) -> FleetBuilder:
        self.parts["providers"].append(Provider(id=pid, name=pid, kind=kind))  # type: ignore[arg-type]
        self.parts["sites"].append(Site(id=f"{pid}-site", provider=pid, region=region, power_mw=power_mw, pue=pue))
        self._site = f"{pid}-site"
        return self

    def owned(self, pid: str = "own", **kw: Any) -> FleetBuilder:
        return self.provider(pid, "owned", **kw)

    def cloud(self, pid: str = "cloud", **kw: Any) -> FleetBuilder:
        return self.provider(pid, "cloud", **kw)

    def building(self, bid: str, mw: float, on: date, gpus: int = 1000, model: str = "H100-SXM") -> FleetBuilder:
        self.parts["buildings"].append(
            Building(
                id=bid,
                site=self._site,
                floor_area_sq_ft=1000,
                it_power_mw=mw,
                gpus=gpus,
                gpu_model=model,
                capex_usd=Decimal(1),
                planned_energization=on,
            )
        )
        return self

    def cluster(
        self, cid: str, nodes: int = 1, gpn: int = 8, model: str = "H100-SXM", price: float = 2.0, **kw: Any
    ) -> FleetBuilder:
        self.parts["clusters"].append(
            Cluster(
                id=cid,
                site=self._site,
                gpu_model=model,
                gpus_per_node=gpn,
                nodes=nodes,
                price_per_gpu_hour_usd=Decimal(str(price)),
                **kw,
            )
        )
        return self

    def contract(
        self,
        kid: str,
        provider: str,
        kind: str,
        start: date,
        end: date,
        price: float | None = None,
        gpus: int | None = None,
    ) -> FleetBuilder:
        self.parts["contracts"].append(
            Contract(
                id=kid,
                provider=provider,
                kind=kind,
                start=start,
                end=end,
                gpus=gpus,  # type: ignore[arg-type]
                price_per_gpu_hour_usd=None if price is None else Decimal(str(price)),
                committed_spend_usd=Decimal(1000) if kind == "commitment" else None,
            )
        )
        return self

    def queue(
        self, qid: str, quota: dict[str, int] | None = None, cohort: str | None = None, borrow: int | None = None
    ) -> FleetBuilder:
        if not any(t.id == "team" for t in self.parts["teams"]):
            self.parts["teams"].append(Team(id="team", name="team"))
        quotas = [Quota(gpu_model=m, gpus=n, borrowing_limit_gpus=borrow) for m, n in (quota or {}).items()]
        self.parts["queues"].append(Queue(id=qid, team="team", cohort=cohort, quotas=quotas))
        return self

    def build(self) -> Fleet:
        if not self.parts["providers"]:
            self.owned()
        if not self.parts["queues"]:
            self.queue("q")
        return Fleet(name=self.name, as_of=EPOCH.date(), **self.parts)


class JobBuilder:
    """Build a :class:`JobRequest` fluently."""

    def __init__(self, jid: str) -> None:
        self.req = JobRequest(id=jid, queue="q", gpus=1)

    def gpus(self, n: int, *models: str) -> JobBuilder:
        self.req = replace(self.req, gpus=n, gpu_models=tuple(models))
        return self

    def queue(self, q: str) -> JobBuilder:
        self.req = replace(self.req, queue=q)
        return self

    def at(self, t: float) -> JobBuilder:
        self.req = replace(self.req, submit_s=t)
        return self

    def runs(self, s: float | None) -> JobBuilder:
        self.req = replace(self.req, duration_s=s)
        return self

    def prio(self, p: int, preemptible: bool = True, may_preempt: bool = True) -> JobBuilder:
        self.req = replace(self.req, priority=p, preemptible=preemptible, may_preempt=may_preempt)
        return self

    def ckpt(self, s: float) -> JobBuilder:
        self.req = replace(self.req, checkpoint_interval_s=s)
        return self

    def shape(self, spread: bool = False, nodes: int | None = None) -> JobBuilder:
        self.req = replace(self.req, spread=spread, nodes=nodes)
        return self

    def only(self, providers: tuple[str, ...] = (), regions: tuple[str, ...] = ()) -> JobBuilder:
        self.req = replace(self.req, allowed_providers=providers, allowed_regions=regions)
        return self

    def build(self) -> JobRequest:
        return self.req


def make_job(jid: str) -> JobBuilder:
    """Start a job builder (1 GPU in queue 'q' at t=0 by default)."""
    return JobBuilder(jid)


def scheduler(fleet: Fleet, policy: str = "stargate", **settings: Any) -> Scheduler:
    """A scheduler over ``fleet`` with times counted from :data:`EPOCH`."""
    return Scheduler(FleetIndex.from_fleet(fleet, EPOCH), get_policy(policy, **settings))


def shape_holds(ids: tuple[int, ...], gpn: int, nodes: int | None = None) -> bool:
    """``ids`` lie on one node (at most ``gpn`` GPUs) or on whole nodes plus one node for the remainder; with
    ``nodes``: on exactly that many nodes, ``len(ids) // nodes`` GPUs on each."""
    per_node: dict[int, int] = {}
    for g in ids:
        per_node[g // gpn] = per_node.get(g // gpn, 0) + 1
    counts = sorted(per_node.values(), reverse=True)
    if nodes is not None:
        return counts == [len(ids) // nodes] * nodes
    whole, rest = divmod(len(ids), gpn)
    return counts == [gpn] * whole + ([rest] if rest else [])


def assert_consistent(s: Scheduler) -> None:
    """Invariants: no GPU held twice, gangs whole in one cluster, free counts match, power within caps, and every
    job that may not spread on one node, whole nodes plus one, or the nodes it asked for."""
    held: dict[str, set[int]] = {}
    for jid, (cid, ids) in s.running_jobs().items():
        j = s.jobs.ix[jid]
        assert len(ids) == s.jobs.gpus[j], f"{jid} holds {len(ids)} GPUs, wants {s.jobs.gpus[j]}"
        req = s.jobs.req[j]
        gpn = s.index.gpus_per_node[s.index.cluster_ix[cid]]
        if not req.spread:
            assert shape_holds(ids, gpn, req.nodes), f"{jid} ({req.nodes} nodes) holds {sorted(ids)} on {gpn}-GPU nodes"
        bag = held.setdefault(cid, set())
        assert not bag & set(ids), f"GPU held twice on {cid}"
        assert len(set(ids)) == len(ids)
        bag.update(ids)
    free = s.free_gpus()
    for c, cid in enumerate(s.index.cluster_ids):
        total = int(s.index.total[c])
        assert free[cid] == total - len(held.get(cid, set())), cid
        assert all(0 <= g < total for g in held.get(cid, ()))
    caps = s.windows.cap_w
    for i, _ in enumerate(s.index.sites):
        assert s.occupancy.draw_w[i] <= caps[i] + 1e-6
