"""What the engine is told of a stored job, and engine time: shared by the scheduler loop and the fleet checks.

Times cross into the engine as float seconds since :data:`ENGINE_EPOCH`; a job's spec is parsed once (specs never
change) into the :class:`SpecTerms` the engine and the executors need.
"""

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from stargate.domain.executors import job_needs
from stargate.engine import JobTerms
from stargate.store.repositories.jobs import JobState

ENGINE_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
"""Engine time zero: engine times are float seconds since this instant."""


def engine_seconds(at: datetime) -> float:
    """``at`` as engine time (seconds since :data:`ENGINE_EPOCH`)."""
    return (at - ENGINE_EPOCH).total_seconds()


@dataclass(frozen=True, slots=True)
class SpecTerms:
    """The parts of a job's spec the engine and the executors need; specs never change, so each is parsed once."""

    duration_s: float | None
    checkpoint_interval_s: float | None
    allowed_providers: tuple[str, ...]
    allowed_regions: tuple[str, ...]
    command: str = ""
    """What the executor runs (kept too, so handing placed jobs to executors reads no spec again)."""
    environment: tuple[tuple[str, str], ...] = ()
    spread: bool = False
    """The job may be split over partly free nodes."""
    nodes: int | None = None
    """Exactly this many nodes (``gpus / nodes`` GPUs each); None: the default shape."""
    name: str | None = None
    """The job's name (groups learned run-time estimates)."""
    user: str | None = None
    """Who submitted it, from the job row (groups learned run-time estimates); see :meth:`with_user`."""
    image: str | None = None
    """The job's container image (executors that run images), or None."""

    @classmethod
    def of(cls, spec: dict[str, Any]) -> "SpecTerms":
        """The terms of a stored spec."""
        return cls(
            spec.get("estimated_duration_s"),
            spec.get("checkpoint_interval_s"),
            tuple(spec.get("allowed_providers") or ()),
            tuple(spec.get("allowed_regions") or ()),
            spec.get("command") or "",
            tuple((spec.get("environment") or {}).items()),
            bool(spec.get("spread", False)),
            spec.get("nodes"),
            spec.get("name"),
            image=spec.get("image") or None,
        )

    @property
    def needs(self) -> frozenset[str]:
        """What the job needs of its cluster's executor (``commands``, ``images``: see
        :func:`stargate.domain.executors.job_needs`)."""
        return job_needs(self.command, self.image)

    def with_user(self, user: str | None) -> "SpecTerms":
        """These terms with the job's submitter (stored on the job row, not in the spec)."""
        return replace(self, user=user)


def job_terms(job: JobState, spec: SpecTerms, ran_s: float = 0.0) -> JobTerms:
    """The driver's view of a stored job; ``ran_s``: seconds it ran in runs that ended (its attained service is
    that × its GPUs, work later lost included; see :func:`stargate.store.repositories.runs.ran_seconds`)."""
    return JobTerms(
        id=job.public_id,
        queue=job.queue_id,
        gpus=job.gpus,
        submit_s=engine_seconds(job.submitted_at),
        gpu_models=tuple(job.gpu_models),
        priority_class=job.priority_class,
        preemptible=job.preemptible,
        estimate_s=spec.duration_s,
        checkpoint_interval_s=spec.checkpoint_interval_s,
        allowed_providers=spec.allowed_providers,
        allowed_regions=spec.allowed_regions,
        progress_s=job.progress_s,
        attained_gpu_s=ran_s * job.gpus,
        spread=spec.spread,
        nodes=spec.nodes,
        user=spec.user,
        name=spec.name,
        needs=spec.needs,
        outage_stops=job.outage_stops,
    )
