"""Job isolation on the local executor, with real processes: per-team uids (as root, with and without bubblewrap),
private run bookkeeping, a minimal environment, cancel and reattach of isolated runs, and the refusals.

These tests run as root (as CI does): ``users`` mode needs it. The sandbox mode for a normal user is exercised end to
end in tests/e2e/test_isolation_attack.py.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from stargate.executors import LocalExecutor, LocalExecutorError, RunRequest, RunState, RunStatus, for_kind
from stargate.executors.bwrap import probe_bwrap
from stargate.executors.isolation import (
    DEFAULT_JOB_UID_BASE,
    Isolation,
    IsolationError,
    IsolationMode,
    TeamIdentities,
    check_uid_range,
    derived_uid_base,
    needs_traversal,
    resolve,
)
from stargate.executors.local_runner import exit_code_of
from stargate.server.bootstrap import home_mode, secure_home
from stargate.server.settings import Settings

Wait = Callable[..., RunStatus]
ATTACK = """
try_() {
    name=$1; shift
    if "$@" >/dev/null 2>&1; then echo "ATTACK $name: succeeded"; else echo "ATTACK $name: failed"; fi
}
try_ list-runs ls "$RUNS"
try_ read-runs-log cat "$OTHER_LOG"
try_ list-other-work ls "$OTHER_WORK"
try_ read-other-work cat "$OTHER_WORK/secret.txt"
try_ write-other-work touch "$OTHER_WORK/planted"
try_ read-uids cat "$UIDS"
try_ signal-other kill -0 "$OTHER_PID"
echo ATTACK done
"""


def _root() -> None:
    if os.geteuid() != 0:
        pytest.fail("these tests need root (users isolation): run them as root, as .ci/run does")


def _users(with_bwrap: bool) -> Isolation:
    """``users`` isolation, with bubblewrap (it must work here: CI installs it) or without."""
    _root()
    if not with_bwrap:
        return Isolation(IsolationMode.USERS)
    found = resolve("users")
    assert found.bwrap is not None, f"bubblewrap does not work here: {probe_bwrap(root=True)[1]}"
    return found


def _request(command: str, team: str, job_id: str, env: dict[str, str] | None = None) -> RunRequest:
    return RunRequest(job_id, 0, command, "c1", (0,), environment=env or {}, team=team)


def _traversable(tmp_path: Path) -> Path:
    """A state directory whose ancestors job uids can traverse (pytest's own base is 0700)."""
    base = Path(os.path.realpath("/tmp")) / f"stargate-iso-{tmp_path.name}-{os.getpid()}"
    base.mkdir(mode=0o711)
    base.chmod(0o711)
    return base


def _kill_runs(runs_dir: Path) -> None:
    """SIGKILL every run's command group and runner under ``runs_dir``."""
    for record_path in runs_dir.glob("*/attempt-*/run.json"):
        record = json.loads(record_path.read_text())
        for kill, target in ((os.killpg, record.get("pgid")), (os.kill, record.get("pid"))):
            if isinstance(target, int):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    kill(target, signal.SIGKILL)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """A fresh state directory (``runs``, ``work``, ``job-uids.json`` go in it); what runs is killed after."""
    home = _traversable(tmp_path) / ".stargate"
    home.mkdir(mode=0o711)
    yield home
    _kill_runs(home / "runs")
    shutil.rmtree(home.parent, ignore_errors=True)


def _live_in_group(pgid: int) -> list[int]:
    """Pids of live (not zombie) processes in process group ``pgid``."""
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
    return found


def _executor(home: Path, isolation: Isolation) -> LocalExecutor:
    return LocalExecutor(home / "runs", grace_s=0.5, isolation=isolation, work_root=home / "work")


@pytest.mark.parametrize("with_bwrap", [True, False], ids=["bwrap", "no-bwrap"])
def test_each_team_runs_under_its_own_unprivileged_uid(state: Path, wait_final: Wait, with_bwrap: bool) -> None:
    executor = _executor(state, _users(with_bwrap))
    ids = {}
    for team, job in (("alpha", "j-1"), ("beta", "j-2"), ("alpha", "j-3")):
        handle = executor.submit(_request("id -u; id -g; id -G; pwd; id -un 2>/dev/null; true", team, job))
        assert wait_final(executor, handle).state is RunState.SUCCEEDED
        uid, gid, groups, cwd, name = executor.logs(handle)[0].split("\n")[:5]
        ids[job] = int(uid)
        assert gid == uid and groups == uid  # no supplementary group (not root's)
        assert cwd == str(state.absolute() / "work" / team / job / "attempt-0")
        assert name == (f"stargate-{team}" if with_bwrap else uid)  # the sandbox gives the uid an account
    assert ids["j-1"] == ids["j-3"] != ids["j-2"]
    assert {ids["j-1"], ids["j-2"]} == {DEFAULT_JOB_UID_BASE, DEFAULT_JOB_UID_BASE + 1}
    uids = state / "job-uids.json"
    assert stat.S_IMODE(uids.stat().st_mode) == 0o600
    assert TeamIdentities(uids).uid_of("beta") == ids["j-2"]  # a restart keeps the mapping
    work = state / "work" / "alpha" / "j-1" / "attempt-0"
    assert (work.stat().st_uid, stat.S_IMODE(work.stat().st_mode)) == (ids["j-1"], 0o700)
    assert stat.S_IMODE((state / "work" / "alpha").stat().st_mode) == 0o700


@pytest.mark.parametrize("with_bwrap", [True, False], ids=["bwrap", "no-bwrap"])
def test_a_job_cannot_reach_another_teams_run_nor_the_bookkeeping(
    state: Path, wait_final: Wait, wait_for: Callable[..., None], with_bwrap: bool
) -> None:
    executor = _executor(state, _users(with_bwrap))
    beta = executor.submit(_request("echo beta-output; echo s3cret > secret.txt; sleep 30", "beta", "j-1"))
    beta_work = state.absolute() / "work" / "beta" / "j-1" / "attempt-0"
    wait_for(lambda: (beta_work / "secret.txt").exists())
    beta_pid = json.loads((executor.run_dir("j-1", 0) / "run.json").read_text())["child_pid"]
    env = {
        "RUNS": str(state.absolute() / "runs"),
        "OTHER_LOG": str(executor.run_dir("j-1", 0).absolute() / "output.log"),
        "OTHER_WORK": str(beta_work),
        "UIDS": str(state.absolute() / "job-uids.json"),
        "OTHER_PID": str(beta_pid),
    }
    alpha = executor.submit(_request(ATTACK, "alpha", "j-2", env))
    assert wait_final(executor, alpha).state is RunState.SUCCEEDED
    lines = [line for line in executor.logs(alpha)[0].splitlines() if line.startswith("ATTACK")]
    assert lines[-1] == "ATTACK done" and len(lines) == 8, lines
    assert [line for line in lines[:-1] if not line.endswith(": failed")] == []
    assert not (beta_work / "planted").exists()
    executor.cancel(beta)
    assert wait_final(executor, beta).state is RunState.CANCELLED
    assert executor.logs(beta)[0] == "beta-output\n"


def test_run_bookkeeping_is_private_to_the_server_user(state: Path, wait_final: Wait) -> None:
    executor = _executor(state, _users(with_bwrap=True))
    wait_final(executor, executor.submit(_request("echo hi", "alpha", "j-1")))
    run_dir = executor.run_dir("j-1", 0)
    assert stat.S_IMODE(executor.runs_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    for name in ("claim", "run.json", "exit.json", "output.log", "runner.log", "launch.json"):
        info = (run_dir / name).stat()
        assert (name, info.st_uid, stat.S_IMODE(info.st_mode)) == (name, 0, 0o600)


def test_the_job_gets_a_minimal_environment_not_the_servers(
    state: Path, wait_final: Wait, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STARGATE_DATABASE_URL", "postgresql://stargate:hunter2@db/stargate")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "server-secret")
    executor = _executor(state, _users(with_bwrap=True))  # built after the server's environment is set
    handle = executor.submit(_request("env", "alpha", "j-1", {"MY_VAR": "x", "LD_PRELOAD": ""}))
    assert wait_final(executor, handle).state is RunState.SUCCEEDED
    env = dict(line.split("=", 1) for line in executor.logs(handle)[0].splitlines() if "=" in line)
    work = str(state.absolute() / "work" / "alpha" / "j-1" / "attempt-0")
    assert env["HOME"] == env["TMPDIR"] == env["PWD"] == env["STARGATE_RUN_DIR"] == work
    assert env["MY_VAR"] == "x" and env["STARGATE_JOB_ID"] == "j-1" and env["CUDA_VISIBLE_DEVICES"] == "0"
    assert "hunter2" not in " ".join(env.values()) and "AWS_SECRET_ACCESS_KEY" not in env
    assert set(env) <= {"PATH", "LANG", "LC_ALL", "TZ", "HOME", "TMPDIR", "PWD", "USER", "LOGNAME", "SHLVL", "_"} | {
        "MY_VAR",
        "LD_PRELOAD",
        "CUDA_VISIBLE_DEVICES",
    } | {k for k in env if k.startswith("STARGATE_")}


@pytest.mark.parametrize("with_bwrap", [True, False], ids=["bwrap", "no-bwrap"])
def test_cancel_and_reattach_work_for_isolated_runs(
    state: Path, wait_final: Wait, wait_for: Callable[..., None], with_bwrap: bool
) -> None:
    isolation = _users(with_bwrap)
    executor = _executor(state, isolation)
    handle = executor.submit(_request("sleep 30 & sleep 30; echo never", "alpha", "j-1"))
    restarted = _executor(state, isolation)  # a new server process finds the run from its handle
    assert restarted.poll(handle).state is RunState.RUNNING
    restarted.cancel(handle)
    status = wait_final(restarted, handle)
    assert status.state is RunState.CANCELLED
    pgid = json.loads((executor.run_dir("j-1", 0) / "run.json").read_text())["pgid"]
    wait_for(lambda: _live_in_group(pgid) == [], 5.0)  # the whole group, background sleep included, is gone


def test_a_symlink_planted_in_a_teams_directory_is_not_followed(state: Path, wait_final: Wait) -> None:
    executor = _executor(state, _users(with_bwrap=True))
    wait_final(executor, executor.submit(_request("true", "alpha", "j-1")))  # makes work/alpha, owned by alpha
    (state / "work" / "alpha" / "j-2").symlink_to("/etc")  # what a job of alpha could do to a later job
    handle = executor.submit(_request("touch pwned", "alpha", "j-2"))
    status = wait_final(executor, handle)
    assert (status.state, status.exit_code) == (RunState.FAILED, 127)
    assert not Path("/etc/attempt-0").exists() and not Path("/etc/pwned").exists()


def test_a_single_team_executor_refuses_other_teams(state: Path) -> None:
    executor = _executor(state, Isolation(IsolationMode.NONE, single_team="alpha"))
    with pytest.raises(LocalExecutorError, match="team 'beta' may not run jobs"):
        executor.submit(_request("true", "beta", "j-1"))
    assert not executor.run_dir("j-1", 0).exists()


def test_users_isolation_in_bubblewrap_without_setpriv_never_runs_the_job_as_root(state: Path) -> None:
    found = _users(with_bwrap=True)
    executor = _executor(state, Isolation(IsolationMode.USERS, bwrap=found.bwrap, setpriv=None))
    with pytest.raises(LocalExecutorError, match="needs setpriv"):
        executor.submit(_request("id -u", "alpha", "j-1"))


def test_an_admin_command_keeps_the_state_directory_a_users_server_needs(tmp_path: Path) -> None:
    _root()  # as root, auto means users
    settings = Settings(home=tmp_path / "state", database_url="sqlite://")
    expected = 0o711 if needs_traversal() else 0o700  # passable only when users jobs run without bubblewrap
    assert home_mode(settings) == expected == home_mode(replace(settings, isolation="users"))
    assert home_mode(replace(settings, isolation="none")) == 0o700


def test_a_nul_byte_or_a_bad_environment_name_is_refused(state: Path) -> None:
    executor = _executor(state, Isolation())
    with pytest.raises(LocalExecutorError, match="NUL"):
        executor.submit(_request("echo a\0b", "alpha", "j-1"))
    with pytest.raises(LocalExecutorError, match="environment variable 'A=B'"):
        executor.submit(_request("true", "alpha", "j-2", {"A=B": "x"}))


@pytest.mark.parametrize(
    ("mode", "team", "euid", "message"),
    [
        ("none", None, 1000, "start with --single-team TEAM"),
        ("none", "alpha", 0, "none would run jobs as root"),
        ("sandbox", None, 0, "which is root here"),
        ("users", None, 1000, "users needs root"),
        ("what", None, 0, "expected auto, users, sandbox or none"),
        ("none", " ", 0, "empty team name"),
    ],
)
def test_isolation_that_cannot_be_had_is_refused(mode: str, team: str | None, euid: int, message: str) -> None:
    with pytest.raises(IsolationError, match=message):
        resolve(mode, single_team=team, euid=euid)


def test_none_with_a_single_team_and_auto_as_root_resolve() -> None:
    _root()
    assert resolve("none", single_team="alpha", euid=1000) == Isolation(IsolationMode.NONE, single_team="alpha")
    assert resolve("auto").mode is IsolationMode.USERS


def test_none_as_root_is_refused_even_for_a_single_team() -> None:
    """Issue 7 review, finding 7: ``--isolation none --single-team T`` as root ran T's jobs as uid 0."""
    _root()
    with pytest.raises(IsolationError, match=r"none would run jobs as root \(uid 0\) here: use --isolation users"):
        resolve("none", single_team="alpha")


def test_two_state_directories_get_different_team_uids_and_keep_them(tmp_path: Path) -> None:
    """Issue 7 review, finding 7: two servers on one host gave their teams the same uids (one fixed default base).
    The default base now comes from the state directory's path, and job-uids.json records it for good."""
    _root()
    first, second = _traversable(tmp_path) / "one", _traversable(tmp_path.with_name(tmp_path.name + "-2")) / "two"
    try:
        bases = [resolve("users", work_root=home).uid_base for home in (first, second)]
        assert bases == [derived_uid_base(first), derived_uid_base(second)] and bases[0] != bases[1]
        for base in bases:
            assert (base - DEFAULT_JOB_UID_BASE) % 65536 == 0 and base + 65535 < 2147352576
            check_uid_range(base)
        first.mkdir(mode=0o711)
        executor = for_kind("local", SimpleNamespace(home=first, isolation="users"))
        assert isinstance(executor, LocalExecutor)
        assert executor.identities.uid_of("alpha") == bases[0]
        recorded = json.loads((first / "job-uids.json").read_text())
        assert recorded == {"base": bases[0], "teams": {"alpha": bases[0]}}
        with pytest.raises(IsolationError, match=f"give {bases[0]} or leave the option out"):
            resolve("users", work_root=first, uid_base=DEFAULT_JOB_UID_BASE)
        assert resolve("users", work_root=first).uid_base == bases[0]  # recorded: a later start keeps it
    finally:
        shutil.rmtree(first.parent, ignore_errors=True)
        shutil.rmtree(second.parent, ignore_errors=True)


def test_a_uid_range_that_holds_accounts_or_subordinate_ids_is_refused(tmp_path: Path) -> None:
    check_uid_range(DEFAULT_JOB_UID_BASE)
    with pytest.raises(IsolationError, match="expected 65536"):
        check_uid_range(1000)
    with pytest.raises(IsolationError, match="expected 65536"):
        check_uid_range(2**31 - 10)
    subuid = Path("/etc/subuid")
    ranges = (
        [line.split(":") for line in subuid.read_text().splitlines() if line.count(":") == 2] if subuid.exists() else []
    )
    for _, start, _ in ranges[:3]:  # none on a machine without subordinate ids (an empty or missing file)
        with pytest.raises(IsolationError, match="subordinate ids"):
            check_uid_range(int(start))


def test_secure_home_tightens_an_existing_state_directory(tmp_path: Path) -> None:
    home = tmp_path / "state"
    (home / "runs").mkdir(parents=True)
    for name in ("stargate.db", "stargate.db-wal", "admin-token", "server.log", "server.pid", "notes.txt"):
        (home / name).write_text("x")
        (home / name).chmod(0o644)
    home.chmod(0o755)
    (home / "runs").chmod(0o755)
    secure_home(home, 0o700)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in home.iterdir()}
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert modes == {
        "runs": 0o700,
        "stargate.db": 0o600,
        "stargate.db-wal": 0o600,
        "admin-token": 0o600,
        "server.log": 0o600,
        "server.pid": 0o600,
        "notes.txt": 0o644,  # not ours: left alone (it is unreachable anyway, the directory is 0700)
    }


def test_a_sandboxed_signal_exit_reads_as_the_signal() -> None:
    assert exit_code_of(143, sandboxed=True) == (143, 15)
    assert exit_code_of(143) == (143, None)
    assert exit_code_of(-9) == (137, 9)
    assert exit_code_of(3, sandboxed=True) == (3, None)


CONNECT = """
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3).close()
    print("CONNECTED")
except OSError as exc:
    print("REFUSED", type(exc).__name__)
"""


@pytest.mark.parametrize("network", ["none", "host"])
def test_a_job_without_network_cannot_reach_the_servers_port(state: Path, wait_final: Wait, network: str) -> None:
    """Issue 7 review, finding 3: the network is shared, so a job can talk to (or squat) the API port. With
    ``--job-network none`` it has only a loopback of its own; ``host`` is the control (the same job connects)."""
    isolation = resolve("users", job_network=network)
    assert isolation.bwrap is not None and isolation.network is (network == "host")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        executor = _executor(state, isolation)
        handle = executor.submit(_request(f"python3 -c '{CONNECT}' {port}", "alpha", "j-1"))
        assert wait_final(executor, handle).state is RunState.SUCCEEDED
    expected = "CONNECTED" if network == "host" else "REFUSED"
    assert executor.logs(handle)[0].startswith(expected), executor.logs(handle)[0]


@pytest.mark.parametrize(
    ("mode", "team", "network", "message"),
    [
        ("none", "alpha", "none", "none needs a bubblewrap sandbox"),
        ("users", None, "bogus", "expected host or none"),
    ],
)
def test_a_job_network_that_cannot_be_had_is_refused(mode: str, team: str | None, network: str, message: str) -> None:
    _root()
    with pytest.raises(IsolationError, match=message) as raised:
        resolve(mode, single_team=team, job_network=network, euid=1000 if mode == "none" else None)
    assert raised.value.option == "--job-network" and "\n" not in str(raised.value)


KEY_SEARCH = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
found = libc.syscall(ctypes.c_long(KEYCTL), ctypes.c_long(10), ctypes.c_long(-3), b"user", sys.argv[1].encode(), 0)
print("KEY-FOUND" if found >= 0 else "KEY-NOT-FOUND")
"""
SERVER_WITH_A_KEY = """
import ctypes, json, sys, time
from pathlib import Path
from stargate.executors import LocalExecutor, for_kind, RunRequest
from stargate.executors.isolation import Isolation, IsolationMode, resolve
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
assert libc.syscall(ctypes.c_long(KEYCTL), ctypes.c_long(1), b"stargate-test-server-session") > 0  # a named keyring
key = libc.syscall(ctypes.c_long(ADD_KEY), b"user", sys.argv[2].encode(), b"server-secret", ctypes.c_size_t(13),
                   ctypes.c_long(-3))  # add_key into the session keyring
assert key > 0, ctypes.get_errno()
home = Path(sys.argv[1])
isolation = resolve("users") if sys.argv[3] == "bwrap" else Isolation(IsolationMode.USERS)
executor = LocalExecutor(home / "runs", isolation=isolation, work_root=home / "work")
command = "python3 -c '" + sys.argv[4] + "' " + sys.argv[2]
handle = executor.submit(RunRequest("j-1", 0, command, "c1", (0,), team="alpha"))
while not executor.poll(handle).state.is_final():
    time.sleep(0.02)
print(json.dumps({"state": executor.poll(handle).state.value, "log": executor.logs(handle)[0]}))
"""


SYSCALLS = {"x86_64": (250, 248), "aarch64": (219, 217)}
"""(keyctl, add_key) system call numbers."""


@pytest.mark.parametrize("with_bwrap", [True, False], ids=["bwrap", "no-bwrap"])
def test_a_job_does_not_inherit_the_servers_session_keyring(state: Path, with_bwrap: bool) -> None:
    """Issue 7 review, finding 4: jobs inherited the root server's session keyring, so a job found the server's keys
    (and one team could leave a key there for a later team). The server here joins a named session keyring that holds
    a key, then runs a job that searches its own session keyring for it."""
    _root()
    if os.uname().machine not in SYSCALLS:
        pytest.fail(f"add the keyctl and add_key system call numbers of {os.uname().machine} to SYSCALLS")
    keyctl, add_key = SYSCALLS[os.uname().machine]
    numbers = f"KEYCTL, ADD_KEY = {keyctl}, {add_key}\n"
    name = f"stargate-secret-{os.getpid()}-{with_bwrap}"
    mode = "bwrap" if with_bwrap else "plain"
    done = subprocess.run(
        [sys.executable, "-c", numbers + SERVER_WITH_A_KEY, str(state), name, mode, numbers + KEY_SEARCH],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["state"], result["log"]) == ("succeeded", "KEY-NOT-FOUND\n"), result


PROC_SCAN = """
import os, sys
secret = sys.stdin.read().strip().encode()  # not an argument: this scanner must not find itself
seen = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    for name in ("cmdline", "environ"):
        try:
            with open(f"/proc/{pid}/{name}", "rb") as f:
                if secret in f.read():
                    seen.append(f"{pid}/{name}")
        except OSError:
            pass
print("SEEN " + " ".join(seen) if seen else "NOT-SEEN")
"""


def test_a_jobs_environment_values_are_not_in_the_process_table(
    state: Path, wait_for: Callable[..., None], wait_final: Wait
) -> None:
    """Issue 7 review, finding 5: in bubblewrap modes the job's environment travelled as ``env -i ... K=V``
    arguments of the root ``bwrap`` and of processes inside it, readable by every user in /proc/*/cmdline. Another
    uid (nobody) now reads every cmdline and environ it can while the job runs, and finds no value."""
    secret = f"s3cret-{os.getpid()}-{os.urandom(6).hex()}"
    executor = _executor(state, _users(with_bwrap=True))
    env = {"API_KEY": secret, "QUOTED": 'it\'s "fine" $HOME `x`\nline2'}
    handle = executor.submit(_request('printenv QUOTED; echo "$API_KEY" > seen; sleep 30', "alpha", "j-1", env))
    work = state.absolute() / "work" / "alpha" / "j-1" / "attempt-0"
    wait_for(lambda: (work / "seen").exists() and (work / "seen").read_text() == secret + "\n")
    scan = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-I", "-c", PROC_SCAN],
        input=secret,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert scan.returncode == 0, scan.stderr
    assert scan.stdout.strip() == "NOT-SEEN", scan.stdout
    executor.cancel(handle)
    wait_final(executor, handle)
    assert executor.logs(handle)[0].startswith('it\'s "fine" $HOME `x`\nline2\n')  # values arrive exactly


FTRUNCATE = """
import os
try:
    os.ftruncate(1, 2**40)
    print("GREW")
except OSError as exc:
    print("REFUSED", exc.errno)
"""


@pytest.mark.parametrize("with_bwrap", [True, False], ids=["bwrap", "no-bwrap"])
def test_a_job_cannot_make_its_log_a_huge_sparse_file(state: Path, wait_final: Wait, with_bwrap: bool) -> None:
    """Issue 7 review, finding 6: the job's stdout was output.log itself, so ``ftruncate(1, 2**40)`` made it a 1 TiB
    sparse file that `stargate logs` streamed as NULs for hours. Its stdout is now a pipe the runner copies."""
    executor = _executor(state, _users(with_bwrap))
    handle = executor.submit(_request(f"echo before; python3 -c '{FTRUNCATE}'; echo after", "alpha", "j-1"))
    assert wait_final(executor, handle).state is RunState.SUCCEEDED
    log = executor.run_dir("j-1", 0) / "output.log"
    assert log.stat().st_size < 4096
    text = executor.logs(handle)[0]
    assert text.startswith("before\nREFUSED ") and text.endswith("after\n"), text


def test_output_past_the_log_cap_is_dropped_with_a_line_saying_so(state: Path, wait_final: Wait) -> None:
    executor = LocalExecutor(
        state / "runs", isolation=_users(with_bwrap=True), work_root=state / "work", max_log_bytes=5000
    )
    command = 'python3 -c \'import sys; sys.stdout.write("x" * 4999 + "yz" + "w" * 100000)\'; echo after'
    handle = executor.submit(_request(command, "alpha", "j-1"))
    status = wait_final(executor, handle)
    assert status.state is RunState.SUCCEEDED  # the job is not punished: its output is cut, not its run
    text = executor.logs(handle)[0]
    cap = "stargate: output.log reached its cap of 5000 bytes; the rest of the output is dropped\n"
    assert text == "x" * 4999 + "y" + "\n" + cap, text[-200:]


def test_a_job_that_keeps_its_output_open_in_a_new_session_does_not_keep_the_run_going(
    state: Path, wait_final: Wait
) -> None:
    """The runner copies the pipe until the command's group is gone; a process that left the group (setsid) and
    still holds the pipe does not hold the run's end back more than a moment (its later output is dropped)."""
    executor = _executor(state, Isolation(IsolationMode.USERS))  # no sandbox: setsid escapes the group here
    handle = executor.submit(_request("echo main; setsid sh -c 'sleep 1; echo late; sleep 5' & echo done", "a", "j-1"))
    started = time.monotonic()
    status = wait_final(executor, handle, 20.0)
    assert status.state is RunState.SUCCEEDED and time.monotonic() - started < 10
    assert executor.logs(handle)[0].startswith("main\n")


@pytest.mark.parametrize("way", ["real", "link"])
def test_a_state_directory_under_opt_is_hidden_in_users_mode_too(wait_final: Wait, way: str) -> None:
    """The tmpfs over a state directory under a bound system directory (issue 7 review, finding 1) in ``users``
    mode, reached directly or through a symlink: the job runs in its directory and sees nothing else there."""
    _root()
    base = Path(tempfile.mkdtemp(prefix="stargate-test-", dir="/opt"))
    try:
        base.chmod(0o755)
        (base / "real").mkdir(mode=0o755)
        (base / "link").symlink_to(base / "real")
        home = base / way / ".stargate"
        home.mkdir(mode=0o711)
        (home / "admin-token").write_text("s3cret")
        (home / "admin-token").chmod(0o644)  # readable by any uid, were it visible
        executor = LocalExecutor(
            home / "runs", isolation=_users(with_bwrap=True), work_root=home / "work", installation="i-1"
        )
        command = f"ls -a {home}; cat {base}/real/.stargate/admin-token {base}/link/.stargate/admin-token; pwd"
        handle = executor.submit(_request(command, "alpha", "j-1"))
        assert wait_final(executor, handle).state is RunState.SUCCEEDED
        text = executor.logs(handle)[0]
        assert text.startswith(".\n..\nwork\n") and "s3cret" not in text, text
        assert text.endswith(f"{home}/work/i-1/alpha/j-1/attempt-0\n"), text
    finally:
        _kill_runs(base / "real" / ".stargate" / "runs" / "i-1")
        shutil.rmtree(base, ignore_errors=True)
