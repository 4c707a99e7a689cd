"""A scheduler that fails says so: failing cycles make /healthz degraded (503, with the reason) and count in
/metrics, a good cycle makes it ok again; a fleet the engine cannot load is refused before it is applied."""

import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, select

from integration.server.stargate_harness import Harness
from stargate.domain import Fleet
from stargate.server.errors import InvalidError
from stargate.server.scheduling.loop import SchedulerThread, run_cycle
from stargate.server.services import fleet as fleet_service
from stargate.store.models import FleetVersionRow
from stargate.store.repositories import fleet_versions

TIMEOUT_S = 15.0


def _now() -> datetime:
    return datetime.now(UTC)


def _inject_bad_fleet(h: Harness) -> int:
    """Make a fleet the loop cannot load the fleet in force, written directly in the database (as a bug or a manual
    edit could): a cluster of 2^70 nodes. Returns its row id."""
    with h.ctx.db.write() as s:
        good = fleet_versions.current(s)
        assert good is not None
        document = dict(good.document)
        document["clusters"] = [{**c, "nodes": 2**70} for c in document["clusters"]]
        row = FleetVersionRow(version="f" * 64, document=document, applied_at=_now(), applied_by="test")
        fleet_versions.add(s, row)
        return row.id


def _remove(h: Harness, row_id: int) -> None:
    with h.ctx.db.write() as s:
        s.execute(delete(FleetVersionRow).where(FleetVersionRow.id == row_id))


def _metric(h: Harness, name: str) -> float:
    for line in h.client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def test_failing_cycles_make_health_degraded_until_a_cycle_succeeds(harness: Harness) -> None:
    job = harness.submit(command="true")["id"]
    bad = _inject_bad_fleet(harness)
    started = _now()
    for n in (1, 2):
        with pytest.raises(Exception):  # noqa: B017 - whatever the engine raises on this fleet
            run_cycle(harness.ctx, _now())
        assert harness.client.get("/healthz").json() == {"status": "ok"}  # one or two failures: not yet
        assert _metric(harness, "stargate_scheduler_consecutive_failures") == n
    with pytest.raises(Exception):  # noqa: B017
        run_cycle(harness.ctx, _now())
    degraded = harness.client.get("/healthz")
    assert degraded.status_code == 503
    body = degraded.json()
    assert body["status"] == "degraded"
    assert body["reason"].startswith("scheduler: 3 cycles failed in a row since ")
    since = datetime.fromisoformat(body["reason"].split(" since ")[1].split("Z")[0]).replace(tzinfo=UTC)
    assert abs((since - started).total_seconds()) < 5
    assert "Error" in body["reason"].split("Z: ", 1)[1]  # the exception's type and message
    assert harness.client.get("/livez").json() == {"status": "ok"}  # liveness is not affected
    assert _metric(harness, "stargate_scheduler_cycle_failures_total") == 3
    assert _metric(harness, "stargate_scheduler_consecutive_failures") == 3
    job_data = harness.client.get(f"/api/v1/jobs/{job}", headers=harness.headers()).json()
    assert job_data["status"] == "pending"
    _remove(harness, bad)  # fixed
    run_cycle(harness.ctx, _now())
    ok = harness.client.get("/healthz")
    assert (ok.status_code, ok.json()) == (200, {"status": "ok"})
    assert _metric(harness, "stargate_scheduler_consecutive_failures") == 0
    assert _metric(harness, "stargate_scheduler_cycle_failures_total") == 3
    assert harness.client.get(f"/api/v1/jobs/{job}", headers=harness.headers()).json()["status"] != "pending"


def test_the_scheduler_thread_reports_degraded_health(harness: Harness) -> None:
    bad = _inject_bad_fleet(harness)
    harness.ctx.settings = replace(harness.ctx.settings, scheduler_interval_s=0.02)
    thread = SchedulerThread(harness.ctx)
    thread.start()
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while harness.client.get("/healthz").status_code != 503:
            assert time.monotonic() < deadline, "never degraded"
            time.sleep(0.05)
        _remove(harness, bad)
        while harness.client.get("/healthz").status_code != 200:
            assert time.monotonic() < deadline, "never ok again"
            time.sleep(0.05)
    finally:
        thread.stop()
    assert _metric(harness, "stargate_scheduler_cycle_failures_total") >= 3


def test_a_cycle_that_never_ends_makes_health_degraded(harness: Harness) -> None:
    health = harness.ctx.metrics.scheduler
    health.stalled_after_s = 0.2  # 60 s in a server
    health.began()  # as run_cycle does; this cycle then hangs
    assert harness.client.get("/healthz").status_code == 200
    time.sleep(0.3)
    stuck = harness.client.get("/healthz")
    assert stuck.status_code == 503
    assert stuck.json()["reason"].startswith("scheduler: the cycle that started at ")
    assert stuck.json()["reason"].endswith(" s") and "is still running after" in stuck.json()["reason"]
    run_cycle(harness.ctx, _now())  # a cycle that ends
    assert harness.client.get("/healthz").json() == {"status": "ok"}


def _unloadable(h: Harness) -> Fleet:
    """The fleet in force with a cluster of 2^70 nodes, built without validation: the domain's bounds refuse such a
    value now, so this stands for whatever a bound might miss; the engine's index cannot hold it (int64)."""
    with h.ctx.db.read() as s:
        _, fleet = h.ctx.fleet.get(s)
    clusters = [c.model_copy(update={"nodes": 2**70}) if c.id == "lab-gb200" else c for c in fleet.clusters]
    return fleet.model_copy(update={"clusters": clusters})


def test_a_fleet_the_engine_cannot_load_is_refused_with_the_entry_that_breaks_it(harness: Harness) -> None:
    fleet = _unloadable(harness)
    problem = fleet_service.engine_problem(fleet)
    assert problem is not None
    assert problem.startswith("fleet.clusters[1] (id 'lab-gb200'): found a value the scheduler cannot load (")
    assert "OverflowError" in problem and problem.endswith("expected a fleet the engine can index")
    with harness.ctx.db.read() as s:
        _, good = harness.ctx.fleet.get(s)
    assert fleet_service.engine_problem(good) is None


def test_applying_a_fleet_the_engine_cannot_load_records_nothing(harness: Harness) -> None:
    with harness.ctx.db.read() as s:
        before = fleet_versions.current_version(s)
    refused = pytest.raises(InvalidError, match=r"invalid fleet: fleet\.clusters\[1\] \(id 'lab-gb200'\)")
    with refused, harness.ctx.db.write() as s:
        fleet_service.ensure(s, _unloadable(harness), "test", _now())  # what `stargate up --fleet` calls
    with harness.ctx.db.read() as s:
        assert fleet_versions.current_version(s) == before
        assert len(list(s.scalars(select(FleetVersionRow)))) == 1
    report = run_cycle(harness.ctx, _now())  # the scheduler goes on with the fleet in force
    assert report.decided
