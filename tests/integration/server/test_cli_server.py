"""``stargate up`` (a real process: first start, restart) and bad input to ``up`` / ``admin token create`` (exit 2)."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from integration.server.stargate_harness import TINY_FLEET, build_harness
from stargate.cli import app

STARTUP_TIMEOUT_S = 60.0


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STARGATE_")}
    return {**env, "STARGATE_HOME": str(home), **extra}


def _stargate(*args: str, home: Path) -> Result:
    """Run a command in-process (fast) with STARGATE_HOME set and no other STARGATE_* variable."""
    clean = {k: None for k in os.environ if k.startswith("STARGATE_")}
    return CliRunner().invoke(app, list(args), env={**clean, "STARGATE_HOME": str(home)})


def _start(home: Path, *args: str) -> tuple[subprocess.Popen[str], list[str], str]:
    """Start ``stargate up`` on a free port; its stdout lines up to 'listening on', and the base URL."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stargate",
            "up",
            "--port",
            "0",
            "--interval",
            "0.05",
            "--fleet",
            str(TINY_FLEET),
            *args,
        ],
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if match := re.match(r"listening on (http://\S+)", lines[-1]):
            return proc, lines, match[1]
    proc.kill()
    raise AssertionError(f"stargate up did not start: {lines}")


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_first_start_writes_the_admin_token_to_a_private_file_and_runs_jobs_across_a_restart(tmp_path: Path) -> None:
    proc, lines, url = _start(tmp_path)
    try:
        token_file = tmp_path / "admin-token"
        token = token_file.read_text().strip()
        assert token.startswith("sgt_t-") and token_file.stat().st_mode & 0o777 == 0o600
        assert token not in "\n".join(lines)  # never printed: stdout often ends up in a log file
        assert f"stargate login --url {url} --token-file {token_file}" in "\n".join(lines)  # the bound port, not 0
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok", "scheduler": "leader"}  # the only server
        job = httpx.post(
            f"{url}/api/v1/jobs", json={"name": "hi", "queue": "alpha-q", "gpus": 1, "command": "echo hi"}, headers=auth
        ).json()
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/api/v1/jobs/{job['id']}", headers=auth).json()["status"] != "succeeded":
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        _stop(proc)
    assert (tmp_path / "stargate.db").exists() and (tmp_path / "runs").is_dir()
    proc, lines, url = _start(tmp_path)
    try:
        assert not any("admin token" in line for line in lines)
        assert token_file.read_text().strip() == token
        assert httpx.get(f"{url}/api/v1/jobs/{job['id']}", headers=auth).json()["status"] == "succeeded"
        logs = httpx.get(f"{url}/api/v1/jobs/{job['id']}/logs", headers=auth).json()
        assert logs == {"text": "hi\n", "next_offset": 3, "complete": True}
    finally:
        _stop(proc)


