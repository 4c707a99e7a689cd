"""The attack of issue 7, replayed end to end against a real ``stargate up``: a member of team alpha submits a job that
tries to read the server's database, admin token, log and environment, team beta's output and working directory, to
see what the state directory holds and to insert an admin token row into the database. Every attempt must fail, in
both isolation modes, and team beta's output and the token table must be intact.

- ``users``: the server runs as root (as in CI); each team gets its own uid, and a bubblewrap sandbox.
- ``sandbox``: the server runs as an unprivileged uid with no account (``SANDBOX_UID``), over a state directory it
  owns, and ``auto`` picks the bubblewrap sandbox. It runs as a real normal user rather than as root with
  ``--isolation sandbox`` (which is refused: a sandboxed job would still be uid 0), because that is how the mode is
  used. The interpreter must be one that uid can execute (a pyenv Python under a 0700 /root is not): the venv's
  packages are added with ``site.addsitedir``.
- ``none`` is refused without ``--single-team``, and with it another team's job is refused at submit.
"""

import contextlib
import os
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

TINY_FLEET = Path(__file__).parents[1] / "integration" / "server" / "fleet" / "tiny.yaml"
SANDBOX_UID = 1_999_000_123
"""A uid (and gid) with no account, below the per-team job range (2000000000 and up)."""
_LISTENING = re.compile(r"listening on (http://\S+)")
ATTEMPTS = (
    ("read-db", 'cat "$H/stargate.db"'),
    ("read-admin-token", 'cat "$H/admin-token"'),
    ("read-server-log", 'cat "$H/server.log"'),
    ("list-state-dir", 'ls -a "$H" | grep -q stargate.db'),
    ("list-runs", 'ls "$H/runs" | grep -q j-'),
    ("list-work", 'ls "$H/work" | grep -q beta'),
    ("read-beta-output", 'cat "$BETA_LOG"'),
    ("append-beta-output", "sh -c 'echo pwned >> \"$BETA_LOG\"'"),
    ("list-beta-work", 'ls "$BETA_WORK"'),
    ("read-beta-work", 'cat "$BETA_WORK/secret.txt"'),
    ("read-server-environ", 'cat "/proc/$SERVER_PID/environ"'),
    ("signal-server", 'kill -0 "$SERVER_PID"'),
    ("insert-admin-token", 'python3 -c "$INSERT" "$H/stargate.db"'),
)
INSERT = """
import sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=rw", uri=True)
db.execute("INSERT INTO tokens (id, name, team_id, role, salt, secret_hash, created_at, created_by) "
           "VALUES ('evil', 'evil', NULL, 'admin', 's', 'h', '2026-01-01 00:00:00', 'attack')")
db.commit()
"""


def attack_script() -> str:
    """The alpha job: try each attempt, print ``ATTACK <name>: succeeded|failed``, then ``ATTACK done``."""
    lines = [
        f'if {{ {command}; }} >/dev/null 2>&1; then r=succeeded; else r=failed; fi; echo "ATTACK {name}: $r"'
        for name, command in ATTEMPTS
    ]
    return "\n".join([*lines, "echo ATTACK done"])


