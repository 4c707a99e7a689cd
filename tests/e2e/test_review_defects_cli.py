"""The second outside review's attacks on the server and the CLI, replayed with real processes: a PostgreSQL that
goes away under a running server, terminal escape sequences in what the CLI prints, an in-memory database URL,
refusals that must write nothing, a bad token in the client, and a closed pipe."""

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from e2e_support import ServerFactory, ServerProcess, child_environment, fresh_postgres_database, run_cli
from sqlalchemy import make_url

from integration.server.tcp_forwarder import TcpForwarder
from stargate.server.auth import Role
from stargate.server.services import tokens as token_service
from stargate.store import Database

pytestmark = pytest.mark.slow

EVIL_COMMAND = "echo safe\x1b[1A\x1b[2K\x1b[8m; echo hidden | cat\x1b[0m"
"""The review's attack, without its download: on a terminal, `stargate job` showed only 'echo safe'."""


def _job_file(tmp_path: Path, command: str = "true", name: str = "job") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nqueue: alpha-q\ngpus: 1\ncommand: {json.dumps(command)}\n")
    return path


def _client_env(server: ServerProcess, tmp_path: Path, token: str | None = None) -> dict[str, str]:
    return child_environment(
        {
            "STARGATE_CONFIG_DIR": str(tmp_path / "cfg"),
            "STARGATE_URL": server.url,
            "STARGATE_TOKEN": token or server.admin_token,
        }
    )


