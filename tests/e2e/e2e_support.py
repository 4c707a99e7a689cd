"""Helpers for the end-to-end tests: a real ``stargate up`` in a subprocess over a fresh STARGATE_HOME (SQLite, or a
fresh PostgreSQL database), and running the CLI as a user would. Fixtures using them are in conftest.py.
"""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from sqlalchemy import make_url

SMALL_FLEET = Path(__file__).parent / "fleets" / "small.yaml"
_LISTENING = re.compile(r"listening on (http://\S+)")


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without any STARGATE_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STARGATE_")}
    env.update(extra)
    return env


@dataclass
class ServerProcess:
    """A ``stargate up`` subprocess on a free port; it can be SIGKILLed and started again on the same state."""

    home: Path
    fleet: Path
    database_url: str | None = None
    interval_s: float = 0.05
    port: int = 0
    log_level: str = "warning"
    """The port to listen on; 0: a free one (see :meth:`keep_port` to restart on the same port)."""
    name: str = "server"
    """Its log files are ``<name>-<start>.log`` beside ``home`` (servers sharing one home need names of their own)."""
    url: str = ""
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """The server's environment (also right for ``stargate admin`` commands on the same state)."""
        extra = {"STARGATE_HOME": str(self.home)}
        if self.database_url:
            extra["STARGATE_DATABASE_URL"] = self.database_url
        return child_environment(extra)

    def start(self, timeout_s: float = 60.0) -> "ServerProcess":
        """Start the server and wait until it listens and answers /healthz."""
        self.starts += 1
        log = self.home.parent / f"{self.name}-{self.starts}.log"
        self.logs.append(log)
        argv = [sys.executable, "-m", "stargate", "up", "--port", str(self.port), "--fleet", str(self.fleet)]
        argv += ["--interval", str(self.interval_s), "--log-level", self.log_level]
        with log.open("wb") as out:
            self.proc = subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=self.home.parent)
        self.url = self._wait_listening(log, timeout_s)
        return self

    def _wait_listening(self, log: Path, timeout_s: float) -> str:
        """The URL from the server's ``listening on`` line, once /healthz answers."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = _LISTENING.search(log.read_text(errors="replace"))
            if found and httpx.get(f"{found.group(1)}/healthz", timeout=5).status_code == 200:
                return found.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"stargate up did not start (exit {self.proc.poll()}):\n{log.read_text(errors='replace')[-3000:]}")

    def keep_port(self) -> "ServerProcess":
        """Make later starts listen on the port this start got, so clients keep their URL across a restart."""
        port = urlsplit(self.url).port
        assert port is not None, self.url
        self.port = port
        return self

    def kill(self) -> None:
        """SIGKILL the server (its runs live on in their own sessions)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop the server politely (SIGTERM), SIGKILL after 10 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def admin_token(self) -> str:
        """The first admin token, which the first start wrote to ``STARGATE_HOME/admin-token``."""
        return (self.home / "admin-token").read_text().strip()

    def client(self, token: str | None = None) -> httpx.Client:
        """An httpx client on the server with a bearer token."""
        auth = {"Authorization": f"Bearer {token or self.admin_token}"}
        return httpx.Client(base_url=self.url, headers=auth, timeout=30)

    def create_token(self, team: str | None, role: str, name: str) -> str:
        """A new API token (made with the admin token)."""
        with self.client() as http:
            answer = http.post("/api/v1/tokens", json={"name": name, "team": team, "role": role})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["token"])


def submit_command(server: ServerProcess, command: str, **more: Any) -> str:
    """Submit a 1-GPU job running ``command`` to queue alpha-q (``more``: further spec fields); its id."""
    with server.client() as http:
        body = {"name": "r", "queue": "alpha-q", "gpus": 1, "command": command, **more}
        answer = http.post("/api/v1/jobs", json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def job_of(server: ServerProcess, job: str) -> dict[str, Any]:
    """The job as ``GET /api/v1/jobs/{id}`` shows it."""
    with server.client() as http:
        found: dict[str, Any] = http.get(f"/api/v1/jobs/{job}").json()
    return found


def wait_for(what: str, done: Callable[[], bool], timeout_s: float, show: Callable[[], object] = str) -> None:
    """Poll ``done()`` every 0.1 s; fail after ``timeout_s`` saying ``what`` did not happen (and ``show()``)."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"{what}: not after {timeout_s:.0f} s: {show()}"
        time.sleep(0.1)


def all_jobs(server: ServerProcess) -> list[dict[str, Any]]:
    """Every job ``server`` lists, following the pages."""
    jobs: list[dict[str, Any]] = []
    cursor = None
    with server.client() as http:
        while True:
            params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            page = http.get("/api/v1/jobs", params=params).json()
            jobs += page["items"]
            if (cursor := page["next_cursor"]) is None:
                return jobs


def kill_runs(runs_dir: Path) -> None:
    """SIGKILL every run's process group and runner under ``runs_dir``."""
    for record_path in runs_dir.glob("**/attempt-*/run.json"):
        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError):
            continue
        for kill, target in ((os.killpg, record.get("pgid")), (os.kill, record.get("pid"))):
            if isinstance(target, int):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    kill(target, signal.SIGKILL)


@contextlib.contextmanager
def fresh_postgres_database(admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database next to the one ``admin_url`` names; dropped afterwards."""
    url = make_url(admin_url)
    name = f"sg_e2e_{uuid.uuid4().hex[:12]}"
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class ServerFactory:
    """Makes servers under one base directory and cleans all of them up."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.made: list[ServerProcess] = []

    def __call__(
        self, fleet: Path = SMALL_FLEET, database_url: str | None = None, interval_s: float = 0.05
    ) -> ServerProcess:
        """A new server (not yet started) over a fresh STARGATE_HOME."""
        home = self.base / f"home-{len(self.made)}" / ".stargate"
        home.parent.mkdir(parents=True)
        server = ServerProcess(home=home, fleet=fleet, database_url=database_url, interval_s=interval_s)
        self.made.append(server)
        return server

    def cleanup(self) -> None:
        """Kill every server made, then every run they started."""
        for server in self.made:
            server.kill()
            kill_runs(server.home / "runs")


def run_cli(args: list[str], env: dict[str, str], timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``stargate ARGS`` as a user would (a subprocess) and capture its output."""
    argv = [sys.executable, "-m", "stargate", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)


def database_params() -> list[object]:
    """``sqlite`` always; ``postgres`` too (marked) — it skips unless STARGATE_TEST_POSTGRES_URL is set."""
    return ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
