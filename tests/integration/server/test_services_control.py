"""The services step with the real local executor and real replica processes (examples/services/local.yaml's
program) behind the real proxy on a real uvicorn: replicas start as jobs and become ready, the proxy answers through
them and measures, load scales a service up and its end drains it back down with no failed request, a replica that
dies is replaced, one that cannot start is retried with a back-off, a deleted service drains and goes, and traffic
through a second API server on the same database counts. On SQLite and PostgreSQL."""

import glob
import json
import os
import signal
import threading
import time
from collections import Counter
from typing import Any

import httpx
import uvicorn
from sqlalchemy import select

from integration.server.services_support import live, local_spec, wait_for
from integration.server.stargate_harness import Harness
from stargate.domain.services import ServiceSpec
from stargate.engine.replicas import replica_terms
from stargate.server.app import create_app
from stargate.server.context import ServerContext
from stargate.server.terms import SpecTerms, job_terms
from stargate.store import Database, JobEventRow, JobStatus, parse_job_id
from stargate.store.repositories import jobs as job_repo

COMPLETION = {"prompt_tokens": 200, "max_tokens": 50}


def _create(harness: Harness, **overrides: Any) -> dict[str, Any]:
    answer = harness.client.post("/api/v1/services", json=local_spec(**overrides), headers=harness.headers())
    assert answer.status_code == 201, answer.text
    data: dict[str, Any] = answer.json()
    return data


def _job(harness: Harness, job_id: str) -> dict[str, Any]:
    data: dict[str, Any] = harness.client.get(f"/api/v1/jobs/{job_id}", headers=harness.headers()).json()
    return data


def _kill(harness: Harness, job_id: str) -> None:
    """SIGKILL the process group of a job's run (the replica dies as if it crashed)."""
    runs = harness.ctx.settings.runs_dir
    for path in glob.glob(str(runs / "**" / job_id / "attempt-*" / "run.json"), recursive=True):
        with open(path) as record:
            os.killpg(json.load(record)["pgid"], signal.SIGKILL)
        return
    raise AssertionError(f"no run record of {job_id} under {runs}")


def test_replicas_are_jobs_of_the_engine_s_terms_and_the_proxy_answers_through_them(harness: Harness) -> None:
    _create(harness, min_replicas=1, max_replicas=2)
    with live(harness) as server:
        wait_for(lambda: server.states() == ["ready"])
        replica = server.service()["replicas"][0]
        job = _job(harness, replica["job"])
        assert (job["kind"], job["status"], job["name"], job["queue"], job["gpus"]) == (
            "serve",
            "running",
            "chat",
            "alpha-q",
            1,
        )
        assert job["spec"]["preemptible"] is False and job["gpu_models"] == ["H100-SXM"]
        environment = job["spec"]["environment"]
        assert environment == {"PORT": str(replica["port"]), "STARGATE_SERVICE": "chat", "STARGATE_REPLICA": "0"}
        spec = ServiceSpec.model_validate(local_spec())
        with harness.ctx.db.read() as session:
            state = next(s for s in job_repo.states(session, [JobStatus.RUNNING]) if s.id == parse_job_id(job["id"]))
            served = job_terms(state, SpecTerms.of(job["spec"]))
        engine = replica_terms(spec, 0, served.submit_s)
        for field in ("queue", "gpus", "gpu_models", "preemptible", "estimate_s", "checkpoint_interval_s", "name"):
            assert getattr(served, field) == getattr(engine, field), field

        with server.http() as http:
            answer = http.post("/services/chat/v1/completions", json=COMPLETION)
            assert answer.status_code == 200, answer.text
            assert answer.json()["usage"] == {"prompt_tokens": 200, "completion_tokens": 50, "total_tokens": 250}
            with http.stream("POST", "/services/chat/v1/completions", json={**COMPLETION, "stream": True}) as stream:
                events = [line for line in stream.iter_lines() if line.startswith("data:")]
            assert events[-1] == "data: [DONE]" and '"usage"' in events[-2]
            assert http.get("/services/chat/health").status_code == 200  # any path, any method
            assert (
                http.post("/services/chat/v1/completions", json=COMPLETION, headers={"Authorization": ""}).status_code
                == 401
            )
        with server.http("member", "beta") as other:
            answer = other.post("/services/chat/v1/completions", json=COMPLETION)
            assert (answer.status_code, answer.json()) == (404, {"detail": "no service 'chat'"})
        traffic = wait_for(lambda: (t := server.service()["traffic"]) and t["completed"] >= 2 and t)
        assert traffic["e2e_p50_s"] is not None and traffic["ttft_p50_s"] is not None
        assert traffic["ttft_p50_s"] < traffic["e2e_p99_s"]
        metrics = harness.client.get("/metrics").text
        assert 'stargate_service_requests_total{outcome="answered",service="chat"} 3.0' in metrics
        assert 'stargate_service_replicas{service="chat",state="ready"} 1.0' in metrics


