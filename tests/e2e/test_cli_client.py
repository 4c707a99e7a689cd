"""The client commands as a user runs them (subprocesses) against a real ``stargate up``: login, submit, jobs, job,
logs, cancel, queues, their --json shapes, and the one-line errors with their exit codes.

One server (SQLite, the small test fleet) serves the whole module; each test uses its own config directory.
"""

import json
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import ServerFactory, ServerProcess, child_environment, run_cli

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]

Cli = Callable[..., subprocess.CompletedProcess[str]]
JOB_KEYS = {
    "id", "name", "queue", "team", "kind", "gpus", "gpu_models", "priority_class", "status", "reason", "detail",
    "attempt", "progress_s", "submitted_at", "started_at", "finished_at", "cluster", "gpu_ids", "exit_code", "spec",
    "waiting",
}  # fmt: skip


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> ServerProcess:
    """One running server for the module."""
    return module_servers().start()


@pytest.fixture(scope="module")
def tokens(server: ServerProcess) -> dict[str, str]:
    """Member tokens of both teams."""
    return {
        "alpha": server.create_token("alpha", "member", "alice"),
        "beta": server.create_token("beta", "member", "bob"),
    }


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """An empty client config directory."""
    return tmp_path / "config"


def cli_for(env: dict[str, str], cwd: Path | None = None) -> Cli:
    """A ``cli(*args)`` runner with a fixed environment; it fails the test on a traceback."""

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        result = run_cli(list(args), env)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    return cli


@pytest.fixture
def alpha(server: ServerProcess, tokens: dict[str, str], config_dir: Path) -> Cli:
    """The CLI as alpha's member, by environment variables."""
    env = {"STARGATE_CONFIG_DIR": str(config_dir), "STARGATE_URL": server.url, "STARGATE_TOKEN": tokens["alpha"]}
    return cli_for(child_environment(env))


@pytest.fixture
def beta(server: ServerProcess, tokens: dict[str, str], tmp_path: Path) -> Cli:
    """The CLI as beta's member."""
    env = {"STARGATE_CONFIG_DIR": str(tmp_path / "b"), "STARGATE_URL": server.url, "STARGATE_TOKEN": tokens["beta"]}
    return cli_for(child_environment(env))