def _wait_status(server: ServerProcess, job_id: str, wanted: set[str], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    with server.client() as http:
        while time.monotonic() < deadline:
            if http.get(f"/api/v1/jobs/{job_id}").json()["status"] in wanted:
                return
            time.sleep(0.05)
    pytest.fail(f"{job_id} not {wanted} after {timeout_s} s")


# -- 1. the database goes away under a running server -------------------------------------------------------------
@pytest.mark.postgres
def test_a_server_whose_postgresql_goes_away_answers_json_503_and_submit_retries_until_it_is_back(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    admin_url = os.environ.get("STARGATE_TEST_POSTGRES_URL")
    if not admin_url:
        pytest.fail("STARGATE_TEST_POSTGRES_URL is not set: this test needs a PostgreSQL it can make unreachable")
    with fresh_postgres_database(admin_url) as direct:
        url = make_url(direct)
        forwarder = TcpForwarder(url.host or "127.0.0.1", url.port or 5432)
        try:
            through = url.set(host="127.0.0.1", port=forwarder.port).render_as_string(hide_password=False)
            server = make_server(database_url=through).start()
            env = _client_env(server, tmp_path)
            with server.client() as http:
                job = http.post("/api/v1/jobs", json={"name": "a", "queue": "alpha-q", "gpus": 1, "command": "true"})
                assert job.status_code == 201, job.text
                forwarder.cut()
                for _ in range(20):
                    for answer in (
                        http.get(f"/api/v1/jobs/{job.json()['id']}"),
                        http.post("/api/v1/jobs", json={"name": "b", "queue": "alpha-q", "gpus": 1, "command": "x"}),
                    ):
                        assert answer.status_code == 503, answer.text
                        assert answer.headers["content-type"] == "application/json"
                        assert answer.headers["retry-after"] == "5"
                        assert answer.json()["detail"].startswith("database unavailable: OperationalError: ")
            shown = run_cli(["job", job.json()["id"]], env)
            assert shown.returncode == 1 and shown.stderr.count("\n") == 1, shown.stderr
            assert shown.stderr.startswith("error: 503 ") and "database unavailable: " in shown.stderr, shown.stderr
            argv = [sys.executable, "-m", "stargate", "submit", str(_job_file(tmp_path)), "--retry-for", "60"]
            submitting = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(2.0)
            forwarder.restore()
            out, err = submitting.communicate(timeout=90)
            assert submitting.returncode == 0, err
            assert out.startswith("submitted j-") and "warning: 503 " in err and "database unavailable" in err, err
            log = server.logs[-1].read_text(errors="replace")
            assert "Traceback" not in log and "Internal Server Error" not in log, log[-3000:]
            answered = log.count("stargate.server: database unavailable: ")  # the requests': once per kind
            assert 1 <= answered <= 3, log[-3000:]
            assert log.count("scheduler cycle failed: database unavailable: ") <= 12, log[-3000:]  # backs off
        finally:
            server.kill()
            forwarder.cut()


# -- 2. terminal escapes in what the CLI prints ---------------------------------------------------------------------
def test_the_cli_shows_control_and_bidi_characters_escaped_everywhere_but_in_logs(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    server = make_server().start()
    env = _client_env(server, tmp_path)
    submitted = run_cli(["submit", str(_job_file(tmp_path, EVIL_COMMAND)), "--json"], env)
    assert submitted.returncode == 0, submitted.stderr  # commands may hold any character but NUL
    job_id = json.loads(submitted.stdout)["id"]
    view = run_cli(["job", job_id], env)
    assert view.returncode == 0, view.stderr
    assert "\x1b" not in view.stdout and "\\x1b[1A\\x1b[2K\\x1b[8m; echo hidden | cat\\x1b[0m" in view.stdout
    # a token name stored before names were checked (straight into the database) is shown escaped too
    db = Database.open(f"sqlite:///{server.home / 'stargate.db'}")
    try:
        with db.write() as session:
            token_service.create(session, "ops\x1b[2K\u202eevil", None, Role.ADMIN, _now())
    finally:
        db.close()
    for args, environment in ((["token", "list"], env), (["admin", "token", "list"], server.env)):
        listed = run_cli(args, environment)
        assert listed.returncode == 0, listed.stderr
        assert "\x1b" not in listed.stdout and "\u202e" not in listed.stdout, listed.stdout
        assert "ops\\x1b[2K\\u202eevil" in listed.stdout, listed.stdout
    _wait_status(server, job_id, {"succeeded", "failed"})
    raw = run_cli(["logs", job_id], env)
    assert raw.returncode == 0 and raw.stdout.startswith("safe\x1b[1A\x1b[2K\x1b[8m\n")  # logs: bytes as they are


def test_a_token_name_with_control_characters_is_refused_by_admin_token_create(tmp_path: Path) -> None:
    env = child_environment({"STARGATE_HOME": str(tmp_path / "home")})
    for name, found in (("ops\x1b[2K", "U+001B"), ("a\u202eb", "U+202E"), ("x" * 201, "201 characters")):
        made = run_cli(["admin", "token", "create", "--role", "admin", "--name", name], env)
        assert made.returncode == 2, made.stdout
        assert made.stderr.startswith("error: --name: found ") and found in made.stderr, made.stderr
        assert made.stderr.count("\n") == 1 and "\x1b" not in made.stderr
    assert not (tmp_path / "home").exists()  # refused before anything was written


# -- 3. an in-memory database URL -------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
@pytest.mark.parametrize("command", [["up", "--port", "0"], ["admin", "token", "list"]])
def test_an_in_memory_sqlite_url_is_one_line_and_exit_2(tmp_path: Path, url: str, command: list[str]) -> None:
    env = child_environment({"STARGATE_HOME": str(tmp_path / "home"), "STARGATE_DATABASE_URL": url})
    result = run_cli(command, env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "in-memory SQLite database" in result.stderr, result.stderr
    assert "expected a file path" in result.stderr and "internal error" not in result.stderr
    assert not (tmp_path / "home").exists()


# -- 4. refusals write nothing --------------------------------------------------------------------------------------
def test_up_with_a_bad_fleet_creates_no_state(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("version: 1\nclusters: [\n")
    home = tmp_path / "h" / ".stargate"
    result = run_cli(["up", "--port", "0", "--fleet", str(fleet)], child_environment({"STARGATE_HOME": str(home)}))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "--fleet: " in result.stderr and "the server did not start" in result.stderr
    assert not home.exists() and not home.parent.exists()


@pytest.mark.parametrize("command", [["list"], ["revoke", "t-0123456789abcdef"]])
def test_admin_token_list_or_revoke_without_a_database_refuses_and_creates_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    home = tmp_path / "typo"
    result = run_cli(["admin", "token", *command], child_environment({"STARGATE_HOME": str(home)}))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"no database at {home / 'stargate.db'}" in result.stderr and "STARGATE_HOME" in result.stderr
    assert "STARGATE_DATABASE_URL" in result.stderr and not home.exists()


@pytest.mark.postgres
def test_admin_token_list_on_a_postgresql_database_without_the_schema_refuses(tmp_path: Path) -> None:
    admin_url = os.environ.get("STARGATE_TEST_POSTGRES_URL")
    if not admin_url:
        pytest.fail("STARGATE_TEST_POSTGRES_URL is not set")
    with fresh_postgres_database(admin_url) as url:
        env = child_environment({"STARGATE_HOME": str(tmp_path / "home"), "STARGATE_DATABASE_URL": url})
        result = run_cli(["admin", "token", "list"], env)
        assert result.returncode == 2, (result.stdout, result.stderr)
        assert "no Stargate schema" in result.stderr and "STARGATE_DATABASE_URL" in result.stderr
        assert result.stderr.count("\n") == 1 and not (tmp_path / "home").exists()


# -- 7. bad tokens in the client, an empty token id, a closed pipe --------------------------------------------------
@pytest.mark.parametrize(
    ("args", "extra", "where"),
    [
        (["jobs"], {"STARGATE_TOKEN": "sgt_abc\ndef"}, "error: STARGATE_TOKEN: found '\\n' at character 8"),
        (["jobs"], {"STARGATE_TOKEN": "sgt_ab\u00e9"}, "error: STARGATE_TOKEN: found '\\xe9' at character 7"),
        (["login", "--token", "sgt_\u00e9"], {}, "error: --token: found '\\xe9' at character 5"),
        (["token", "revoke", ""], {"STARGATE_TOKEN": "sgt_x"}, "error: TOKEN_ID: found nothing (an empty id)"),
    ],
)
def test_a_bad_token_or_token_id_is_refused_before_any_request(
    tmp_path: Path, args: list[str], extra: dict[str, str], where: str
) -> None:
    env = child_environment({"STARGATE_CONFIG_DIR": str(tmp_path / "cfg"), "STARGATE_URL": "http://127.0.0.1:9"})
    result = run_cli(args, {**env, **extra})
    assert result.returncode == 2, (result.stdout, result.stderr)  # exit 3 would mean it tried the network
    assert result.stderr.startswith(where) and result.stderr.count("\n") == 1, result.stderr


def test_a_bad_token_in_the_config_file_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "cfg" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"url": "http://127.0.0.1:9", "token": "sgt_a b"}))
    result = run_cli(["jobs"], child_environment({"STARGATE_CONFIG_DIR": str(config.parent)}))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith(f"error: {config}: token: found ' ' at character 6"), result.stderr


def test_logs_into_a_closed_pipe_exits_141_quietly(make_server: ServerFactory, tmp_path: Path) -> None:
    server = make_server().start()
    env = _client_env(server, tmp_path)
    with server.client() as http:
        body = {"name": "big", "queue": "alpha-q", "gpus": 1, "command": "seq 1 300000"}
        job_id = http.post("/api/v1/jobs", json=body).json()["id"]
    _wait_status(server, job_id, {"succeeded"})
    reader = subprocess.Popen(
        [sys.executable, "-m", "stargate", "logs", job_id], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert reader.stdout is not None and reader.stderr is not None
    assert reader.stdout.readline() == b"1\n"
    reader.stdout.close()  # as `| head -1` does
    code, err = reader.wait(timeout=60), reader.stderr.read()
    assert (code, err) == (141, b"")  # 128 + SIGPIPE, as a shell reports `cat` stopped by `| head -1`


def test_a_long_or_bidi_job_id_in_a_404_is_shortened_and_escaped(make_server: ServerFactory) -> None:
    server = make_server().start()
    with server.client() as http:
        long = http.get(f"/api/v1/jobs/j-{'1' * 2000}")
        bidi = http.get("/api/v1/jobs/j-1\u202egpj")
    assert long.status_code == bidi.status_code == 404
    assert len(long.json()["detail"]) < 80 and bidi.json()["detail"] == "no job 'j-1\\u202egpj'"
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def _now() -> datetime:
    return datetime.now(UTC)
