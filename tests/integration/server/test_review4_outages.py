"""Fourth review of the outage bound in the server (``max_outage_stops``, ``outage_limit``, jobs.outage_stops) with
the real local executor and the real scheduler loop; outages are the health step's records, as an executor's failed
checks write them, or fleet versions as an operator applies them.

Each defect began as a strict xfail (now fixed); plain tests cover what held (a server restart between outages,
max 0).
"""

import copy
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, update

from integration.server.cycle_support import cycle_until
from integration.server.differential_support import serve, simulate
from integration.server.outage_support import job as job_json
from integration.server.outage_support import mark, outage_harness, stopped_by_outage
from integration.server.stargate_harness import Harness
from integration.server.test_differential import FLEET, make_trace
from stargate.engine import Override
from stargate.fleetfile import load_fleet
from stargate.server.context import LoopState
from stargate.server.scheduling.loop import run_cycle
from stargate.server.terms import ENGINE_EPOCH
from stargate.sim.simulator import Failure
from stargate.store import JobRow, RunRow, current_revision, downgrade, parse_job_id, upgrade
from stargate.store.migrate import head_revision
from stargate.store.repositories.health import Streak, keep_streaks, streaks

TIMEOUT_S = 15.0
T0 = (datetime(2026, 1, 1, tzinfo=UTC) - ENGINE_EPOCH).total_seconds()
"""When the differential traces start (the fleet's as_of date), engine seconds."""


@pytest.fixture
def make(db_url: str, tmp_path: Path) -> Iterator[Callable[[int], Harness]]:
    made: list[Harness] = []

    def build(limit: int) -> Harness:
        made.append(outage_harness(db_url, tmp_path, limit))
        return made[-1]

    yield build
    for h in made:
        h.client.close()
        h.ctx.db.close()


def _stops(h: Harness, job_id: object) -> int:
    with h.ctx.db.read() as s:
        return int(s.scalar(select(JobRow.outage_stops).where(JobRow.id == parse_job_id(str(job_id)))) or 0)


def _open_runs(h: Harness, job_id: object) -> int:
    with h.ctx.db.read() as s:
        rows = s.scalars(select(RunRow).where(RunRow.job_id == parse_job_id(str(job_id)), RunRow.ended.is_(False)))
        return len(list(rows))


def _new_fleet_version(h: Harness) -> None:
    """An operator's fleet change beyond statuses (the description), through plan and apply."""
    document = copy.deepcopy(h.client.get("/api/v1/fleet", headers=h.headers()).json()["fleet"])
    document["description"] = "Two small clusters and two teams, for tests (edited during an outage)."
    plan = h.client.post("/api/v1/fleet/plan", json={"fleet": document}, headers=h.headers())
    assert plan.status_code == 200, plan.text
    applied = h.client.post("/api/v1/fleet/apply", json={"plan_id": plan.json()["plan_id"]}, headers=h.headers())
    assert applied.status_code == 200, applied.text


def _lose_and_regain_the_lead(h: Harness) -> None:
    """What the scheduler thread does when another server took the lock for a while: drop the kept driver."""
    h.ctx.loop.driver = None


@pytest.mark.parametrize("rebuild", [_new_fleet_version, _lose_and_regain_the_lead], ids=["fleet-change", "lead"])
def test_a_driver_rebuilt_during_an_outage_keeps_the_count(
    make: Callable[[int], Harness], rebuild: Callable[[Harness], None]
) -> None:
    h = make(1)
    job = h.submit(command="sleep 60", gpu_models=["H100-SXM"], checkpoint_interval_s=3600)["id"]
    stopped_by_outage(h, job)
    assert job_json(h, job)["status"] == "pending" and _stops(h, job) == 1
    assert _open_runs(h, job) == 1  # its orphaned run: not yet ended while its cluster is down
    rebuild(h)
    run_cycle(h.ctx, datetime.now(UTC))  # the rebuilt driver decides during the outage
    mark(h, "up", "down")
    stopped_by_outage(h, job)  # the second stop in a row before a checkpoint: past the limit of 1
    found = job_json(h, job)
    assert (found["status"], found["reason"]) == ("failed", "outage_limit"), (found, _stops(h, job))
    h.client.post(f"/api/v1/jobs/{job}/cancel", headers=h.headers())


