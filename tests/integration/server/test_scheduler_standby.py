"""Two scheduler threads on one database (as two servers would run): only the lock holder schedules, every job
runs exactly once, and the standby takes over when the first one stops."""

import time
from dataclasses import replace

from sqlalchemy import func, select

from integration.server.stargate_harness import Harness
from stargate.server.context import ServerContext
from stargate.server.scheduling.loop import SchedulerThread
from stargate.store import Database, JobEventRow, RunRow

TIMEOUT_S = 30.0


def _wait_all(harness: Harness, ids: list[str], status: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        jobs = [harness.client.get(f"/api/v1/jobs/{i}", headers=harness.headers()).json() for i in ids]
        if all(j["status"] == status for j in jobs):
            return
        assert time.monotonic() < deadline, [j["status"] for j in jobs]
        time.sleep(0.05)


def test_one_scheduler_at_a_time_and_the_standby_takes_over(harness: Harness) -> None:
    settings = replace(harness.ctx.settings, scheduler_interval_s=0.02)
    contexts = [ServerContext(settings=settings, db=Database.open(settings.database_url)) for _ in range(2)]
    first, second = (SchedulerThread(ctx) for ctx in contexts)
    first.start()
    deadline = time.monotonic() + TIMEOUT_S
    while not contexts[0].metrics.registry.get_sample_value("stargate_scheduler_cycle_seconds_count"):
        assert time.monotonic() < deadline  # wait until the first one holds the lock and has run a cycle
        time.sleep(0.01)
    second.start()
    try:
        ids = [str(harness.submit(command="true")["id"]) for _ in range(8)]
        _wait_all(harness, ids, "succeeded")
        first.stop()
        later = [str(harness.submit(command="true")["id"]) for _ in range(3)]
        _wait_all(harness, later, "succeeded")  # only the standby is left to run these
    finally:
        first.stop()
        second.stop()
        for ctx in contexts:
            ctx.db.close()
    with harness.ctx.db.read() as s:
        runs = s.scalar(select(func.count()).select_from(RunRow))
        placed = s.scalar(select(func.count()).select_from(JobEventRow).where(JobEventRow.to_status == "placed"))
    assert runs == placed == len(ids) + len(later)
    placements = [ctx.metrics.registry.get_sample_value("stargate_placements_total") for ctx in contexts]
    assert placements == [len(ids), len(later)]  # the first did all the early work, the standby the rest
