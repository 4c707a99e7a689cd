"""A real single-node Ray head for tests: ``start_ray_head`` and a module-scoped fixture factory.

The head runs ``ray start --head --block`` in a session of its own, on free ports, with a short temporary directory
(Ray's socket paths must stay under 108 bytes), token authentication on (a random token, given to Ray as
RAY_AUTH_TOKEN) and the dashboard on 127.0.0.1. :meth:`RayHead.stop` sends SIGTERM to that one process (Ray then
stops every process it started) and SIGKILLs its process group if it has not ended in 30 s; never ``ray stop``, which
would stop every Ray of the machine.
"""

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

START_TIMEOUT_S = 90.0
"""Longest a head may take to answer its Jobs API, seconds (a 2-core machine under load can be slow)."""


@dataclass
class RayHead:
    """A running Ray head: its dashboard's http address and the token its Jobs API asks for."""

    address: str
    token: str
    process: subprocess.Popen[bytes]
    temp_dir: Path
    log: Path
    started_s: float = 0.0
    """Seconds from ``ray start`` to the Jobs API answering."""
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Stop this head (and every process it started); idempotent."""
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)  # the session we started: Ray's processes only
            self.process.wait(timeout=10)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def start_ray_head(tmp_path: Path, gpus: int, resources: Mapping[str, float] | None = None) -> RayHead:
    """Start a Ray head with ``gpus`` GPUs (and custom ``resources``) and 2 CPUs; return once its Jobs API answers.
    Its output goes to ``tmp_path/ray-head.log``."""
    gcs, dashboard, client, agent = free_ports(4)
    temp_dir = Path(tempfile.mkdtemp(prefix="sgray-", dir="/tmp"))
    token = secrets.token_hex(16)
    ray = Path(sys.executable).with_name("ray")
    argv = [
        str(ray),
        "start",
        "--head",
        "--block",
        f"--num-gpus={gpus}",
        "--num-cpus=2",
        f"--port={gcs}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard}",
        f"--ray-client-server-port={client}",
        f"--dashboard-agent-listen-port={agent}",
        "--include-dashboard=true",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
    ]
    if resources:
        argv.append(f"--resources={json.dumps(dict(resources))}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    tmp_path.mkdir(parents=True, exist_ok=True)
    log = tmp_path / "ray-head.log"
    began = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    head = RayHead(f"http://127.0.0.1:{dashboard}", token, process, temp_dir, log)
    try:
        _wait_ready(head)
    except BaseException:
        head.stop()
        raise
    head.started_s = time.monotonic() - began
    return head


def _wait_ready(head: RayHead) -> None:
    """Wait until the head's Jobs API lists jobs (with its token) and has run one job; fail with the head's output
    if it never does."""
    deadline = time.monotonic() + START_TIMEOUT_S
    headers = {"Authorization": f"Bearer {head.token}"}
    while time.monotonic() < deadline and head.process.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{head.address}/api/jobs/", headers=headers, timeout=2.0).status_code == 200:
                _warm_up(head, headers, deadline)
                return
        time.sleep(0.2)
    tail = head.log.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"the Ray head did not answer its Jobs API within {START_TIMEOUT_S:g} s:\n{tail}")


def _warm_up(head: RayHead, headers: dict[str, str], deadline: float) -> None:
    """Run one job to its end: the first submission of a fresh head waits for its job agent and a worker."""
    body = {"entrypoint": "true", "submission_id": "warm-up", "entrypoint_num_cpus": 0}
    while True:  # a fresh head may keep the first submission waiting for its job agent: ask again, at most 15 s each
        try:
            answer = httpx.post(f"{head.address}/api/jobs/", json=body, headers=headers, timeout=15.0)
        except httpx.TimeoutException:
            if time.monotonic() >= deadline:
                raise
            continue
        if answer.status_code == 400 and "already exists" in answer.text:  # an earlier attempt got through
            break
        answer.raise_for_status()
        break
    while time.monotonic() < deadline:
        info = httpx.get(f"{head.address}/api/jobs/warm-up", headers=headers, timeout=5.0).json()
        if info["status"] in ("SUCCEEDED", "FAILED", "STOPPED"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"the Ray head's warm-up job did not end within {START_TIMEOUT_S:g} s")


def ray_head_fixture(
    gpus: int = 2, resources: Mapping[str, float] | None = None
) -> Callable[[pytest.TempPathFactory], Iterator[RayHead]]:
    """A module-scoped fixture giving one Ray head for the whole module (``head = ray_head_fixture(2)`` in a test
    module names the fixture ``head``)."""

    @pytest.fixture(scope="module")
    def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayHead]:
        started = start_ray_head(tmp_path_factory.mktemp("ray"), gpus, resources)
        try:
            yield started
        finally:
            started.stop()

    return head
