"""Outages of lab-h100 for the outage-bound tests: a harness on the tiny fleet under the fifo policy with a given
``max_outage_stops``, the health step's records that take the cluster down and up, and the job as the API shows it.

Imported as ``integration.server.outage_support`` (see stargate_harness.py for why a module of its own).
"""

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from integration.server.cycle_support import cycle_until
from integration.server.stargate_harness import TINY_FLEET, Harness, build_harness
from stargate.store.repositories import health as health_repo
from stargate.store.repositories.health import Change


def outage_harness(db_url: str, tmp_path: Path, limit: int) -> Harness:
    """A harness over the tiny fleet, scheduling with fifo (no restart cost) and ``max_outage_stops: limit``."""
    fleet = tmp_path / f"tiny-outages-{limit}.yaml"
    scheduling = f"\nscheduling:\n  policy: fifo\n  settings:\n    max_outage_stops: {limit}\n"
    fleet.write_text(TINY_FLEET.read_text(encoding="utf-8") + scheduling, encoding="utf-8")
    return build_harness(db_url, tmp_path / f"home-{limit}", fleet)


def mark(h: Harness, status: str, before: str) -> None:
    """Record lab-h100's status as its executor's health checks would."""
    with h.ctx.db.write() as s:
        change = Change("lab-h100", "local", before, status, "executor local unreachable: test")
        health_repo.record(s, [change], datetime.now(UTC))


def job(h: Harness, job_id: object) -> dict[str, Any]:
    """The job as ``GET /api/v1/jobs/{id}`` shows it."""
    data: dict[str, Any] = h.client.get(f"/api/v1/jobs/{job_id}", headers=h.headers()).json()
    return data


def stopped_by_outage(h: Harness, job_id: object, ran_s: float = 0.0) -> None:
    """Let the job run ``ran_s`` on lab-h100, then take the cluster down until the job has left it (it waits again
    or failed); the cluster stays down."""
    cycle_until(h, lambda: job(h, job_id)["status"] == "running")
    time.sleep(ran_s)
    mark(h, "down", "up")
    cycle_until(h, lambda: job(h, job_id)["status"] in ("pending", "failed"))
