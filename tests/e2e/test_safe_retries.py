"""Safe retries with a real server: ``stargate logs`` prints a log of several 1 MiB pages whole, ``logs -f`` goes on
across a server SIGKILL and restart, and ``stargate submit`` retried over a restart or a lost answer makes exactly
one job (its retries carry one Idempotency-Key)."""

import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import ServerFactory, ServerProcess, child_environment

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

LINE = "ligne é€ 0123456789 abcdefghijklmnopqrstuvwxyz 0123456789 abcdefghijklmnopqrstuvwxyz 0123456789"
LINES = 32_000
"""About 3 MB of output: three full 1 MiB pages and a part; multi-byte characters land on some page cuts."""


def cli_env(server: ServerProcess, tmp_path: Path, url: str | None = None) -> dict[str, str]:
    """The CLI's environment: the server's URL (or ``url``) and its admin token, a config dir of its own."""
    extra = {"STARGATE_CONFIG_DIR": str(tmp_path / "cfg"), "STARGATE_URL": url or server.url}
    return child_environment(extra | {"STARGATE_TOKEN": server.admin_token})


def stargate(*args: str, env: dict[str, str], **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "stargate", *args], env=env, text=True, **popen)


def job_file(tmp_path: Path, name: str, command: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nqueue: alpha-q\ngpus: 1\ncommand: {json.dumps(command)}\n")
    return path


def submit(server: ServerProcess, name: str, command: str) -> str:
    with server.client() as http:
        answer = http.post("/api/v1/jobs", json={"name": name, "queue": "alpha-q", "gpus": 1, "command": command})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def wait_status(server: ServerProcess, job_id: str, wanted: set[str], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    with server.client() as http:
        while time.monotonic() < deadline:
            if http.get(f"/api/v1/jobs/{job_id}").json()["status"] in wanted:
                return
            time.sleep(0.1)
    pytest.fail(f"{job_id} not {wanted} after {timeout_s} s")


def jobs_named(server: ServerProcess, name: str) -> list[dict[str, Any]]:
    with server.client() as http:
        items: list[dict[str, Any]] = http.get("/api/v1/jobs", params={"limit": 500}).json()["items"]
    return [item for item in items if item["name"] == name]


def wait_for(predicate: Any, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_logs_prints_a_log_of_several_pages_whole(make_server: ServerFactory, tmp_path: Path) -> None:
    server = make_server().start()
    job_id = submit(server, "chatty", f"yes '{LINE}' | head -n {LINES}; echo END")
    wait_status(server, job_id, {"succeeded"})
    expected = f"{LINE}\n" * LINES + "END\n"
    assert len(expected.encode()) > 3 * 2**20

    env = cli_env(server, tmp_path)
    whole = subprocess.run([sys.executable, "-m", "stargate", "logs", job_id], env=env, capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    assert whole.stdout == expected

    as_json = subprocess.run(
        [sys.executable, "-m", "stargate", "logs", job_id, "--json"], env=env, capture_output=True, text=True
    )
    chunks = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert len(chunks) == 4 and all(len(c["text"].encode()) <= 2**20 for c in chunks)
    assert [c["complete"] for c in chunks] == [False, False, False, True]
    assert "".join(c["text"] for c in chunks) == expected
    assert chunks[-1]["next_offset"] == len(expected.encode())


def test_logs_follow_reconnects_after_a_server_restart(make_server: ServerFactory, tmp_path: Path) -> None:
    server = make_server().start().keep_port()
    job_id = submit(server, "ticker", "for i in $(seq 1 50); do echo line $i; sleep 0.1; done")
    out, err = tmp_path / "follow.out", tmp_path / "follow.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        follow = stargate("logs", job_id, "-f", "--interval", "0.1", env=cli_env(server, tmp_path), stdout=stdout,
                          stderr=stderr)  # fmt: skip
        try:
            wait_for(lambda: "line 5\n" in out.read_text(), "the first lines")
            server.kill()
            wait_for(lambda: "reconnecting from byte" in err.read_text(), "the reconnect message", 30)
            time.sleep(1.0)
            server.start()
            assert follow.wait(timeout=90) == 0, err.read_text()
        finally:
            if follow.poll() is None:
                follow.kill()
    assert out.read_text() == "".join(f"line {i}\n" for i in range(1, 51))  # every line once, in order
    messages = err.read_text().splitlines()
    assert (
        messages[0].startswith("warning: cannot reach the Stargate server at ")
        and "reconnecting from byte" in messages[0]
    )
    assert any(m.startswith("reconnected; continuing from byte ") for m in messages)


def test_submit_retried_over_a_server_restart_makes_one_job(make_server: ServerFactory, tmp_path: Path) -> None:
    server = make_server().start().keep_port()
    env = cli_env(server, tmp_path)
    server.kill()
    path = job_file(tmp_path, "patient", "echo patient")
    submitting = stargate("submit", str(path), "--json", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.5)  # a few refused connections
        assert submitting.poll() is None
        server.start()
        stdout, stderr = submitting.communicate(timeout=60)
    finally:
        if submitting.poll() is None:
            submitting.kill()
    assert submitting.returncode == 0, stderr
    job = json.loads(stdout)
    assert [j["id"] for j in jobs_named(server, "patient")] == [job["id"]]
    warnings = stderr.splitlines()
    assert len(warnings) == 1 and "connection refused" in warnings[0] and "with Idempotency-Key " in warnings[0]


class AnswerDroppingProxy:
    """A TCP proxy to the server that forwards the first request and drops its answer (closes the connection, as a
    network failure after the server committed would), then forwards everything; it records each request's
    Idempotency-Key."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.keys: list[str | None] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                while True:
                    request = _read_message(conn)
                    if request is None:
                        break
                    head = request.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
                    key = [
                        line.split(":", 1)[1].strip()
                        for line in head.split("\r\n")
                        if line.startswith("idempotency-key:")
                    ]
                    self.keys.append(key[0] if key else None)
                    with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
                        upstream.sendall(request)
                        answer = _read_message(upstream)
                    if len(self.keys) == 1 or answer is None:
                        break  # the answer is lost: the client sees the connection close
                    conn.sendall(answer)

    def close(self) -> None:
        self.sock.close()


def _read_message(conn: socket.socket) -> bytes | None:
    """One HTTP/1.1 message with a Content-Length body (None when the peer closed first)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    return head + b"\r\n\r\n" + body


@pytest.fixture
def proxy(make_server: ServerFactory) -> Iterator[tuple[ServerProcess, AnswerDroppingProxy]]:
    server = make_server().start().keep_port()
    dropping = AnswerDroppingProxy(server.port)
    yield server, dropping
    dropping.close()


def test_submit_whose_answer_is_lost_is_retried_into_the_same_job(
    proxy: tuple[ServerProcess, AnswerDroppingProxy], tmp_path: Path
) -> None:
    server, dropping = proxy
    env = cli_env(server, tmp_path, url=f"http://127.0.0.1:{dropping.port}")
    path = job_file(tmp_path, "once", "echo once")
    result = subprocess.run(
        [sys.executable, "-m", "stargate", "submit", str(path), "--json"], env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert [j["id"] for j in jobs_named(server, "once")] == [job["id"]]  # the first request did store it
    assert len(dropping.keys) == 2 and dropping.keys[0] == dropping.keys[1]
    assert uuid.UUID(str(dropping.keys[0])).version == 4
    assert result.stderr.count("warning: ") == 1


def test_submit_with_a_given_key_twice_gets_the_same_job(make_server: ServerFactory, tmp_path: Path) -> None:
    server = make_server().start()
    env = cli_env(server, tmp_path)
    path = job_file(tmp_path, "keyed", "echo keyed")
    argv = [sys.executable, "-m", "stargate", "submit", str(path), "--json", "--idempotency-key", "build-42"]
    first, second = (subprocess.run(argv, env=env, capture_output=True, text=True) for _ in range(2))
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert json.loads(first.stdout)["id"] == json.loads(second.stdout)["id"]
    path.write_text(path.read_text().replace("gpus: 1", "gpus: 2"))
    changed = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert changed.returncode == 1 and changed.stderr.startswith(
        'error: 409 conflict: header.Idempotency-Key: found "build-42"'
    )
    bad = subprocess.run([*argv[:-1], "tab\there"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --idempotency-key: found ")
    assert len(jobs_named(server, "keyed")) == 1