def job_file(tmp_path: Path, name: str, command: str, queue: str = "alpha-q", gpus: int = 1) -> Path:
    """Write a job spec YAML file."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nqueue: {queue}\ngpus: {gpus}\ncommand: {json.dumps(command)}\n")
    return path


def submit(cli: Cli, path: Path) -> dict[str, Any]:
    """Submit with --json; the new job."""
    result = cli("submit", str(path), "--json")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def wait_status(server: ServerProcess, job_id: str, wanted: set[str], timeout_s: float = 30.0) -> dict[str, Any]:
    """Poll the API (not the CLI: waiting is not what is tested) until the job's status is in ``wanted``."""
    deadline = time.monotonic() + timeout_s
    with server.client() as http:
        while time.monotonic() < deadline:
            found = dict(http.get(f"/api/v1/jobs/{job_id}").json())
            if found["status"] in wanted:
                return found
            time.sleep(0.05)
    pytest.fail(f"{job_id} not {wanted} after {timeout_s} s")


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_an_unreachable_server_is_one_line_and_exit_3(config_dir: Path, closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    cli = cli_for(child_environment({"STARGATE_CONFIG_DIR": str(config_dir), "STARGATE_URL": url}))
    result = cli("jobs")
    assert result.returncode == 3
    assert result.stderr == (
        f"error: cannot reach the Stargate server at {url}: connection refused (is `stargate up` running?)\n"
    )


def test_login_with_a_bad_token_fails_and_saves_nothing(server: ServerProcess, config_dir: Path) -> None:
    cli = cli_for(child_environment({"STARGATE_CONFIG_DIR": str(config_dir)}))
    result = cli("login", "--url", server.url, "--token", "not-a-token")
    assert result.returncode == 1
    assert result.stderr.startswith("error: 401 unauthorised: ")
    assert not (config_dir / "config.json").exists()


def test_login_saves_the_config_and_later_commands_use_it(
    server: ServerProcess, tokens: dict[str, str], config_dir: Path
) -> None:
    cli = cli_for(child_environment({"STARGATE_CONFIG_DIR": str(config_dir)}))
    result = cli("login", "--url", server.url, "--token", tokens["alpha"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"logged in to {server.url} as alice (team alpha, role member)")
    saved = config_dir / "config.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert json.loads(saved.read_text()) == {"url": server.url, "token": tokens["alpha"]}
    whoami = json.loads(cli("login", "--url", server.url, "--token", tokens["alpha"], "--json").stdout)["whoami"]
    assert (whoami["name"], whoami["team"], whoami["role"]) == ("alice", "alpha", "member")
    assert cli("queues").returncode == 0  # no STARGATE_TOKEN: the saved token is used


def test_a_bad_saved_token_says_to_log_in(server: ServerProcess, config_dir: Path) -> None:
    config_dir.mkdir()
    (config_dir / "config.json").write_text(json.dumps({"url": server.url, "token": "revoked"}))
    result = cli_for(child_environment({"STARGATE_CONFIG_DIR": str(config_dir)}))("jobs")
    assert result.returncode == 1
    assert result.stderr.startswith("error: 401 unauthorised: ")
    assert "run `stargate login --url URL --token TOKEN`" in result.stderr


def test_submit_then_follow_the_logs_to_the_end(alpha: Cli, tmp_path: Path) -> None:
    path = job_file(tmp_path, "count", "for i in 1 2 3; do echo step $i; sleep 0.2; done; echo done-$STARGATE_JOB_ID")
    result = alpha("submit", str(path))
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.split()[1]
    assert result.stdout == f"submitted {job_id} (count) to queue alpha-q: 1 GPU, pending\n"
    follow = alpha("logs", job_id, "-f", "--interval", "0.1")
    assert follow.returncode == 0
    assert follow.stdout == f"step 1\nstep 2\nstep 3\ndone-{job_id}\n"
    chunks = [json.loads(line) for line in alpha("logs", job_id, "--json").stdout.splitlines()]
    assert chunks == [{"text": follow.stdout, "next_offset": len(follow.stdout.encode()), "complete": True}]


def test_job_and_jobs_show_the_job_with_the_documented_json_shape(
    alpha: Cli, server: ServerProcess, tmp_path: Path
) -> None:
    first = submit(alpha, job_file(tmp_path, "shape-1", "true"))
    second = submit(alpha, job_file(tmp_path, "shape-2", "exit 3"))
    assert set(first) == JOB_KEYS
    done = wait_status(server, second["id"], {"failed"})
    assert (done["exit_code"], done["cluster"] in {"lab-a", "lab-b"}, len(done["gpu_ids"])) == (3, True, 1)
    page = json.loads(alpha("jobs", "--limit", "1", "--json").stdout)
    assert set(page) == {"items", "next_cursor"}
    assert [item["id"] for item in page["items"]] == [second["id"]] and page["next_cursor"]
    every = json.loads(alpha("jobs", "--all", "--json").stdout)
    ids = [item["id"] for item in every["items"]]
    assert ids.index(second["id"]) < ids.index(first["id"]) and every["next_cursor"] is None
    failed = json.loads(alpha("jobs", "--status", "failed", "--queue", "alpha-q", "--json").stdout)["items"]
    assert second["id"] in [item["id"] for item in failed] and {item["status"] for item in failed} == {"failed"}
    assert (done["reason"], done["detail"]) == ("failed", "exited with code 3")
    table = alpha("jobs", "--all").stdout
    assert second["id"] in table and "shape-2" in table and "failed" in table
    assert "REASON" in table and "DETAIL" in table and "exited with code 3" in table
    detail = alpha("job", second["id"]).stdout
    assert "exit code" in detail and "exit 3" in detail and "1 GPU" in detail and "GPUs" not in detail
    assert any(line.split() == ["reason", "failed"] for line in detail.splitlines())
    assert any(line.split() == ["detail", "exited", "with", "code", "3"] for line in detail.splitlines())


def test_cancel_stops_a_running_job_and_a_second_cancel_is_409(
    alpha: Cli, server: ServerProcess, tmp_path: Path
) -> None:
    job = submit(alpha, job_file(tmp_path, "long", "echo started; sleep 120"))
    wait_status(server, job["id"], {"running"})
    result = alpha("cancel", job["id"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"cancel requested for {job['id']}: status ")
    assert wait_status(server, job["id"], {"cancelled"})["status"] == "cancelled"
    again = alpha("cancel", job["id"])
    assert again.returncode == 1
    assert again.stderr.startswith("error: 409 conflict: ")


def test_queues_lists_both_queues_with_the_documented_shape(alpha: Cli) -> None:
    queues = json.loads(alpha("queues", "--json").stdout)
    assert {q["id"] for q in queues} == {"alpha-q", "beta-q"}
    keys = {"id", "team", "cohort", "quotas", "pending_jobs", "running_jobs", "running_gpus"}
    assert all(set(q) >= keys for q in queues)
    table = alpha("queues").stdout
    assert "alpha-q" in table and "any GPU: 24 GPUs" in table
    assert table.startswith("scheduling policy: gittins (from the fleet file)\n")  # the default policy the server uses


def test_another_teams_job_is_hidden_and_its_queue_refused(alpha: Cli, beta: Cli, tmp_path: Path) -> None:
    job = submit(alpha, job_file(tmp_path, "private", "true"))
    seen = beta("job", job["id"])
    assert seen.returncode == 1
    assert seen.stderr.startswith(("error: 404 not found: ", "error: 403 forbidden: "))
    refused = beta("submit", str(job_file(tmp_path, "intruder", "true", queue="alpha-q")))
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: 403 forbidden: ")
    assert job["id"] not in beta("jobs", "--all", "--json").stdout


def test_an_unknown_job_is_404(alpha: Cli) -> None:
    for args in (("job", "j-999999"), ("cancel", "j-999999")):
        result = alpha(*args)
        assert result.returncode == 1
        assert result.stderr.startswith("error: 404 not found: ") and result.stderr.count("\n") == 1


def test_an_unknown_queue_is_422_with_the_servers_detail(alpha: Cli, tmp_path: Path) -> None:
    result = alpha("submit", str(job_file(tmp_path, "lost", "true", queue="no-such-queue")))
    assert result.returncode == 1
    assert result.stderr.startswith("error: 422 invalid: ") and "no-such-queue" in result.stderr


def test_a_bad_job_file_is_exit_2_with_file_line_and_field(alpha: Cli, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nqueue: alpha-q\ngpus: eight\ncomand: true\n")
    result = alpha("submit", str(path))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"error: {path}:3:1: gpus: found 'eight'; expected an integer")
    assert lines[1].startswith(f"error: {path}:4:1: comand: found unknown key 'comand'")
    assert "did you mean 'command'?" in lines[1]
    missing = alpha("submit", str(tmp_path / "missing.yaml"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_a_bad_option_value_is_exit_2(alpha: Cli) -> None:
    result = alpha("jobs", "--status", "sleeping")
    assert result.returncode == 2
    assert result.stderr == (
        "error: --status: found 'sleeping'; expected one of pending, placed, running, succeeded, failed, cancelled\n"
    )


def test_the_demo_jobs_run_on_the_bundled_fleet(module_servers: ServerFactory) -> None:
    demo = module_servers(fleet=REPO / "examples" / "stargate-2025").start()
    env = child_environment({"STARGATE_URL": demo.url, "STARGATE_TOKEN": demo.admin_token, "STARGATE_CONFIG_DIR": "-"})
    cli = cli_for(env)
    ok = submit(cli, REPO / "examples" / "jobs" / "eval-batch-humaneval.yaml")
    broken = submit(cli, REPO / "examples" / "jobs" / "eval-batch-failing.yaml")
    assert (ok["queue"], ok["gpus"], broken["queue"]) == ("eval-batch", 2, "eval-batch")
    assert wait_status(demo, broken["id"], {"failed"})["exit_code"] == 3
    assert wait_status(demo, ok["id"], {"succeeded"})["cluster"] is not None
    assert cli("logs", ok["id"]).stdout.endswith("pass@1 6/8\n")
    assert "error: dataset shard 7 is missing" in cli("logs", broken["id"]).stdout
