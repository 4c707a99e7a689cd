"""The proxy against replicas it cannot reach or that die before answering, with routes set by hand (no scheduler
runs: the service's replica rows are written directly, each pointing at a real replica process, a port nothing
listens on, or a server that closes every connection without an answer): a refused request, or an idempotent one
whose replica closed the connection, is sent once more to another replica and answered (a POST that may have
reached a replica is not: a located 502), the failed replica is left alone for a while, requests spread by least
outstanding, and a request no replica answers is a located 502. On SQLite and PostgreSQL."""

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from integration.server.services_support import LOCAL_YAML, live, ready_routes, wait_for
from integration.server.stargate_harness import Harness
from stargate.server.inference.replica_job import free_port

REPLICA = LOCAL_YAML.with_name("replica.py")
COMPLETION = {"prompt_tokens": 100, "max_tokens": 10}


@contextmanager
def replica_process() -> Iterator[int]:
    """A real replica (examples/services/replica.py, no cold start) on a free port; its port."""
    port = free_port(set())
    env = {**os.environ, "PORT": str(port), "STARGATE_SERVICE": "chat"}
    process = subprocess.Popen([sys.executable, str(REPLICA)], env=env, stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: _answers(port))
        yield port
    finally:
        process.terminate()
        process.wait(10)


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def closer() -> Iterator[int]:
    """A server that accepts every connection, reads the request and closes it without an answer; its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def _retries(harness: Harness) -> float:
    value = harness.ctx.metrics.registry.get_sample_value("stargate_service_retries_total", {"service": "chat"})
    return value or 0.0


def test_a_refused_connection_is_retried_on_another_replica_which_answers(harness: Harness) -> None:
    with replica_process() as good:
        ready_routes(harness, [free_port({good}), good])  # replica 0: nothing listens
        with live(harness, scheduler=False) as server, server.http() as http:
            answers = [http.post("/services/chat/v1/completions", json=COMPLETION) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert _retries(harness) == 1  # replica 0 is left alone after its refusal


def test_a_get_whose_replica_closes_the_connection_before_answering_is_retried(harness: Harness) -> None:
    with closer() as dead, replica_process() as good:
        ready_routes(harness, [dead, good, free_port({dead, good})])
        with live(harness, scheduler=False) as server, server.http() as http:
            first = http.get("/services/chat/health")
            assert first.status_code == 200 and _retries(harness) == 1


def test_a_post_whose_replica_closes_the_connection_before_answering_is_a_located_502(harness: Harness) -> None:
    with closer() as dead, replica_process() as good:
        ready_routes(harness, [dead, good])
        with live(harness, scheduler=False) as server, server.http() as http:
            first = http.post("/services/chat/v1/completions", json=COMPLETION)
            assert _retries(harness) == 0
            after = http.post("/services/chat/v1/completions", json=COMPLETION)  # replica 0 is left alone
    assert first.status_code == 502
    assert first.json()["detail"] == (
        "service 'chat': no replica answered (replica 0: the connection closed before an answer); a POST that may "
        "have reached a replica is not sent again"
    )
    assert after.status_code == 200 and after.json()["usage"]["completion_tokens"] == 10


def test_no_replica_answering_is_a_located_502(harness: Harness) -> None:
    with closer() as dead:
        refused = free_port({dead})
        ready_routes(harness, [dead, refused])
        with live(harness, scheduler=False) as server, server.http() as http:
            answer = http.get("/services/chat/v1/models")
    assert answer.status_code == 502
    detail = answer.json()["detail"]
    assert detail == (
        "service 'chat': no replica answered (replica 0: the connection closed before an answer; replica 1: "
        "connection refused)"
    )


def test_requests_go_to_the_replica_with_the_fewest_outstanding(harness: Harness) -> None:
    with replica_process() as a, replica_process() as b:
        ready_routes(harness, [a, b])
        with live(harness, scheduler=False) as server, server.http() as http:
            long = {"prompt_tokens": 10, "max_tokens": 150, "stream": True}
            streams = [http.stream("POST", "/services/chat/v1/completions", json=long) for _ in range(4)]
            opened = [s.__enter__() for s in streams]
            meter = harness.ctx.inference.meter("chat")
            spread = dict(meter.by_replica)
            for stream in streams:
                stream.__exit__(None, None, None)
    assert [o.status_code for o in opened] == [200] * 4
    assert spread == {0: 2, 1: 2}
