"""Helpers for the inference services tests: the example service (examples/services/local.yaml) on the tiny fleet,
and the harness's app served by a real uvicorn with the scheduler thread running, so replicas are real processes
of the local executor and requests go through the real proxy over loopback.

Imported as ``integration.server.services_support`` (see stargate_harness.py for why a module of its own).
"""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml

from integration.server.stargate_harness import Harness
from stargate.server.context import ServerContext
from stargate.server.scheduling.loop import SchedulerThread
from stargate.store import parse_job_id
from stargate.store.repositories import services as service_repo

LOCAL_YAML = Path(__file__).parents[3] / "examples" / "services" / "local.yaml"
TIMEOUT_S = 30.0


def local_spec(**overrides: Any) -> dict[str, Any]:
    """The example service as a JSON body on the tiny fleet (queue alpha-q, its default class), with overrides
    (``autoscaling`` entries are merged into the example's)."""
    spec: dict[str, Any] = yaml.safe_load(LOCAL_YAML.read_text())
    spec.update(name="chat", queue="alpha-q")
    spec.pop("priority_class")
    scaling = overrides.pop("autoscaling", {})
    spec["autoscaling"].update(scaling)
    spec.update(overrides)
    return spec


def ready_routes(harness: Harness, ports: list[int]) -> None:
    """Service 'chat' with one ready replica per port (numbers 0, 1, ...), each row on a job of its own, written
    straight to the store (no scheduler starts them: the tests' own programs listen on the ports)."""
    answer = harness.client.post("/api/v1/services", json=local_spec(), headers=harness.headers())
    assert answer.status_code == 201, answer.text
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for number, port in enumerate(ports):
        job = harness.submit(name="chat", kind="serve", preemptible=False)
        row = {"service": "chat", "number": number, "job_id": parse_job_id(str(job["id"])), "state": "ready"}
        rows.append(row | {"port": port, "since": now})
    with harness.ctx.db.write() as session:
        service_repo.add_replicas(session, rows)


def wait_for(
    what: Callable[[], Any],
    timeout_s: float = TIMEOUT_S,
    step_s: float = 0.05,
    context: Callable[[], Any] | None = None,
) -> Any:
    """``what()`` once it is truthy; AssertionError with its last value (and ``context()``) after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = what()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out; last: {found!r}; {context() if context else ''}"
        time.sleep(step_s)


@dataclass
class Live:
    """A running server over a harness: its URL and the admin's headers."""

    harness: Harness
    url: str

    def http(self, role: str = "admin", team: str | None = None, timeout_s: float = 60.0) -> httpx.Client:
        """A client on the server with a token of ``role``."""
        return httpx.Client(base_url=self.url, headers=self.harness.headers(role, team), timeout=timeout_s)

    def service(self, name: str = "chat") -> dict[str, Any]:
        """``GET /api/v1/services/NAME`` as the admin."""
        answer = self.harness.client.get(f"/api/v1/services/{name}", headers=self.harness.headers())
        assert answer.status_code == 200, answer.text
        data: dict[str, Any] = answer.json()
        return data

    def states(self, name: str = "chat") -> list[str]:
        """The states of the service's replicas, by number."""
        return [r["state"] for r in self.service(name)["replicas"]]


@contextmanager
def live(harness: Harness, interval_s: float = 0.05, scheduler: bool = True) -> Iterator[Live]:
    """The harness's app on a real uvicorn (its lifespan starts the services thread) and, with ``scheduler``, a
    scheduler thread over the harness's context; both stopped at the end (the replicas' jobs are cancelled and
    stopped first)."""
    ctx: ServerContext = harness.ctx
    ctx.settings = replace(ctx.settings, scheduler_interval_s=interval_s)
    loop = SchedulerThread(ctx) if scheduler else None
    config = uvicorn.Config(harness.app, host="127.0.0.1", port=0, log_level="error", proxy_headers=False)  # as the CLI
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started and thread.is_alive())
    port = server.servers[0].sockets[0].getsockname()[1]
    if loop is not None:
        loop.start()
    try:
        yield Live(harness, f"http://127.0.0.1:{port}")
    finally:
        if loop is not None:
            _stop_replicas(harness)
        server.should_exit = True
        thread.join(10)
        if loop is not None:
            loop.stop()


def _stop_replicas(harness: Harness) -> None:
    """Delete every service and wait (bounded) until the scheduler stopped their replicas."""
    headers = harness.headers()
    names = [s["name"] for s in harness.client.get("/api/v1/services", headers=headers).json()]
    for name in names:
        harness.client.delete(f"/api/v1/services/{name}", headers=headers)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and harness.client.get("/api/v1/services", headers=headers).json():
        time.sleep(0.1)
    running = harness.client.get("/api/v1/jobs", params={"status": "running"}, headers=headers).json()["items"]
    for job in running:
        harness.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=headers)
    time.sleep(0.5)  # a cycle or two stops their runs