class Server:
    """One ``stargate up`` subprocess (optionally as another uid), its log in STARGATE_HOME/server.log."""

    def __init__(self, home: Path, argv: list[str], uid: int | None = None, extra_env: dict[str, str] | None = None):
        self.home = home
        self.log = home / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("STARGATE_")}
        env.update(extra_env or {}, STARGATE_HOME=str(home))
        user: dict[str, Any] = {"user": uid, "group": uid, "extra_groups": []} if uid is not None else {}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=home.parent, **user)
        self.url = self._wait_listening(120.0)

    def _wait_listening(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = _LISTENING.search(self.log.read_text(errors="replace"))
            if found:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{found.group(1)}/healthz", timeout=5).status_code == 200:
                        return found.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"stargate up did not start (exit {self.proc.poll()}):\n{self.log.read_text()[-3000:]}")

    @property
    def admin_token(self) -> str:
        """The first admin token, from the file the server said it wrote it to."""
        found = re.findall(r"first admin token written to (\S+)", self.log.read_text(errors="replace"))
        return Path(found[-1] if found else self.home / "admin-token").read_text().strip()

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token or self.admin_token}"}, timeout=30
        )

    def token(self, team: str) -> str:
        """A new member token of ``team``."""
        with self.client() as http:
            answer = http.post("/api/v1/tokens", json={"name": f"member-{team}", "team": team, "role": "member"})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["token"])

    def run_job(self, token: str, queue: str, command: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        """Submit a job, wait until it is final; its JSON and its whole log (through the API)."""
        with self.client(token) as http:
            body = {"name": "job", "queue": queue, "gpus": 1, "command": command, "environment": env or {}}
            answer = http.post("/api/v1/jobs", json=body)
            assert answer.status_code == 201, answer.text
            job_id = answer.json()["id"]
            deadline = time.monotonic() + 60
            while (job := http.get(f"/api/v1/jobs/{job_id}").json())["status"] not in {"succeeded", "failed"}:
                assert time.monotonic() < deadline, job
                time.sleep(0.1)
            job["log"] = http.get(f"/api/v1/jobs/{job_id}/logs").json()["text"]
        return dict(job)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


def stargate_argv(python: list[str]) -> list[str]:
    return [*python, "up", "--port", "0", "--fleet", str(TINY_FLEET), "--interval", "0.05", "--log-level", "warning"]


def python_for(uid: int) -> list[str]:
    """An interpreter command that ``uid`` can run and that imports this checkout (venv packages added)."""
    site = sysconfig.get_paths()["purelib"]
    boot = f"import runpy, site; site.addsitedir({site!r}); runpy.run_module('stargate', run_name='__main__')"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"):
        if not os.path.exists(candidate):
            continue
        check = [candidate, "-c", f"import site; site.addsitedir({site!r}); import stargate.server.app"]
        try:
            done = subprocess.run(check, user=uid, group=uid, extra_groups=[], capture_output=True, check=False)
        except PermissionError:
            continue  # e.g. a pyenv Python under a 0700 /root
        if done.returncode == 0:
            return [candidate, "-c", boot]
    pytest.fail(f"no Python {version} that uid {uid} can run with this checkout (install python{version})")


def token_ids(server: Server) -> set[str]:
    with server.client() as http:
        return {t["id"] for t in http.get("/api/v1/tokens").json()}


def attack(server: Server, pid: int) -> tuple[dict[str, Any], dict[str, Any], set[str]]:
    """Run beta's job, then alpha's attack on it; (beta's job, alpha's job, the token ids before the attack)."""
    beta = server.run_job(server.token("beta"), "beta-q", "echo beta-output; echo s3cret > secret.txt")
    assert beta["status"] == "succeeded", beta
    home = server.home.absolute()
    env = {
        "H": str(home),
        "BETA_LOG": str(next(home.glob(f"runs/*/{beta['id']}/attempt-0")) / "output.log"),
        "BETA_WORK": str(next(home.glob(f"work/*/beta/{beta['id']}/attempt-0"))),
        "SERVER_PID": str(pid),
        "INSERT": INSERT,
    }
    assert (Path(env["BETA_WORK"]) / "secret.txt").read_text() == "s3cret\n"  # the targets exist
    assert Path(env["BETA_LOG"]).read_text() == "beta-output\n"
    alpha_token = server.token("alpha")
    before = token_ids(server)
    alpha = server.run_job(alpha_token, "alpha-q", attack_script(), env)
    return beta, alpha, before


def assert_attack_failed(server: Server, beta: dict[str, Any], alpha: dict[str, Any], tokens_before: set[str]) -> None:
    """Every attempt failed, beta's output is intact, no token was added."""
    assert alpha["status"] == "succeeded", alpha
    lines = [line for line in alpha["log"].splitlines() if line.startswith("ATTACK")]
    assert lines[-1] == "ATTACK done" and len(lines) == len(ATTEMPTS) + 1, alpha["log"]
    assert [line for line in lines if line.endswith("succeeded")] == []
    with server.client() as http:
        assert http.get(f"/api/v1/jobs/{beta['id']}/logs").json()["text"] == "beta-output\n"
    assert token_ids(server) == tokens_before
    with contextlib.closing(sqlite3.connect(server.home / "stargate.db")) as db:
        assert db.execute("SELECT count(*) FROM tokens WHERE id = 'evil'").fetchone() == (0,)


def assert_state_is_private(home: Path, owner: int) -> None:
    """The state directory 0700, its files 0600, all owned by the server's user."""
    assert (home.stat().st_uid, stat.S_IMODE(home.stat().st_mode)) == (owner, 0o700)
    for name in ("stargate.db", "admin-token", "server.log", "stargate.db.scheduler.lock"):
        info = (home / name).stat()
        assert (name, info.st_uid, stat.S_IMODE(info.st_mode)) == (name, owner, 0o600)
    assert stat.S_IMODE((home / "runs").stat().st_mode) == 0o700


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()
        for record in server.home.glob("runs/**/attempt-*/run.json"):
            with contextlib.suppress(OSError, ValueError, ProcessLookupError, PermissionError):
                os.killpg(int(__import__("json").loads(record.read_text())["pgid"]), signal.SIGKILL)


def _root() -> None:
    if os.geteuid() != 0:
        pytest.fail("this test starts servers as root and as another uid: run it as root, as .ci/run does")


def test_the_attack_fails_with_one_uid_per_team(tmp_path: Path, servers: list[Server]) -> None:
    _root()
    home = tmp_path / ".stargate"
    home.mkdir(mode=0o755)  # too open: the server tightens it
    (home / "server.log").touch(mode=0o644)  # a log redirected by a careless shell: tightened too
    server = Server(home, stargate_argv([sys.executable, "-m", "stargate"]))
    servers.append(server)
    assert "isolation users: jobs run as one unprivileged uid per team" in server.log.read_text()
    assert "in a bubblewrap sandbox" in server.log.read_text(), "CI installs bubblewrap: the sandbox must work"
    beta, alpha, tokens_before = attack(server, server.proc.pid)
    assert_attack_failed(server, beta, alpha, tokens_before)
    assert_state_is_private(home, 0)
    uids = {p.name: p.stat().st_uid for p in home.glob("work/*/*")}
    assert uids["alpha"] != uids["beta"] and min(uids.values()) >= 2_000_000_000


def test_the_attack_fails_in_a_sandbox_for_a_normal_user(servers: list[Server]) -> None:
    _root()
    base = Path(tempfile.mkdtemp(prefix="stargate-sandbox-"))
    try:
        os.chown(base, SANDBOX_UID, SANDBOX_UID)
        home = base / ".stargate"
        home.mkdir(mode=0o755)
        os.chown(home, SANDBOX_UID, SANDBOX_UID)
        log = home / "server.log"
        log.touch(mode=0o644)
        os.chown(log, SANDBOX_UID, SANDBOX_UID)
        python = python_for(SANDBOX_UID)
        server = Server(home, stargate_argv(python), uid=SANDBOX_UID, extra_env={"HOME": str(base)})
        servers.append(server)
        assert "isolation sandbox: jobs run as the server's user in a bubblewrap sandbox" in log.read_text()
        beta, alpha, tokens_before = attack(server, server.proc.pid)
        assert_attack_failed(server, beta, alpha, tokens_before)
        assert_state_is_private(home, SANDBOX_UID)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_no_isolation_is_refused_as_root_and_unless_for_a_single_team(servers: list[Server]) -> None:
    _root()
    base = Path(tempfile.mkdtemp(prefix="stargate-none-"))
    try:
        home = base / ".stargate"
        env = {k: v for k, v in os.environ.items() if not k.startswith("STARGATE_")} | {"STARGATE_HOME": str(home)}
        as_root = [*stargate_argv([sys.executable, "-m", "stargate"]), "--isolation", "none", "--single-team", "alpha"]
        refused = subprocess.run(as_root, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert refused.returncode == 2  # issue 7 review, finding 7: it ran alpha's jobs as uid 0
        assert refused.stderr.startswith("error: --isolation: none would run jobs as root (uid 0) here: use")
        assert len(refused.stderr.splitlines()) == 1 and not home.exists()  # nothing written
        os.chown(base, SANDBOX_UID, SANDBOX_UID)
        argv = [*stargate_argv(python_for(SANDBOX_UID)), "--isolation", "none"]
        user: dict[str, Any] = {"user": SANDBOX_UID, "group": SANDBOX_UID, "extra_groups": []}
        refused = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False, **user)
        assert refused.returncode == 2
        assert refused.stderr.startswith("error: --isolation: none runs every job as the server's user")
        assert len(refused.stderr.splitlines()) == 1 and not home.exists()  # nothing written
        home.mkdir()
        os.chown(home, SANDBOX_UID, SANDBOX_UID)
        (home / "server.log").touch()
        os.chown(home / "server.log", SANDBOX_UID, SANDBOX_UID)
        server = Server(home, [*argv, "--single-team", "alpha"], uid=SANDBOX_UID, extra_env={"HOME": str(base)})
        servers.append(server)
        with server.client(server.token("beta")) as http:
            answer = http.post("/api/v1/jobs", json={"name": "j", "queue": "beta-q", "gpus": 1, "command": "true"})
        assert answer.status_code == 422, answer.text
        assert "only for team 'alpha'" in answer.text
        alpha = server.run_job(server.token("alpha"), "alpha-q", "echo alpha-ran; id -u")
        assert (alpha["status"], alpha["log"]) == ("succeeded", f"alpha-ran\n{SANDBOX_UID}\n")
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


def _server_dir_under(parent: str, uid: int) -> Path:
    """A new directory under ``parent`` (a directory the sandbox binds read-only) owned by ``uid``."""
    base = Path(tempfile.mkdtemp(prefix="stargate-test-", dir=parent))
    base.chmod(0o755)
    os.chown(base, uid, uid)
    return base


def test_a_sandboxed_job_does_not_see_a_state_directory_under_opt(servers: list[Server]) -> None:
    """Issue 7 review, finding 1: the sandbox binds /opt (and /etc, /usr) read-only, and the job runs as the server's
    user, so a STARGATE_HOME under /opt showed the admin token and the database to every job."""
    _root()
    base = _server_dir_under("/opt", SANDBOX_UID)
    try:
        home = base / ".stargate"
        home.mkdir(mode=0o700)
        os.chown(home, SANDBOX_UID, SANDBOX_UID)
        (home / "server.log").touch(mode=0o600)
        os.chown(home / "server.log", SANDBOX_UID, SANDBOX_UID)
        python = python_for(SANDBOX_UID)
        server = Server(home, stargate_argv(python), uid=SANDBOX_UID, extra_env={"HOME": str(base)})
        servers.append(server)
        assert "isolation sandbox:" in server.log.read_text()
        beta, alpha, tokens_before = attack(server, server.proc.pid)
        assert_attack_failed(server, beta, alpha, tokens_before)
        probe = server.run_job(
            server.token("alpha"),
            "alpha-q",
            'ls -a "$H"; ls -a "$(dirname "$H")"; test -e "$H/admin-token" && echo TOKEN-VISIBLE; echo done',
            {"H": str(home)},
        )
        assert probe["status"] == "succeeded", probe
        assert "TOKEN-VISIBLE" not in probe["log"] and "stargate.db" not in probe["log"], probe["log"]
        assert "admin-token" not in probe["log"] and "server.log" not in probe["log"], probe["log"]
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_a_new_database_over_the_same_state_directory_never_takes_over_old_runs(
    tmp_path: Path, servers: list[Server]
) -> None:
    """Issue 7 review, finding 2: a fresh database (a move to PostgreSQL keeps STARGATE_HOME) numbers its jobs from
    j-000001 again; its j-000001 was `succeeded` at once, with the old j-000001's output (another team's), and the
    first admin token of the new database overwrote the old one's ``admin-token``."""
    home = tmp_path / ".stargate"
    home.mkdir(mode=0o700)
    first = Server(home, stargate_argv([sys.executable, "-m", "stargate"]))
    servers.append(first)
    old = first.run_job(first.token("alpha"), "alpha-q", "echo alpha-private-output")
    assert (old["id"], old["status"], old["log"]) == ("j-000001", "succeeded", "alpha-private-output\n")
    first_token = (home / "admin-token").read_text()
    first.stop()
    first.log.write_text("")  # the second server's lines only
    other_db = tmp_path / "other-db"
    other_db.mkdir(mode=0o700)
    url = f"sqlite:///{other_db / 'stargate.db'}"
    second = Server(home, stargate_argv([sys.executable, "-m", "stargate"]), extra_env={"STARGATE_DATABASE_URL": url})
    servers.append(second)
    assert (home / "admin-token").read_text() == first_token  # never written over
    written = re.findall(r"first admin token written to (\S+)", second.log.read_text())
    assert len(written) == 1 and Path(written[0]).name.startswith("admin-token-"), second.log.read_text()
    assert stat.S_IMODE(Path(written[0]).stat().st_mode) == 0o600
    new = second.run_job(second.token("beta"), "beta-q", "sleep 0.3; echo beta-own-output")
    assert (new["id"], new["status"], new["log"]) == ("j-000001", "succeeded", "beta-own-output\n"), new
    with second.client() as http:
        assert http.get("/api/v1/jobs/j-000001/logs").json()["text"] == "beta-own-output\n"
    assert len([p for p in (home / "runs").iterdir() if p.is_dir()]) == 2  # one directory per installation


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--job-network", "bogus"], "error: --job-network: found 'bogus'; expected host or none"),
        (["--job-network", "none", "--isolation", "users", "--job-uid-base", "1000"], "error: --job-uid-base: found"),
    ],
)
def test_a_job_network_or_uid_base_that_cannot_be_had_stops_up_with_one_line(
    tmp_path: Path, extra: list[str], message: str
) -> None:
    home = tmp_path / ".stargate"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STARGATE_")} | {"STARGATE_HOME": str(home)}
    argv = [*stargate_argv([sys.executable, "-m", "stargate"]), *extra]
    refused = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2 and refused.stderr.startswith(message), refused.stderr
    assert len(refused.stderr.splitlines()) == 1 and not home.exists()  # nothing written
