"""What becomes of a job whose run the infrastructure ended (an executor reports it *interrupted*: a node failed or
did not boot, the engine's own scheduler preempted or requeued it) — the job was not at fault.

The rule, for both clocks: the job keeps its progress up to its last checkpoint, less the restart cost (the one
rule of every stop, :func:`~stargate.engine.jobs.checkpointed`), and waits in its queue again, as after an outage of
its whole cluster; once it has been interrupted ``policy.max_interruptions`` times before, it fails as lost instead
(a job that takes its nodes down is not retried for ever).

An outage of a whole cluster is the fleet's, not the job's, unless it keeps coming before the job gets anywhere: a
job whose runs, ``policy.max_outage_stops`` + 1 times in a row, were stopped by an outage of their cluster without
leaving it further on (no checkpoint beyond its restart cost) fails (``outage_limit``) instead of waiting again
(:func:`outage_count`, :func:`over_limit`). Any stop of a run that left the job further on clears the count (a
preemption's too), so a long job on a flaky cluster never fails for it; a job that takes its engine down each time
it starts does (as Slurm holds a job past ``MaxBatchRequeue`` and Kueue deactivates one past
``backoffLimitCount``).
"""

from dataclasses import dataclass

from stargate.engine.jobs import checkpointed
from stargate.engine.policies import Policy


@dataclass(frozen=True, slots=True)
class AfterInterruption:
    """What the engine does with an interrupted job."""

    requeue: bool
    """True: the job waits again; False: it fails as lost (interrupted too many times)."""
    progress_s: float
    """The progress it keeps, s (negative: a restart still owed, see :func:`~stargate.engine.jobs.checkpointed`)."""
    interruptions: int
    """How many times the job has been interrupted, this one included."""


def after_interruption(
    policy: Policy, progress_s: float, ran_s: float, checkpoint_interval_s: float | None, before: int
) -> AfterInterruption:
    """The fate of a job interrupted after a run of ``ran_s`` that began at ``progress_s``, with ``before``
    interruptions of its earlier runs; ``checkpoint_interval_s`` None: the policy's default."""
    interval = checkpoint_interval_s or policy.default_checkpoint_interval_s
    kept = checkpointed(progress_s, ran_s, interval, policy.restart_cost_s)
    return AfterInterruption(before < policy.max_interruptions, kept, before + 1)


def gained(progress_s: float, kept_s: float) -> bool:
    """Whether a run that began at ``progress_s`` and stopped keeping ``kept_s`` (see
    :func:`~stargate.engine.jobs.checkpointed`) left its job further on: it kept more than it began with, once the
    restart it owes is counted (a run that saved a checkpoint but not the restart cost's worth gained nothing)."""
    return kept_s > progress_s


def outage_count(outage_stops: int, progress_s: float, kept_s: float, outage: bool) -> int:
    """A job's count of outage stops in a row after a stop of its run, which began at ``progress_s`` and keeps
    ``kept_s``: 0 when the run left the job further on (:func:`gained`), whatever stopped it; else one more when an
    ``outage`` of its cluster stopped it, unchanged when something else did (a preemption, an offline window)."""
    if gained(progress_s, kept_s):
        return 0
    return outage_stops + 1 if outage else outage_stops


def over_limit(policy: Policy, outage_stops: int) -> bool:
    """Whether a job with ``outage_stops`` in a row fails (``outage_limit``) instead of waiting again."""
    return outage_stops > policy.max_outage_stops