def test_load_scales_the_service_up_and_its_end_drains_it_down_with_no_failed_request(harness: Harness) -> None:
    scaling = {"policy": "in-flight", "target_in_flight": 2, "window_s": 3, "downscale_delay_s": 3}
    _create(harness, min_replicas=1, max_replicas=3, autoscaling=scaling)
    with live(harness) as server:
        wait_for(lambda: server.states() == ["ready"])
        codes: Counter[int] = Counter()
        stop = threading.Event()

        def client() -> None:
            with server.http() as http:
                while not stop.is_set():
                    codes[http.post("/services/chat/v1/completions", json=COMPLETION).status_code] += 1

        clients = [threading.Thread(target=client) for _ in range(6)]
        for thread in clients:
            thread.start()
        try:
            wait_for(lambda: server.states().count("ready") >= 2)
        finally:
            stop.set()
            for thread in clients:
                thread.join()
        back = lambda: server.states() == ["ready"] and server.service()["desired_replicas"] == 1  # noqa: E731
        wait_for(back, context=server.service)
        service = server.service()
    assert set(codes) == {200} and sum(codes.values()) > 10
    ups = [d for d in service["decisions"] if d["to"] > d["from"]]
    downs = [d for d in service["decisions"] if d["to"] < d["from"]]
    assert ups and downs and "requests in flight at 2 per replica" in ups[-1]["reason"]
    with harness.ctx.db.read() as session:
        events = session.scalars(select(JobEventRow).where(JobEventRow.to_status == "cancelled")).all()
    drained = [e for e in events if e.actor == "service:chat" and "scaled down: drained" in e.detail]
    assert drained, [e.detail for e in events]


def test_a_replica_that_dies_is_replaced_under_a_new_number(harness: Harness) -> None:
    _create(harness, min_replicas=1, max_replicas=1)
    with live(harness) as server:
        wait_for(lambda: server.states() == ["ready"])
        first = server.service()["replicas"][0]
        _kill(harness, first["job"])
        replaced = wait_for(
            lambda: [r for r in server.service()["replicas"] if r["state"] == "ready" and r["number"] == 1]
        )
        assert replaced[0]["job"] != first["job"] and replaced[0]["port"] != 0
        assert _job(harness, first["job"])["status"] == "failed"
        with server.http() as http:
            assert http.post("/services/chat/v1/completions", json=COMPLETION).status_code == 200
        decisions = server.service()["decisions"]
    assert len(decisions) == 1  # a replacement is not a scale decision


def test_a_replica_that_cannot_start_is_retried_with_a_growing_back_off(harness: Harness) -> None:
    _create(harness, min_replicas=1, max_replicas=1, command="echo 'no model here' >&2; exit 3")
    with live(harness) as server:
        problem = wait_for(lambda: server.service()["problem"])
        assert problem.startswith("replica 0 (j-") and "ended: failed: exited with code 3" in problem
        assert problem.endswith("the next replica starts in 1 s")
        time.sleep(4)
        tried = len(harness.client.get("/api/v1/jobs", headers=harness.headers()).json()["items"])
        assert 2 <= tried <= 4  # tries at about 0, 1, 3 s: 1 + 2 s of back-off, not one per cycle
        assert "the next replica starts in" in server.service()["problem"]


