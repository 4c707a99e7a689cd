"""Failover in the scheduler loop with the real local executor: a cluster observed down (the health step's record)
is overlaid on the fleet, its running job is requeued with a reason naming the outage and placed on the other
cluster, its old run is stopped as an orphan; an orphan found succeeded while its job moved on completes the job
(the newer attempt is withdrawn): a job never runs to completion twice."""

import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from integration.server.stargate_harness import Harness
from stargate.executors import RunHandle
from stargate.server.scheduling.execute import Executed
from stargate.server.scheduling.loop import CycleReport, _decide_and_apply, run_cycle
from stargate.server.scheduling.reap import reap_orphans
from stargate.server.scheduling.snapshot import take_snapshot
from stargate.store import JobEventRow, RunRow, parse_job_id
from stargate.store.repositories import health as health_repo
from stargate.store.repositories.health import Change

TIMEOUT_S = 15.0


def _now() -> datetime:
    return datetime.now(UTC)


def _mark(h: Harness, cluster: str, status: str, reason: str, before: str = "up") -> None:
    with h.ctx.db.write() as s:
        health_repo.record(s, [Change(cluster, "local", before, status, reason)], _now())


def _job(h: Harness, job_id: object) -> dict[str, object]:
    data: dict[str, object] = h.client.get(f"/api/v1/jobs/{job_id}", headers=h.headers()).json()
    return data


def _events(h: Harness, job_id: object) -> list[tuple[str | None, str, str, str]]:
    with h.ctx.db.read() as s:
        rows = s.scalars(select(JobEventRow).where(JobEventRow.job_id == parse_job_id(str(job_id))))
        return [(e.from_status, e.to_status, e.reason, e.detail) for e in rows]


def _runs(h: Harness, job_id: object) -> list[RunRow]:
    with h.ctx.db.read() as s:
        return list(s.scalars(select(RunRow).where(RunRow.job_id == parse_job_id(str(job_id))).order_by(RunRow.id)))


def _until(h: Harness, done: object) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        run_cycle(h.ctx, _now())
        time.sleep(0.05)


def test_the_overlay_takes_the_worse_status_and_changes_the_version(harness: Harness) -> None:
    snap = take_snapshot(harness.ctx)
    assert snap is not None and all(c.status == "up" for c in snap.fleet.clusters)
    _mark(harness, "lab-h100", "down", "executor local unreachable for 60 s: refused")
    _mark(harness, "no-such-cluster", "down", "ignored")
    down = take_snapshot(harness.ctx)
    assert down is not None and down.version != snap.version
    assert {c.id: c.status.value for c in down.fleet.clusters} == {"lab-h100": "down", "lab-gb200": "up"}
    assert down.down_reasons == {"lab-h100": "executor local unreachable for 60 s: refused"}
    with harness.ctx.db.write() as s:  # an observation through another executor (the cluster moved) is ignored
        health_repo.record(s, [Change("lab-h100", "slurm", "down", "down", "elsewhere")], _now())
    moved = take_snapshot(harness.ctx)
    assert moved is not None and moved.version == snap.version and moved.down_reasons == {}


def test_a_cluster_observed_down_moves_its_job_elsewhere_and_stops_the_old_run(
    harness: Harness, tmp_path: Path
) -> None:
    job = harness.submit(command="sleep 30", gpu_models=["H100-SXM", "GB200"])["id"]
    _until(harness, lambda: _job(harness, job)["status"] == "running")
    first = _job(harness, job)["cluster"]
    other = "lab-gb200" if first == "lab-h100" else "lab-h100"
    _mark(harness, str(first), "down", "executor local unreachable for 60 s: connection refused")
    _until(harness, lambda: _job(harness, job)["status"] == "running" and _job(harness, job)["cluster"] == other)
    moves = _events(harness, job)
    requeue = [e for e in moves if e[:3] == ("running", "pending", "cluster_down")]
    assert len(requeue) == 1
    assert requeue[0][3].startswith(f"cluster {first} down: executor local unreachable for 60 s: connection refused")
    assert any(e[:3] == ("pending", "placed", "placed") and other in e[3] for e in moves)
    _until(harness, lambda: _runs(harness, job)[0].ended)
    old, new = _runs(harness, job)
    assert (old.attempt, old.cluster, new.attempt, new.cluster, new.ended) == (0, first, 1, other, False)
    harness.client.post(f"/api/v1/jobs/{job}/cancel", headers=harness.headers())
    _until(harness, lambda: _runs(harness, job)[-1].ended)


