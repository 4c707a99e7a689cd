"""A service end to end, as a user runs it: a real ``stargate up`` (the small test fleet, the local executor under
the isolation it resolves), ``stargate serve`` of the example service (examples/services/local.yaml, with a shorter
window and scale-down delay), a bounded loopback load generator through the proxy at ``/services/NAME/``: the
service scales up under the load and back down after it, every request is answered 200, the replica scaled down is
drained before its job is cancelled, and ``stargate services`` / ``stargate service NAME`` show it with the
autoscaler's reasons. On SQLite and on PostgreSQL (a fresh database) when STARGATE_TEST_POSTGRES_URL is set.

Prints the figures it saw: requests, replicas at the peak, seconds to scale up and to scale back down.
"""

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from e2e_support import ServerFactory, ServerProcess, child_environment, database_params, run_cli

pytestmark = pytest.mark.slow
LOCAL = Path(__file__).resolve().parents[2] / "examples" / "services" / "local.yaml"
RATE_PER_S = 8.0
"""About 2.5 replicas of load at the example's profile: 200 prompt and 50 output tokens take about 1.1 s at a
batch of 4, a replica holds 4 sequences at 80 % utilization."""
LOAD_S = 12.0
TIMEOUT_S = 60.0


def _service_file(tmp_path: Path) -> Path:
    """The example service on the small fleet's alpha-q, with a 6 s window and scale-down delay."""
    spec = yaml.safe_load(LOCAL.read_text())
    spec.update(name="chat", queue="alpha-q")
    spec.pop("priority_class")
    spec["autoscaling"].update(window_s=6, downscale_delay_s=6)
    path = tmp_path / "chat.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _show(server: ServerProcess, token: str) -> dict[str, Any]:
    with server.client(token) as http:
        data: dict[str, Any] = http.get("/api/v1/services/chat").json()
    return data


def _ready(service: dict[str, Any]) -> int:
    return sum(1 for r in service["replicas"] if r["state"] == "ready")


def _wait(server: ServerProcess, token: str, done: Any, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        service = _show(server, token)
        if done(service):
            return service
        assert time.monotonic() < deadline, f"{what}: timed out; the service: {json.dumps(service)[:3000]}"
        time.sleep(0.2)


def _load(url: str, token: str, codes: Counter[int], latencies: list[float]) -> None:
    """RATE_PER_S completion requests a second for LOAD_S seconds, each on a thread of its own (open loop)."""
    body = {"prompt_tokens": 200, "max_tokens": 50}
    lock = threading.Lock()

    def one() -> None:
        started = time.perf_counter()
        try:
            with httpx.Client(timeout=120, headers={"Authorization": f"Bearer {token}"}) as http:
                status = http.post(f"{url}/services/chat/v1/completions", json=body).status_code
        except httpx.HTTPError:
            status = 0
        with lock:
            codes[status] += 1
            latencies.append(time.perf_counter() - started)

    threads = []
    start = time.perf_counter()
    for n in range(int(RATE_PER_S * LOAD_S)):
        time.sleep(max(0.0, start + n / RATE_PER_S - time.perf_counter()))
        threads.append(threading.Thread(target=one))
        threads[-1].start()
    for thread in threads:
        thread.join()


@pytest.mark.parametrize("database_url", database_params(), indirect=True)
def test_a_service_scales_up_under_load_and_back_down_after_with_no_failed_request(
    make_server: ServerFactory, database_url: str | None, tmp_path: Path
) -> None:
    server = make_server(database_url=database_url).start()
    token = server.create_token("alpha", "member", "alice")
    env = child_environment({"STARGATE_URL": server.url, "STARGATE_TOKEN": token, "COLUMNS": "200"})
    served = run_cli(["serve", str(_service_file(tmp_path))], env)
    assert served.returncode == 0, served.stderr
    assert served.stdout.startswith("service chat: created; 1 to 3 replicas of 1 GPU (H100-SXM) in queue alpha-q")
    began = time.monotonic()
    _wait(server, token, lambda s: _ready(s) == 1, "the first replica")
    first_ready = time.monotonic() - began

    codes: Counter[int] = Counter()
    latencies: list[float] = []
    load = threading.Thread(target=_load, args=(server.url, token, codes, latencies))
    load.start()
    loaded = time.monotonic()
    peak = _wait(server, token, lambda s: _ready(s) >= 2, "scale up")
    up_s = time.monotonic() - loaded
    load.join()
    stopped = time.monotonic()
    after = _wait(server, token, lambda s: s["desired_replicas"] == 1 and len(s["replicas"]) == 1, "scale down")
    down_s = time.monotonic() - stopped

    assert set(codes) == {200}, codes
    assert sum(codes.values()) == int(RATE_PER_S * LOAD_S)
    ups = [d for d in after["decisions"] if d["to"] > d["from"]]
    downs = [d for d in after["decisions"] if d["to"] < d["from"]]
    assert ups and downs, after["decisions"]
    assert "requests/s forecast" in ups[-1]["reason"] and downs[-1]["reason"].startswith("down: ")
    with server.client(token) as http:
        jobs = http.get("/api/v1/jobs", params={"status": "cancelled"}).json()["items"]
    assert any("scaled down: drained" in j["detail"] for j in jobs), [j["detail"] for j in jobs]

    listed = run_cli(["services"], env)
    assert listed.returncode == 0 and "chat" in listed.stdout and "alpha" in listed.stdout
    shown = run_cli(["service", "chat"], env)
    assert shown.returncode == 0, shown.stderr
    for text in (
        "recent scale decisions",
        "requests/s forecast",
        "time to first token",
        f"{server.url}/services/chat/",
    ):
        assert text in shown.stdout, text
    deleted = run_cli(["service", "chat", "--delete"], env)
    assert deleted.returncode == 0 and deleted.stdout.startswith("service chat: deleting;")
    deadline = time.monotonic() + TIMEOUT_S
    while run_cli(["service", "chat"], env).returncode != 1:
        assert time.monotonic() < deadline, "the deleted service did not go"
        time.sleep(0.5)
    latencies.sort()
    print(
        f"\nservices e2e ({'postgresql' if database_url else 'sqlite'}): {sum(codes.values())} requests at "
        f"{RATE_PER_S:g}/s for {LOAD_S:g} s, all 200; latency p50 {latencies[len(latencies) // 2]:.2f} s, p99 "
        f"{latencies[int(len(latencies) * 0.99)]:.2f} s; first replica ready after {first_ready:.1f} s, "
        f"{_ready(peak)} ready {up_s:.1f} s into the load, back to 1 replica {down_s:.1f} s after it"
    )
