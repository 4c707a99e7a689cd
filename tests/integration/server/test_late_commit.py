"""A job whose transaction took its event id before a newer event was committed, but committed after the scheduler
saw that newer one, is still decided: the scheduler does not wait for some later change to notice it.

PostgreSQL hands out ids in one order and transactions commit in another (two servers on one database, or one
server's submission writer and API threads); SQLite commits one writer at a time, in id order.
"""

from datetime import UTC, datetime

import pytest

from integration.server.stargate_harness import Harness
from stargate.domain import JobSpec
from stargate.server.auth import Principal, Role
from stargate.server.scheduling.loop import run_cycle
from stargate.server.services import jobs as job_service
from stargate.store import Database


def _settle(harness: Harness) -> None:
    """Cycle until a cycle finds nothing to decide."""
    for _ in range(10):
        if not run_cycle(harness.ctx, datetime.now(UTC)).decided:
            return
    pytest.fail("the scheduler never went idle")


def _status(harness: Harness, public_id: str) -> str:
    answer = harness.client.get(f"/api/v1/jobs/{public_id}", headers=harness.headers())
    return str(answer.json()["status"])


def test_a_job_committed_after_a_newer_event_was_seen_is_decided(harness: Harness) -> None:
    if harness.ctx.db.is_sqlite:
        pytest.skip("SQLite commits in id order")
    _settle(harness)
    other = Database.open(harness.ctx.settings.database_url)  # another server's connections
    who = Principal(token_id="t-0000000000000000", name="late", team=None, role=Role.ADMIN)
    try:
        with other.write() as session:
            _, fleet = harness.ctx.fleet.get(session)
            spec = JobSpec.model_validate({"name": "late", "queue": "alpha-q", "gpus": 1, "command": "true"})
            late = job_service.submit(session, who, spec, fleet, datetime.now(UTC))
            session.flush()  # its event id is taken now, and is older than the next job's
            newer = str(harness.submit(command="true")["id"])
            run_cycle(harness.ctx, datetime.now(UTC))  # sees the newer job only
            assert _status(harness, newer) != "pending"
            _settle(harness)
            late_id = late.public_id
        # committed now, with an event id older than the newest one the scheduler has seen
        assert _status(harness, late_id) == "pending"
        report = run_cycle(harness.ctx, datetime.now(UTC))
        assert report.decided and report.placed == 1
        assert _status(harness, late_id) != "pending"
    finally:
        other.close()
