"""Capacity bought during a simulated run: each award becomes a contract and a cluster of the simulator's fleet,
and the engine is rebuilt over the new fleet, as the server does for a new fleet version
(:func:`stargate.server.scheduling.decide`): running jobs put back where they run, pending ones queued again in
submission order, with the run history, the estimates and the spend of ended runs kept. New clusters are appended,
so every cluster keeps its index (the simulator's per-cluster figures stay valid).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from stargate.domain import ClusterStatus, Fleet, ProviderKind
from stargate.engine import Driver, JobTerms, Preemption, Reason
from stargate.engine.procurement import Award, award_contract
from stargate.sim.money import spent_by_contract

if TYPE_CHECKING:
    from stargate.sim.simulator import Simulator

PROCURE = 4
"""The simulator's event kind of procurement instants (``stargate.sim.simulator.PROCURE``)."""


def procure_step(sim: Simulator, now: float) -> bool:
    """The procurement step at ``now`` (instants it must wake for pushed); True when awards changed the fleet and
    the driver was rebuilt."""
    proc = sim.procurement
    assert proc is not None
    awards = proc.step(now, sim.driver.waiting_gpus)
    for t in proc.wake_instants():
        if t > now and t not in sim.woken:
            sim.woken.add(t)
            sim.push(t, PROCURE, 1, 0)
    if not awards:
        return False
    if sim.config.record_log:
        sim.state.log.extend((now, "award", a.id, a.gpus, a.start.isoformat()) for a in awards)
    add_awards(sim, awards, now)
    for a in awards:
        on = proc.day_s(a.start)
        if on > now:
            sim.push(on, PROCURE, 2, 0)  # the new cluster comes online: decide then
    return True


def grown(fleet: Fleet, awards: Iterable[Award]) -> Fleet:
    """``fleet`` with each award's contract and cluster appended."""
    contracts, clusters = list(fleet.contracts), list(fleet.clusters)
    for award in awards:
        contract, cluster = award_contract(award)
        contracts.append(contract)
        clusters.append(cluster)
    return fleet.model_copy(update={"contracts": contracts, "clusters": clusters})


def terms_of(sim: Simulator, i: int) -> JobTerms:
    """Job ``i`` as the driver was told it, with its checkpointed progress and the service of its ended runs."""
    j = sim.jobs[i]
    est = j.duration_s if sim.config.estimates == "actual" else j.estimated_duration_s
    return JobTerms(
        id=j.id,
        queue=j.queue,
        gpus=j.gpus,
        submit_s=sim.arrival[i],
        gpu_models=tuple(j.gpu_models),
        priority_class=j.priority_class,
        preemptible=j.preemptible,
        estimate_s=est,
        checkpoint_interval_s=j.checkpoint_interval_s,
        allowed_providers=tuple(j.allowed_providers),
        allowed_regions=tuple(j.allowed_regions),
        progress_s=sim.progress[i],
        user=j.user,
        name=j.name,
        attained_gpu_s=sim.attained[i],
        outage_stops=sim.outage_stops.get(i, 0),
    )


def add_awards(sim: Simulator, awards: list[Award], now: float) -> None:
    """Add ``awards`` to the simulator's fleet and rebuild its driver at ``now``."""
    fleet = grown(sim.fleet, awards)
    old = sim.driver
    history, estimates = old.history, old.estimates()  # estimates() first hands on the jobs that ended
    live = old.where
    running = []
    pending = []
    for job_id, where in live.items():
        i = sim.ix[job_id]
        if where is None:
            pending.append(i)
        else:
            running.append((sim.started_at[i], i, where))
    running.sort(key=lambda r: (r[0], sim.jobs[r[1]].id))
    pending.sort(key=lambda i: (sim.arrival[i], i))
    down = {sim.index.cluster_ids[c] for c, n in enumerate(sim.outages) if n > 0}
    told = fleet.model_copy(  # the driver's view: clusters in an outage are down
        update={
            "clusters": [
                c.model_copy(update={"status": ClusterStatus.DOWN}) if c.id in down else c for c in fleet.clusters
            ]
        }
    )
    driver, lost = Driver.rebuilt(
        told,
        sim.policy,
        sim.index.epoch,
        [(terms_of(sim, i), where, started) for started, i, where in running],
        [terms_of(sim, i) for i in pending],
        now,
        history=history,
        estimates=estimates,
        spent_usd=spent_by_contract(sim.runs),
    )
    sim.fleet, sim.driver, sim.index = fleet, driver, driver.index
    kinds = {p.id: p.kind for p in fleet.providers}
    sim.cloud = [kinds.get(p) is ProviderKind.CLOUD for p in sim.index.provider_of]
    sim.outages += [0] * (sim.index.n - len(sim.outages))
    if lost:  # a running job that could not be put back stops and waits again from its last checkpoint
        stops = [Preemption(g.job.id, Reason.REQUEUED, g.progress_s) for g in lost]
        sim.stopped(stops, now)
        for p in stops:
            driver.submit(terms_of(sim, sim.ix[p.job_id]))