def test_a_deleted_service_finishes_its_requests_takes_no_new_one_and_goes(harness: Harness, monkeypatch: Any) -> None:
    _create(harness, min_replicas=1, max_replicas=1)
    with live(harness) as server:
        wait_for(lambda: server.states() == ["ready"])
        job = server.service()["replicas"][0]["job"]
        answers: list[Any] = []

        def long_request() -> None:
            with server.http() as http:
                answers.append(http.post("/services/chat/v1/completions", json={**COMPLETION, "max_tokens": 200}))

        request = threading.Thread(target=long_request)
        request.start()
        time.sleep(0.3)  # it is in flight at the replica
        assert harness.client.delete("/api/v1/services/chat", headers=harness.headers()).json()["state"] == "deleting"
        with server.http() as http:
            refused = wait_for(
                lambda: (a := http.post("/services/chat/v1/completions", json=COMPLETION)).status_code == 503 and a
            )
            assert "is being deleted" in refused.json()["detail"]
        request.join()
        wait_for(lambda: harness.client.get("/api/v1/services/chat", headers=harness.headers()).status_code == 404)
    assert answers[0].status_code == 200 and answers[0].json()["usage"]["completion_tokens"] == 200
    cancelled = _job(harness, job)
    assert cancelled["status"] == "cancelled" and "scaled down: drained" in cancelled["detail"]


def test_no_ready_replica_is_a_503_after_a_bounded_wait(harness: Harness, monkeypatch: Any) -> None:
    from stargate.server.inference import proxy

    # The bound is a tick + upscale_delay_s + cold_start_s + MIN_WAIT_S (10 s): the last shortened for the test.
    monkeypatch.setattr(proxy, "MIN_WAIT_S", 0.5)
    _create(harness, min_replicas=1, max_replicas=1, cold_start_s=0, command="sleep 600")
    with live(harness) as server:
        wait_for(lambda: server.states() == ["starting"])
        with server.http() as http:
            started = time.monotonic()
            answer = http.post("/services/chat/v1/completions", json=COMPLETION)
            waited = time.monotonic() - started
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
        assert answer.json()["detail"] == (
            "service 'chat': no ready replica after waiting 1.5 s (an autoscaler tick 1 s + upscale_delay_s 0 s + "
            "cold_start_s 0 s + 0.5 s to place it and see it ready; 1 starting or waiting for GPUs)"
        )
        assert 1.5 <= waited < 4


def test_traffic_through_another_api_server_counts_and_reaches_the_replicas(harness: Harness) -> None:
    """A second server on the same database (no scheduler: a standby's API) routes to the replicas the leader runs,
    and the leader's measurements count the requests it served (every server writes its proxy's counters)."""
    _create(harness, min_replicas=1, max_replicas=1)
    other = ServerContext(settings=harness.ctx.settings, db=Database.open(harness.ctx.settings.database_url))
    server2 = uvicorn.Server(uvicorn.Config(create_app(other), host="127.0.0.1", port=0, log_level="error"))
    thread = threading.Thread(target=server2.run, daemon=True)
    thread.start()
    try:
        with live(harness) as server:
            wait_for(lambda: server.states() == ["ready"] and server2.started)
            port = server2.servers[0].sockets[0].getsockname()[1]
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=harness.headers(), timeout=30) as http:
                answers = [http.post("/services/chat/v1/completions", json=COMPLETION) for _ in range(6)]
            assert [a.status_code for a in answers] == [200] * 6
            counted = wait_for(lambda: (t := server.service()["traffic"]) and t["completed"] >= 6 and t)
    finally:
        server2.should_exit = True
        thread.join(10)
        other.db.close()
    assert counted["completed"] == 6 and counted["e2e_p50_s"] is not None


def test_a_service_scaled_to_zero_starts_a_replica_for_a_request_that_waits_for_it(harness: Harness) -> None:
    scaling = {"window_s": 3, "downscale_delay_s": 3}
    _create(harness, min_replicas=0, max_replicas=1, autoscaling=scaling)
    with live(harness) as server:
        time.sleep(1.5)
        assert server.service()["replicas"] == [] and server.service()["desired_replicas"] == 0
        with server.http() as http:
            started = time.monotonic()
            answer = http.post("/services/chat/v1/completions", json=COMPLETION)  # waits for the replica
            waited = time.monotonic() - started
        assert answer.status_code == 200, answer.text
        assert 1 < waited < 12  # a tick, a placement, the replica's 2-s cold start
        gone = wait_for(lambda: (s := server.service())["replicas"] == [] and s, context=server.service)
    reasons = [d["reason"] for d in gone["decisions"]]
    assert [(d["from"], d["to"]) for d in gone["decisions"]] == [(0, 0), (0, 1), (1, 0)], reasons
