"""A reviewer's attacks on inference services: the proxy against replicas that record what reaches them, clients
that give up or vanish mid-upload, replicas that cannot be placed, and the autoscaler's scale-down hysteresis on the
server's own tick. Each test marked xfail(strict) shows a defect while it is there.

Replicas here are real processes or loopback servers; the proxy is the real one on a real uvicorn (the harness of
tests/integration/server/services_support.py), on SQLite and (when configured) PostgreSQL.
"""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from integration.server.services_support import live, local_spec, ready_routes, wait_for
from integration.server.stargate_harness import Harness
from stargate.domain.services import ServiceSpec
from stargate.engine.autoscale import Autoscaler, Traffic
from stargate.server.scheduling.services import tick_s

COMPLETION = {"prompt_tokens": 100, "max_tokens": 10}
OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


@dataclass
class Recorder:
    """A loopback 'replica' that records every request it reads whole, and what then happens to the connection."""

    port: int
    requests: list[bytes] = field(default_factory=list)
    closed_by_peer: list[float] = field(default_factory=list)


@contextmanager
def recorder(mode: str, hold_s: float = 0.0) -> Iterator[Recorder]:
    """``mode`` ``close``: read a request whole, then close without an answer (a replica dying mid-request);
    ``answer``: answer 200 ``{}`` after ``hold_s``; ``hold``: read it and never answer, noting when the proxy closes
    the connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    found = Recorder(listener.getsockname()[1])
    stop = threading.Event()

    def one(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(0.2)
            data = b""
            started = time.monotonic()
            while not stop.is_set():
                try:
                    piece = conn.recv(65536)
                except TimeoutError:
                    if time.monotonic() - started > 20:
                        return
                    continue
                if not piece:
                    if mode == "hold" and found.requests:
                        found.closed_by_peer.append(time.monotonic())
                    return
                data += piece
                head, sep, body = data.partition(b"\r\n\r\n")
                if not sep:
                    continue
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                if len(body) < length:
                    continue
                found.requests.append(data)
                data = b""
                if mode == "close":
                    return
                if mode == "answer":
                    time.sleep(hold_s)
                    conn.sendall(OK)

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def _raw(url: str, request: bytes) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(request)
    return sock


def test_a_post_a_replica_received_whole_is_not_sent_to_a_second_replica(harness: Harness) -> None:
    with recorder("close") as dying, recorder("answer") as second:
        ready_routes(harness, [dying.port, second.port])
        with live(harness, scheduler=False) as server, server.http() as http:
            answer = http.post("/services/chat/v1/charge", json={"amount_usd": 100})
    assert len(dying.requests) == 1  # the first replica got the whole request, then died
    assert second.requests == [], f"the POST was run again on replica 1 (answer {answer.status_code})"


def test_a_client_that_gives_up_before_the_answer_frees_the_replica(harness: Harness) -> None:
    with recorder("hold") as slow:
        ready_routes(harness, [slow.port])
        with live(harness, scheduler=False) as server:
            body = b'{"prompt_tokens": 100, "max_tokens": 500}'
            head = (
                f"POST /services/chat/v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                f"authorization: {harness.headers()['Authorization']}\r\ncontent-length: {len(body)}\r\n\r\n"
            ).encode()
            client = _raw(server.url, head + body)
            wait_for(lambda: slow.requests, timeout_s=10)
            client.close()  # the user pressed stop
            gone_at = time.monotonic()
            time.sleep(3)
    assert slow.closed_by_peer and slow.closed_by_peer[0] - gone_at < 3, "the replica still holds the request"


def test_a_body_cut_off_by_the_client_never_reaches_a_replica(harness: Harness) -> None:
    with recorder("answer") as replica:
        ready_routes(harness, [replica.port])
        with live(harness, scheduler=False) as server:
            head = (
                f"POST /services/chat/v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                f"authorization: {harness.headers()['Authorization']}\r\ncontent-length: 1000\r\n\r\n"
            ).encode()
            client = _raw(server.url, head + b'{"prompt_tokens": 1')  # 19 of 1,000 bytes, then gone
            time.sleep(0.3)
            client.close()
            time.sleep(2)
    assert replica.requests == [], f"the replica got {replica.requests[0][-60:]!r}"


def test_forwarded_headers_are_the_proxy_s_own_and_connection_named_headers_are_dropped(harness: Harness) -> None:
    with recorder("answer") as replica:
        ready_routes(harness, [replica.port])
        with live(harness, scheduler=False) as server, server.http() as http:
            headers = {"X-Forwarded-Proto": "https", "Connection": "keep-alive, X-Secret-Hop", "X-Secret-Hop": "1"}
            answer = http.post("/services/chat/v1/completions", json=COMPLETION, headers=headers)
    assert answer.status_code == 200
    head = replica.requests[0].partition(b"\r\n\r\n")[0].lower().split(b"\r\n")
    protos = [line for line in head if line.startswith(b"x-forwarded-proto:")]
    assert protos == [b"x-forwarded-proto: http"]
    assert not [line for line in head if line.startswith(b"x-secret-hop:")]


def test_isolation_the_proxy_refuses_another_team_and_a_provider(harness: Harness) -> None:
    """Worked: another team's member gets the 404 of a service that does not exist, no token a 401."""
    with recorder("answer") as replica:
        ready_routes(harness, [replica.port])
        with live(harness, scheduler=False) as server:
            with server.http("member", "beta") as beta:
                other = beta.post("/services/chat/v1/completions", json=COMPLETION)
            anonymous = httpx.post(f"{server.url}/services/chat/v1/completions", json=COMPLETION)
            with server.http("member", "alpha") as alpha:
                own = alpha.post("/services/chat/v1/completions", json=COMPLETION)
    assert (other.status_code, other.json()) == (404, {"detail": "no service 'chat'"})
    assert anonymous.status_code == 401
    assert own.status_code == 200 and len(replica.requests) == 1


def _never_scales_down(downscale_delay_s: float) -> list[int]:
    """The counts an autoscaler decides, ticking at the server's own tick for the spec, over 60 s of no traffic
    after 3 replicas."""
    spec = ServiceSpec.model_validate(local_spec(autoscaling={"downscale_delay_s": downscale_delay_s}))
    scaler = Autoscaler(spec, spec.profiles[0])
    step, now, current, counts = tick_s(spec), 0.0, 3, []
    while now < 60:
        now += step
        scaler.observe(
            Traffic(
                at_s=now, interval_s=step, arrived=0, prompt_tokens=0, completed=0, output_tokens=0, in_flight_s=0.0
            )
        )
        current = scaler.decide(now, current).replicas
        counts.append(current)
    return counts


def test_a_fractional_downscale_delay_still_scales_down_on_the_server_tick() -> None:
    assert _never_scales_down(10)[-1] == 1  # a whole delay works
    assert _never_scales_down(2.5)[-1] == 1
