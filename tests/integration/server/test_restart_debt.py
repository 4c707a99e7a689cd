"""Under the default policy, gittins, every stop costs ``restart_cost_s`` (60 s): a job stopped before its first
checkpoint keeps a negative ``progress_s``. The store keeps it, the API shows it (one job and the list, no 500, no
validation error), and the scheduler starts the job again with it."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from integration.server.stargate_harness import Harness
from stargate.server.scheduling.loop import run_cycle
from stargate.store import JobRow, parse_job_id

JOBS = "/api/v1/jobs"


def _apply(harness: Harness, change: Callable[[dict[str, Any]], None]) -> None:
    fleet = harness.client.get("/api/v1/fleet", headers=harness.headers()).json()["fleet"]
    change(fleet)
    plan = harness.client.post("/api/v1/fleet/plan", json={"fleet": fleet}, headers=harness.headers()).json()
    applied = harness.client.post("/api/v1/fleet/apply", json={"plan_id": plan["plan_id"]}, headers=harness.headers())
    assert applied.status_code == 200, applied.text


def _status(status: str) -> Callable[[dict[str, Any]], None]:
    def change(fleet: dict[str, Any]) -> None:
        for cluster in fleet["clusters"]:
            if cluster["id"] == "lab-gb200":
                cluster["status"] = status

    return change


def test_a_job_stopped_before_its_first_checkpoint_owes_the_restart_cost(harness: Harness) -> None:
    policy = harness.client.get("/api/v1/fleet/scheduling", headers=harness.headers()).json()
    assert (policy["policy"], policy["settings"]["restart_cost_s"]) == ("gittins", 60.0)  # the default policy
    job = str(harness.submit(gpus=4, gpu_models=["GB200"], command="sleep 60", checkpoint_interval_s=10.0)["id"])
    t0 = datetime.now(UTC)
    assert run_cycle(harness.ctx, t0).placed == 1
    _apply(harness, _status("down"))
    assert run_cycle(harness.ctx, t0 + timedelta(seconds=5)).preempted == 1  # before its first 10-s checkpoint
    with harness.ctx.db.read() as session:
        row = session.get(JobRow, parse_job_id(job))
        assert row is not None and (row.status, row.progress_s) == ("pending", -60.0)
    one = harness.client.get(f"{JOBS}/{job}", headers=harness.headers())
    assert one.status_code == 200 and one.json()["progress_s"] == -60.0 and one.json()["attempt"] == 1
    listed = harness.client.get(JOBS, headers=harness.headers())
    assert listed.status_code == 200 and [j["progress_s"] for j in listed.json()["items"]] == [-60.0]
    _apply(harness, _status("up"))
    assert run_cycle(harness.ctx, t0 + timedelta(seconds=10)).placed == 1  # it runs again, debt and all


def test_a_second_stop_before_the_first_checkpoint_owes_one_restart_only(harness: Harness) -> None:
    job = str(harness.submit(gpus=4, gpu_models=["GB200"], command="sleep 60", checkpoint_interval_s=10.0)["id"])
    t0 = datetime.now(UTC)
    for start, stop in ((0, 5), (10, 15)):  # two runs of 5 s, each stopped before any checkpoint
        assert run_cycle(harness.ctx, t0 + timedelta(seconds=start)).placed == 1
        _apply(harness, _status("down"))
        assert run_cycle(harness.ctx, t0 + timedelta(seconds=stop)).preempted == 1
        _apply(harness, _status("up"))
    assert harness.client.get(f"{JOBS}/{job}", headers=harness.headers()).json()["progress_s"] == -60.0
