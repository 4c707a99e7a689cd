"""A service's replicas as the engine schedules them (pure; both clocks).

A replica is a job of its service's queue and priority class, asking ``gpus_per_replica`` GPUs on a GPU model the
service has a profile for, with no run time (it runs until it is scaled down) and **never preemptible**: a replica
is stopped only by its own service scaling down, never by training nor by another service's replica. When the
service's class outranks a preemptible training job's, the driver's normal preemption path stops that job (keeping
its last checkpoint) to place the replica. Scaling down removes replicas that serve nothing yet first (waiting for
GPUs, then starting), then the newest ready ones; a ready replica removed is drained first by the clock that runs it
(it takes no new request and finishes those it has; the server's drain has a timeout). Scaling up takes back
draining replicas first (:func:`to_take_back`: they serve again at once, warm) and starts new ones only for the rest
(each a cold start). The autoscaler sizes replicas with the profile of the GPU model they run on
(:func:`running_profile`). A clock numbers a service's replicas from 0 up and never reuses a number, so a job id
never names two replicas.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from stargate.domain.services import ReplicaProfile, ServiceSpec
from stargate.engine.driver import JobTerms

REPLICA_SEPARATOR = "~r"
"""Between a service's name and a replica's number in the replica's job id (``chat~r3``): ``~`` is in no id."""


class ReplicaState(StrEnum):
    """Where a replica stands."""

    PENDING = "pending"
    """Waiting for GPUs."""
    STARTING = "starting"
    """Placed and started, not yet answering its health check (its cold start)."""
    READY = "ready"
    """Serving requests."""
    DRAINING = "draining"
    """Scaled down: takes no new request, finishes those it has, then stops."""


@dataclass(frozen=True, slots=True)
class Replica:
    """One replica: its job id, number, state and since when (clock seconds)."""

    job_id: str
    number: int
    state: ReplicaState
    since_s: float


def replica_id(service: str, number: int) -> str:
    """The job id of replica ``number`` of ``service``."""
    return f"{service}{REPLICA_SEPARATOR}{number}"


def replica_terms(spec: ServiceSpec, number: int, submit_s: float) -> JobTerms:
    """Replica ``number`` of ``spec`` as the driver takes it (see the module docstring)."""
    return JobTerms(
        id=replica_id(spec.name, number),
        queue=spec.queue,
        gpus=spec.gpus_per_replica,
        submit_s=submit_s,
        gpu_models=tuple(spec.accepted_models()),
        priority_class=spec.priority_class,
        preemptible=False,
        name=spec.name,
    )


def to_remove(replicas: list[Replica], count: int) -> list[Replica]:
    """The ``count`` replicas to scale down: pending ones first, then starting ones, then the newest ready ones
    (draining ones are already going and are not counted)."""
    order = {ReplicaState.PENDING: 0, ReplicaState.STARTING: 1, ReplicaState.READY: 2}
    live = [r for r in replicas if r.state is not ReplicaState.DRAINING]
    live.sort(key=lambda r: (order[r.state], -r.since_s, -r.number))
    return live[: max(count, 0)]


def to_take_back(replicas: list[Replica], count: int) -> list[Replica]:
    """The draining replicas to serve again when ``count`` more are wanted, before any new one starts (a draining
    replica is warm, a new one cold-starts): the latest to begin draining first (ties: the highest number)."""
    draining = [r for r in replicas if r.state is ReplicaState.DRAINING]
    draining.sort(key=lambda r: (-r.since_s, -r.number))
    return draining[: max(count, 0)]


def first_profile(spec: ServiceSpec) -> ReplicaProfile:
    """The profile the autoscaler sizes replicas with before any is placed: the first accepted GPU model's."""
    return spec.profile(spec.accepted_models()[0]) or spec.profiles[0]


def running_profile(spec: ServiceSpec, running_on: Iterable[str]) -> ReplicaProfile | None:
    """The profile the autoscaler sizes replicas with once they are placed: that of the GPU model the first of
    ``running_on`` with a profile runs on (the models the replicas run on, in number order; '' for one not placed);
    None while none is placed."""
    return next((p for m in running_on if m and (p := spec.profile(m)) is not None), None)