def test_a_bad_fleet_file_is_a_located_error_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nclusters:\n  - id: x\n    site: nowhere\n")
    result = _stargate("up", "--fleet", str(bad), home=tmp_path / "home")
    assert result.exit_code == 2
    assert "bad.yaml:" in result.stderr and "the server did not start" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_port_in_use_is_exit_2_before_anything_is_written(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = _stargate("up", "--host", "127.0.0.1", "--port", str(port), "--fleet", str(TINY_FLEET), home=tmp_path)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: --port: cannot listen on 127.0.0.1:{port}")
    assert "admin token" not in result.output and "fleet version" not in result.output
    assert not (tmp_path / "stargate.db").exists()


def test_bad_flags_exit_2_without_a_traceback(tmp_path: Path) -> None:
    for args in (
        ["up", "--log-level", "loud"],
        ["up", "--port", "70000"],
        ["up", "--interval", "0"],
        ["admin", "token", "create", "--role", "root"],
    ):
        result = _stargate(*args, home=tmp_path / "home")
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.startswith(f"error: {args[-2]}: found") and result.stderr.count("\n") == 1, result.stderr


def test_admin_token_create_works_on_the_database_directly(tmp_path: Path) -> None:
    """An admin token may be made before the first `stargate up` (to provision it); the new database is said."""
    home = tmp_path / "home"
    no_fleet = _stargate("admin", "token", "create", "--team", "alpha", "--role", "member", home=home)
    assert no_fleet.exit_code == 2 and no_fleet.stderr.startswith("error: --team: found 'alpha'"), no_fleet.stderr
    assert no_fleet.stderr.count("\n") == 1 and not home.exists()  # refused before anything was written
    admin = _stargate("admin", "token", "create", "--role", "admin", "--name", "ops", home=home)
    assert admin.exit_code == 0, admin.output
    assert re.search(r"token t-[0-9a-f]+ \(admin, team -, name ops\): sgt_\S+", admin.stdout)
    assert (
        admin.stderr == f"note: created a new database at {home / 'stargate.db'} (no server has used this state yet)\n"
    )
    again = _stargate("admin", "token", "create", "--role", "admin", home=home)
    assert again.exit_code == 0 and again.stderr == ""


def test_admin_token_create_makes_a_member_token_the_api_accepts(tmp_path: Path) -> None:
    home = tmp_path / "home"
    harness = build_harness(f"sqlite:///{home / 'stargate.db'}", home)
    try:
        result = _stargate("admin", "token", "create", "--team", "alpha", "--role", "member", home=home)
        assert result.exit_code == 0, result.output
        secret = result.stdout.splitlines()[0].rsplit(" ", 1)[-1]
        me = harness.client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {secret}"}).json()
        assert (me["name"], me["team"], me["role"]) == ("member-alpha", "alpha", "member")
    finally:
        harness.client.close()
        harness.ctx.db.close()


def test_up_policy_and_set_are_the_policy_the_server_decides_with(tmp_path: Path) -> None:
    proc, _, url = _start(tmp_path, "--policy", "srtf", "--set", "scan_depth=16")
    try:
        token = (tmp_path / "admin-token").read_text().strip()
        got = httpx.get(f"{url}/api/v1/fleet", headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    finally:
        _stop(proc)
    assert got["scheduling"]["policy"] == "srtf" and got["scheduling"]["settings"]["scan_depth"] == 16
    assert got["scheduling"]["override"] == "--policy srtf --set scan_depth=16"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["--policy", "lottery"],
            "error: --policy: found 'lottery'; expected one of fifo, gittins, las, srtf, stargate\n",
        ),
        (["--set", "scan_depth"], "error: --set: found 'scan_depth'; expected KEY=VALUE\n"),
        (
            ["--policy", "srtf", "--set", "runtime_weight=2"],
            "error: --set runtime_weight=2: scheduling.settings.runtime_weight: found 'runtime_weight', expected a "
            "setting of policy 'srtf' (",
        ),
        (
            ["--set", "scan_depth=0"],
            "error: --set scan_depth=0: scheduling.settings.scan_depth: found 0, expected a whole number from 1 to "
            f"1,000,000,000 (the fleet {TINY_FLEET} has no problem alone); the server did not start\n",
        ),
        (  # runtime_weight is the stargate policy's own setting: pinned to it
            ["--policy", "stargate", "--set", "runtime_weight=1e999"],
            "error: --set runtime_weight=1e999: scheduling.settings.runtime_weight: found 1e999,",
        ),
        (  # the tiny fleet names no policy: the default, gittins, has no runtime_weight
            ["--set", "runtime_weight=2"],
            "error: --set runtime_weight=2: scheduling.settings.runtime_weight: found 'runtime_weight', expected a "
            "setting of policy 'gittins' (",
        ),
        (
            ["--set", "scan_depth=8", "--set", "scan_depth=16"],
            "error: --set scan_depth=8 and --set scan_depth=16 both set scan_depth; give each setting once\n",
        ),
    ],
)
def test_up_refuses_a_policy_that_does_not_fit_before_writing_anything(
    tmp_path: Path, args: list[str], said: str
) -> None:
    result = _stargate("up", "--port", "0", "--fleet", str(TINY_FLEET), *args, home=tmp_path)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(said) and "Traceback" not in result.stderr
    assert not (tmp_path / "stargate.db").exists() and "fleet version" not in result.output


def _busy_port() -> socket.socket:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    return busy


@pytest.mark.parametrize(
    "args",
    [
        ["--set", "burst_after_s=none"],
        ["--set", "burst_after_s=null"],
        ["--set", "restart_cost_s=120"],
        ["--policy", "stargate", "--set", "runtime_weight=2"],
    ],
)
def test_up_takes_set_none_and_gets_as_far_as_listening(tmp_path: Path, args: list[str]) -> None:
    """A good --set passes every check: a busy port is the first refusal (nothing written)."""
    with _busy_port() as busy:
        port = busy.getsockname()[1]
        result = _stargate("up", "--port", str(port), "--fleet", str(TINY_FLEET), *args, home=tmp_path)
    assert result.exit_code == 2 and result.stderr.startswith(f"error: --port: cannot listen on 127.0.0.1:{port}")
    assert not (tmp_path / "stargate.db").exists()


def test_up_finds_the_default_fleet_from_another_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run outside the project root with a fresh state: the bundled fleet is found (the start gets as far as a busy
    port, which --policy checks it against first) and nothing is written."""
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with _busy_port() as busy:
        port = busy.getsockname()[1]
        result = _stargate("up", "--port", str(port), "--policy", "srtf", home=home)
    assert result.exit_code == 2 and result.stderr.startswith(f"error: --port: cannot listen on 127.0.0.1:{port}")
    assert not (home / "stargate.db").exists() and "fleet version" not in result.output


def test_a_default_fleet_that_does_not_load_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default fleet is checked before the database is created, with or without --policy/--set."""
    from stargate.cli import server_run

    missing = tmp_path / "missing-fleet"
    monkeypatch.setattr(server_run, "DEFAULT_FLEET", missing)
    result = _stargate("up", "--port", "0", home=tmp_path / "home")
    assert result.exit_code == 2, result.output
    assert f"error: the default fleet: 1 problem(s) in {missing}; the server did not start" in result.stderr
    assert not (tmp_path / "home").exists()  # not even the state directory


def test_up_shows_a_bad_keys_control_and_bidi_characters_escaped(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text('name: bad\nscheduling:\n  settings:\n    "k\\e[2J": 1\n    "x\\u202Ey": 2\n', encoding="utf-8")
    result = _stargate("up", "--port", "0", "--fleet", str(bad), home=tmp_path / "home")
    assert result.exit_code == 2, result.output
    assert "scheduling.settings.k\\x1b[2J: found 'k\\x1b[2J'" in result.stderr
    assert "scheduling.settings.x\\u202ey: found 'x\\u202ey'" in result.stderr
    assert "\x1b" not in result.stderr and "\u202e" not in result.stderr
    assert not (tmp_path / "home").exists()
