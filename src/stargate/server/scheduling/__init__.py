"""The server's scheduler loop: the one place the server drives the engine.

Entry points: :func:`run_cycle` (one cycle at a given instant; tests and benchmarks pass their own clock) and
:class:`SchedulerThread` (what ``stargate up`` runs: a cycle every interval while this process holds the scheduler
lock). One cycle::

    health.step            engines checked (when due); clusters observed down or degraded recorded, with events
    execute.poll_running   runs that ended → succeeded / failed (executors called outside transactions)
    snapshot.take_snapshot the fleet in force (observed health overlaid) and every live job, in one read transaction
    decide.decide          the kept engine driver told what changed (or rebuilt), then driver.decide(now)
    apply.apply_decisions  every decision written in ONE transaction
    reap.reap_orphans      runs whose job moved on (preempted, cancelled, requeued) are stopped; one found
                           succeeded while its job is not final completes the job
    execute.submit_placed  placed jobs handed to their executors

The driver is the same :class:`stargate.engine.Driver` the simulator decides through, so a trace replayed by
``stargate simulate`` decides as the server does (tests/integration/server/test_differential.py).
"""

from stargate.server.scheduling.loop import CycleReport, SchedulerThread, run_cycle

__all__ = ["CycleReport", "SchedulerThread", "run_cycle"]