def test_an_orphan_found_succeeded_completes_its_job_once(harness: Harness, tmp_path: Path) -> None:
    done = tmp_path / "done.txt"
    command = f'sleep 0.3; echo "$STARGATE_JOB_ID $STARGATE_ATTEMPT" >> {done}'
    job = harness.submit(command=command, gpu_models=["H100-SXM", "GB200"])["id"]
    run_cycle(harness.ctx, _now())  # placed and started
    (run,) = _runs(harness, job)
    assert run.handle_key is not None
    local = harness.ctx.executor("local")
    deadline = time.monotonic() + TIMEOUT_S
    while not local.poll(RunHandle("local", run.handle_key)).state.is_final():  # it ends; nobody polls it yet
        assert time.monotonic() < deadline
        time.sleep(0.05)
    _mark(harness, run.cluster, "down", "executor local unreachable for 5 s: timed out")
    _decide_and_apply(harness.ctx, _now(), CycleReport(at=_now()))  # requeued and placed on the other cluster
    assert (_job(harness, job)["status"], _job(harness, job)["attempt"]) == ("placed", 1)
    reap_orphans(harness.ctx, _now(), Executed())
    final = _job(harness, job)
    assert (final["status"], final["reason"], final["exit_code"]) == ("succeeded", "succeeded", 0)
    assert final["detail"] == (
        f"attempt 0 on {run.cluster} exited with code 0 after the job had moved on (attempt 1, placed, is stopped)"
    )
    _until(harness, lambda: all(r.ended for r in _runs(harness, job)))
    runs = _runs(harness, job)
    assert [(r.attempt, r.exit_code) for r in runs] == [(0, 0), (1, None)]
    assert runs[1].note.startswith("withdrawn before it started")
    time.sleep(0.5)
    assert done.read_text().split("\n") == [f"{job} 0", ""]


def test_fleet_health_and_events_through_the_api(harness: Harness) -> None:
    h = harness.headers("member", "alpha")
    before = harness.client.get("/api/v1/fleet/health", headers=h).json()
    assert [(c["cluster"], c["executor"], c["observed"], c["status"], c["since"]) for c in before["clusters"]] == [
        ("lab-h100", "local", "up", "up", None),
        ("lab-gb200", "local", "up", "up", None),
    ]
    _mark(harness, "lab-h100", "degraded", "executor local: 1 of 2 nodes failed")
    _mark(harness, "lab-h100", "down", "executor local unreachable for 60 s: refused", before="degraded")
    after = {c["cluster"]: c for c in harness.client.get("/api/v1/fleet/health", headers=h).json()["clusters"]}
    assert (after["lab-h100"]["declared"], after["lab-h100"]["observed"], after["lab-h100"]["status"]) == (
        "up",
        "down",
        "down",
    )
    assert after["lab-h100"]["reason"] == "executor local unreachable for 60 s: refused"
    assert after["lab-h100"]["since"] is not None and after["lab-gb200"]["observed"] == "up"
    page = harness.client.get("/api/v1/fleet/events", params={"limit": 1}, headers=h).json()
    assert [(e["cluster"], e["from"], e["to"]) for e in page["items"]] == [("lab-h100", "degraded", "down")]
    older = harness.client.get("/api/v1/fleet/events", params={"before": page["next_before"]}, headers=h).json()
    assert [(e["from"], e["to"], e["reason"]) for e in older["items"]] == [
        ("up", "degraded", "executor local: 1 of 2 nodes failed")
    ]
    assert older["next_before"] is None
    assert harness.client.get("/api/v1/fleet/events", params={"limit": 0}, headers=h).status_code == 422
    assert harness.client.get("/api/v1/fleet/health").status_code == 401