def test_a_restarted_server_counts_on_from_the_job_row(make: Callable[[int], Harness]) -> None:
    h = make(1)
    job = h.submit(command="sleep 60", gpu_models=["H100-SXM"], checkpoint_interval_s=3600)["id"]
    stopped_by_outage(h, job)
    assert _stops(h, job) == 1
    h.ctx.loop = LoopState()  # a new process: nothing kept but the database
    run_cycle(h.ctx, datetime.now(UTC))
    mark(h, "up", "down")
    stopped_by_outage(h, job)
    found = job_json(h, job)
    assert (found["status"], found["reason"]) == ("failed", "outage_limit"), found
    assert "outages stopped its last 2 runs in a row (the last on lab-h100)" in found["detail"]


def test_max_outage_stops_0_fails_at_the_first_outage_and_the_run_is_stopped(make: Callable[[int], Harness]) -> None:
    h = make(0)
    job = h.submit(command="sleep 60", gpu_models=["H100-SXM"], checkpoint_interval_s=3600)["id"]
    other = h.submit(command="sleep 60", gpu_models=["GB200"], checkpoint_interval_s=3600)["id"]
    stopped_by_outage(h, job)
    found = job_json(h, job)
    assert (found["status"], found["reason"]) == ("failed", "outage_limit"), found
    assert job_json(h, other)["status"] == "running"  # a job on another cluster is not touched
    mark(h, "up", "down")
    cycle_until(h, lambda: _open_runs(h, job) == 0)  # the failed job's orphan is stopped once its engine answers
    h.client.post(f"/api/v1/jobs/{other}/cancel", headers=h.headers())
    cycle_until(h, lambda: _open_runs(h, other) == 0)


def test_migrations_0010_and_0011_go_down_and_up_again_with_data(harness: Harness) -> None:
    """Held: with a counted job and a stored failing streak, the two migrations go down to 0009 (the column and
    the table dropped, the jobs kept) and up again (the count back at 0, the table empty), on both databases."""
    job = harness.submit(command="true")["id"]
    row = parse_job_id(str(job))
    at = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    with harness.ctx.db.write() as s:
        s.execute(update(JobRow).where(JobRow.id == row).values(outage_stops=3))
        keep_streaks(s, [Streak("local", at, 4, "refused \x1b[31m" + "x" * 600, at, True)])
    engine = harness.ctx.db.engine
    downgrade(engine, "20261203_0009")
    assert current_revision(engine) == "20261203_0009"
    found = inspect(engine)
    assert "executor_checks" not in found.get_table_names()
    assert "outage_stops" not in {c["name"] for c in found.get_columns("jobs")}
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert _stops(harness, job) == 0 and job_json(harness, job)["id"] == job
    with harness.ctx.db.read() as s:
        assert streaks(s) == {}


@pytest.mark.parametrize(("policy", "limit"), [("gittins", 0), ("las", 1)])
def test_both_clocks_fail_the_same_jobs_for_repeated_outages(policy: str, limit: int, tmp_path: Path) -> None:
    """Held: six outages of 1 to 15 minutes over two clusters, 40 jobs; the simulator and the server stop, fail
    (outage_limit) and start the same jobs at the same instants."""
    rng = random.Random(7)
    jobs = make_trace(7, 40, 4 * 3600)
    clusters = ["lab-a", "lab-b"]
    outages = [
        Failure(rng.choice(clusters), T0 + rng.randrange(0, 5 * 3600), float(rng.choice((60, 300, 900))))
        for _ in range(6)
    ]
    override = Override(policy=policy, settings={"max_outage_stops": limit})
    expected = simulate(load_fleet(FLEET), jobs, outages, override)
    got = serve(FLEET, f"sqlite:///{tmp_path}/stargate.db", tmp_path / "home", jobs, outages, override)
    assert got == expected
    assert any(r[1] == "preempt" and r[3] == "cluster_down" for r in expected)
    if limit == 0:
        assert any(r[1] == "reject" and r[3] == "outage_limit" for r in expected)
