"""Reasons over the real API: every status change gives the job (and its event) a code of ``JobReason`` and a
free-text detail, through submit, place, start, preempt, reject, cancel, success and failure; a code this server
does not know reads as ``other`` instead of failing the request; the OpenAPI document lists every code."""

import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import update

from integration.server.stargate_harness import Harness
from stargate.domain import JobReason
from stargate.server.scheduling.apply import apply_decisions
from stargate.server.scheduling.decide import decide
from stargate.server.scheduling.loop import run_cycle
from stargate.server.scheduling.snapshot import take_snapshot
from stargate.server.terms import engine_seconds
from stargate.store import JobEventRow, JobRow, parse_job_id

TIMEOUT_S = 15.0


def _now() -> datetime:
    return datetime.now(UTC)


def _job(h: Harness, job_id: object) -> dict[str, object]:
    response = h.client.get(f"/api/v1/jobs/{job_id}", headers=h.headers())
    assert response.status_code == 200, response.text
    data: dict[str, object] = response.json()
    return data


def _why(h: Harness, job_id: object) -> tuple[object, object, object]:
    """(status, reason, detail) of a job as the API shows it."""
    job = _job(h, job_id)
    return job["status"], job["reason"], job["detail"]


def _events(h: Harness, job_id: object) -> list[tuple[object, object, object]]:
    """(to, reason, detail) of each event of a job, oldest first, as the API lists them."""
    response = h.client.get("/api/v1/events", params={"job_id": str(job_id)}, headers=h.headers())
    assert response.status_code == 200, response.text
    return [(e["to"], e["reason"], e["detail"]) for e in response.json()["items"]]


def _cycle_until(h: Harness, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not done():
        assert time.monotonic() < deadline, "timed out"
        run_cycle(h.ctx, _now())
        time.sleep(0.05)


def test_a_job_that_runs_to_the_end_is_submitted_placed_started_and_succeeded(harness: Harness) -> None:
    job = harness.submit(command="true")
    assert (job["status"], job["reason"], job["detail"]) == ("pending", "submitted", "")
    snap = take_snapshot(harness.ctx)
    assert snap is not None
    result, lost, _ = decide(snap, harness.ctx.policy_for(snap.fleet), engine_seconds(_now()))
    apply_decisions(harness.ctx, snap, result, lost, _now())  # placed, the executor not called yet
    status, reason, detail = _why(harness, job["id"])
    cluster = _job(harness, job["id"])["cluster"]
    assert (status, reason, detail) == ("placed", JobReason.PLACED, f"on {cluster} (1 GPU)")
    _cycle_until(harness, lambda: _why(harness, job["id"])[0] == "succeeded")
    assert _events(harness, job["id"]) == [
        ("pending", "submitted", ""),
        ("placed", "placed", f"on {cluster} (1 GPU)"),
        ("running", "started", f"on {cluster}"),
        ("succeeded", "succeeded", "exited with code 0"),
    ]


def test_a_nonzero_exit_fails_with_the_code_in_the_detail(harness: Harness) -> None:
    job = harness.submit(command="exit 3")["id"]
    _cycle_until(harness, lambda: _why(harness, job)[0] == "failed")
    assert _why(harness, job) == ("failed", "failed", "exited with code 3")
    assert _events(harness, job)[-1] == ("failed", "failed", "exited with code 3")


def test_a_cancelled_job_says_who_cancelled_it(harness: Harness) -> None:
    job = harness.submit(role="member", team="alpha", command="sleep 20")["id"]
    _cycle_until(harness, lambda: _why(harness, job)[0] == "running")
    assert _why(harness, job)[1] == "started"
    cancelled = harness.client.post(f"/api/v1/jobs/{job}/cancel", headers=harness.headers("member", "alpha"))
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["reason"], cancelled.json()["detail"]) == ("cancelled", "by token:member-alpha")
    assert _events(harness, job)[-1] == ("cancelled", "cancelled", "by token:member-alpha")
    run_cycle(harness.ctx, _now())  # stops the run
    assert _why(harness, job) == ("cancelled", "cancelled", "by token:member-alpha")


def test_a_preempted_job_goes_back_to_pending_with_the_engine_code(harness: Harness) -> None:
    victim = harness.submit(queue="beta-q", gpus=4, gpu_models=["GB200"], priority_class="low", command="sleep 20")
    _cycle_until(harness, lambda: _why(harness, victim["id"])[0] == "running")
    harness.submit(gpus=4, gpu_models=["GB200"], priority_class="high", command="sleep 20")
    assert run_cycle(harness.ctx, _now()).preempted == 1
    assert _why(harness, victim["id"]) == ("pending", JobReason.PRIORITY, "")
    assert _events(harness, victim["id"])[-1] == ("pending", "priority", "")
    for job in harness.client.get("/api/v1/jobs", headers=harness.headers()).json()["items"]:
        harness.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=harness.headers())
    run_cycle(harness.ctx, _now())


def test_a_job_that_can_never_run_is_rejected_with_the_engine_code(harness: Harness) -> None:
    job = harness.submit(gpus=64)["id"]
    assert run_cycle(harness.ctx, _now()).rejected == 1
    assert _why(harness, job) == ("failed", JobReason.NO_CLUSTER_FITS, "")
    assert _events(harness, job) == [("pending", "submitted", ""), ("failed", "no_cluster_fits", "")]


def test_a_job_whose_region_left_the_fleet_is_rejected_naming_what_matched_nothing(harness: Harness) -> None:
    job = harness.submit(allowed_regions=["local"])["id"]
    row_id = parse_job_id(str(job))
    with harness.ctx.db.write() as session:  # as if a fleet change had removed the region the job allows
        spec = session.get(JobRow, row_id).spec  # type: ignore[union-attr]
        session.execute(update(JobRow).where(JobRow.id == row_id).values(spec={**spec, "allowed_regions": ["mars"]}))
    harness.ctx.loop.spec_terms.clear()
    assert run_cycle(harness.ctx, _now()).rejected == 1
    detail = "allowed_regions mars (not in the fleet)"
    assert _why(harness, job) == ("failed", JobReason.NO_ALLOWED_CLUSTER, detail)
    assert _events(harness, job)[-1] == ("failed", "no_allowed_cluster", detail)


def test_a_code_this_server_does_not_know_reads_as_other(harness: Harness) -> None:
    job = harness.submit()["id"]
    row_id = parse_job_id(str(job))
    with harness.ctx.db.write() as session:  # as a newer server might have written it
        session.execute(update(JobRow).where(JobRow.id == row_id).values(reason="throttled", detail="site at 100%"))
        session.execute(update(JobEventRow).where(JobEventRow.job_id == row_id).values(reason="throttled"))
    assert _why(harness, job) == ("pending", "other", "throttled: site at 100%")
    assert _events(harness, job) == [("pending", "other", "throttled")]
    listed = harness.client.get("/api/v1/jobs", headers=harness.headers())
    assert listed.status_code == 200 and listed.json()["items"][0]["reason"] == "other"


def test_the_openapi_document_lists_every_reason_code(harness: Harness) -> None:
    document = harness.client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert schemas["JobReason"]["enum"] == [r.value for r in JobReason]
    for model in ("Job", "Event"):
        fields = schemas[model]["properties"]
        assert fields["reason"]["$ref"] == "#/components/schemas/JobReason"
        assert "the code of its last status change" in fields["reason"]["description"]
        assert fields["detail"]["type"] == "string" and "Free text" in fields["detail"]["description"]
        assert {"reason", "detail"} <= set(schemas[model]["required"])
