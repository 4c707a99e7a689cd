"""Job statuses and the legal moves between them (the job state machine)."""

from enum import StrEnum


class JobStatus(StrEnum):
    """Where a job is in its life.

    ``pending`` → ``placed`` (decision committed, executor not yet called) → ``running`` (executor accepted, run
    handle stored) → ``succeeded`` | ``failed`` | ``cancelled``. Preemption or a cluster failure moves ``placed`` or
    ``running`` back to ``pending`` with the attempt increased. A job whose earlier attempt is found to have
    succeeded after the job moved on (its engine was unreachable meanwhile) succeeds from ``pending`` or ``placed``
    too: it never runs to completion twice.
    """

    PENDING = "pending"
    PLACED = "placed"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def is_final(self) -> bool:
        """True once the job will never change again."""
        return self in FINAL_STATUSES

    def holds_gpus(self) -> bool:
        """True while the job has GPUs assigned (placed or running)."""
        return self in (JobStatus.PLACED, JobStatus.RUNNING)


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

LEGAL_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.PLACED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.SUCCEEDED}),
    JobStatus.PLACED: frozenset(
        {JobStatus.RUNNING, JobStatus.PENDING, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.SUCCEEDED}
    ),
    JobStatus.RUNNING: frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.PENDING}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}
"""For each status, the statuses a job may move to next; final statuses lead nowhere."""


def is_legal(source: JobStatus, target: JobStatus) -> bool:
    """True when a job may move from ``source`` to ``target``."""
    return target in LEGAL_TRANSITIONS[source]
