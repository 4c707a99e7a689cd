"""The engine's boundary values: a job request in, decisions out (slotted dataclasses, no pydantic).

Times are float seconds since the fleet index's epoch; GPU ids are cluster-local indices
(``node * gpus_per_node + slot``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stargate.domain.reasons import JobReason as Reason

__all__ = ["CycleResult", "JobRequest", "Preemption", "Reason", "Rejection", "Start"]


@dataclass(slots=True)
class JobRequest:
    """A job as the engine sees it: what it needs, where it may run, how it may be treated.

    Treat it as immutable once submitted (not frozen only because frozen construction is slow in the hot path).
    """

    id: str
    queue: str
    gpus: int
    gpu_models: tuple[str, ...] = ()
    priority: int = 0
    preemptible: bool = True
    may_preempt: bool = True
    """False: this job never stops other jobs to start (its priority class has preempts_lower: false)."""
    submit_s: float = 0.0
    duration_s: float | None = None
    """Estimated run time, s (None: unknown; the policy's default estimate stands in)."""
    checkpoint_interval_s: float | None = None
    """The job checkpoints every this many seconds of run time; None: the policy default."""
    allowed_providers: tuple[str, ...] = ()
    allowed_regions: tuple[str, ...] = ()
    progress_s: float = 0.0
    """Run time already done and checkpointed, s (kept across preemptions)."""
    spread: bool = False
    """True: the job may be split over partly free nodes (any free GPUs of one cluster); False: it runs on one node,
    or on whole nodes plus one node for the remainder (see :mod:`stargate.engine.alloc`)."""
    nodes: int | None = None
    """Exactly this many nodes with ``gpus // nodes`` GPUs each (``gpus`` divisible by it); None: the default shape."""
    user: str | None = None
    """Who submitted it (groups learned run-time estimates; see :mod:`stargate.engine.estimates`)."""
    name: str | None = None
    """The job's name (groups learned run-time estimates)."""
    attained_gpu_s: float = 0.0
    """GPU-seconds it already received in earlier runs (work later lost included): its attained service."""
    needs: frozenset[str] = frozenset()
    """What it needs of its cluster's executor ('commands', 'images'): it is placed only on clusters whose executor
    has every one (see :func:`stargate.domain.executors.job_needs`); empty: any cluster."""
    outage_stops: int = 0
    """Its latest runs in a row that an outage of their cluster stopped without getting it past its last checkpoint
    (see :func:`stargate.engine.interruptions.outage_count`)."""


@dataclass(slots=True)
class Start:
    """Decision: run ``job_id`` now on ``gpu_ids`` of ``cluster_id`` at the given price."""

    job_id: str
    cluster_id: str
    gpu_ids: tuple[int, ...]
    price_usd_per_gpu_hour: float
    contract_id: str | None


@dataclass(slots=True)
class Preemption:
    """Decision: ``job_id`` stops and goes back to its queue keeping ``progress_s`` of run time (when a
    :class:`Rejection` of the same job follows in the same decisions, it fails instead: see ``outage_limit``)."""

    job_id: str
    reason: Reason
    progress_s: float
    outage_stops: int = 0
    """The job's runs in a row stopped by outages without leaving it further on, after this stop (see
    :func:`stargate.engine.interruptions.outage_count`; another stop sets it to 0 if its run left the job further
    on, else leaves it)."""


@dataclass(slots=True)
class Rejection:
    """Decision: ``job_id`` can never run as asked; ``reason`` is a short stable code."""

    job_id: str
    reason: Reason


@dataclass(slots=True)
class CycleResult:
    """What one scheduling cycle decided (already applied to the scheduler's own state)."""

    now: float
    starts: list[Start] = field(default_factory=list)
    preemptions: list[Preemption] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    next_wakeup_s: float | None = None
    """The next instant a cycle could decide something new without any outside event (a burst deadline,
    capacity coming online); None when there is none."""
    more: bool = False
    """True when a queue held more startable jobs than the policy's ``scan_depth`` let this cycle try: another
    cycle at the same instant will start more (a driver should run it rather than leave GPUs idle)."""
