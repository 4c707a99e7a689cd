"""The Ray executor against a real local Ray head (one per module, 2 GPUs and 2 ``accel`` units, token auth on).

Runs succeed and fail with their exit codes, cancel stops them, a second submit of an attempt starts nothing, a fresh
executor finds runs again, a withdrawn attempt never starts, logs page by byte offsets, GPUs are Ray resources, a run
Ray forgot is interrupted, health tells a live head from a closed port or a silent one, within its 5 s bound, and
the commands of a head on the server's machine run in a sandbox that hides the server's private directories.
"""

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from engines.ray_head import RayHead, ray_head_fixture
from stargate.domain.executors import RayExecutorConfig
from stargate.executors import RunHandle, RunRequest, RunState, RunStatus, ray_jobs
from stargate.executors.base import ChecksHealth, Executor
from stargate.executors.log_text import relayed
from stargate.executors.ray_jobs import RayExecutor, RayExecutorError
from stargate.executors.ray_sandbox import RaySandbox, on_this_machine

pytestmark = pytest.mark.slow

head = ray_head_fixture(gpus=2, resources={"accel": 2})
TOKEN_ENV = "SG_TEST_RAY_TOKEN"
INSTALLATION = "0123abcd-ffff-4000-8000-000000000000"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


def build(head: RayHead, home: Path, **config: object) -> RayExecutor:
    """An executor built as the server builds it: from a fleet entry and settings, the token from TOKEN_ENV."""
    os.environ[TOKEN_ENV] = head.token
    entry = RayExecutorConfig.model_validate({"id": "ray-east", "kind": "ray", "address": head.address} | config)
    return RayExecutor.from_config(entry, SimpleNamespace(home=home, installation_id=INSTALLATION))


@pytest.fixture(scope="module")
def ray(head: RayHead, home: Path) -> Iterator[RayExecutor]:
    executor = build(head, home, token_env=TOKEN_ENV)
    yield executor
    executor.close()
    os.environ.pop(TOKEN_ENV, None)


def request(job_id: str, command: str, *, gpus: int = 0, **env: str) -> RunRequest:
    return RunRequest(job_id, 1, command, "ray-a", list(range(gpus)), env, team="ml", gpus=gpus, gpus_per_node=gpus)


def wait_final(ray: RayExecutor, handle: RunHandle, timeout_s: float = 30.0) -> RunStatus:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = ray.poll(handle)
        if status.state.is_final():
            return status
        time.sleep(0.1)
    pytest.fail(f"{handle.key} still running after {timeout_s} s")


def ray_status(head: RayHead, sid: str) -> str:
    answer = httpx.get(f"{head.address}/api/jobs/{sid}", headers={"Authorization": f"Bearer {head.token}"})
    return str(answer.json()["status"])


def submissions(head: RayHead) -> list[str]:
    answer = httpx.get(f"{head.address}/api/jobs/", headers={"Authorization": f"Bearer {head.token}"})
    return [str(job["submission_id"]) for job in answer.json()]


def test_runs_end_with_their_exit_codes_and_see_only_their_own_environment(
    ray: RayExecutor, head: RayHead, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert isinstance(ray, Executor) and isinstance(ray, ChecksHealth)
    monkeypatch.setenv("SG_SERVER_SECRET", "hunter2")  # the server's environment never reaches a job
    began = time.monotonic()
    ok = ray.submit(
        request(
            "j-000001", 'echo "job=$STARGATE_JOB_ID a=$STARGATE_ATTEMPT x=$FOO s=${SG_SERVER_SECRET:-none}"', FOO="b r"
        )
    )
    failing = ray.submit(request("j-000002", "echo about to fail; exit 7"))
    killed = ray.submit(request("j-000003", "kill -9 $$"))
    assert ok == RunHandle("ray-east", "sg-0123abcd-j-000001-a1")
    while ray_status(head, ok.key) == "PENDING":
        time.sleep(0.02)
    to_running = time.monotonic() - began
    assert wait_final(ray, ok) == RunStatus(RunState.SUCCEEDED, exit_code=0)
    text, _ = ray.logs(ok)
    assert "job=j-000001 a=1 x=b r s=none" in text
    done = wait_final(ray, failing)
    assert (done.state, done.exit_code) == (RunState.FAILED, 7)
    assert "exit code 7" in done.reason and "\n" not in done.reason
    assert wait_final(ray, killed) == RunStatus(RunState.FAILED, exit_code=137, reason=wait_final(ray, killed).reason)
    with capsys.disabled():
        print(f"\nray: head started in {head.started_s:.1f} s; submit to running {to_running:.2f} s")


def test_a_jobs_process_start_variables_reach_its_command_only_and_cannot_widen_its_gpus(
    ray: RayExecutor, tmp_path: Path
) -> None:
    sneaky = "a b'; touch " + str(tmp_path / "pwned") + ' #"$(id)`id`\\\n'
    command = (
        'echo "P=$PATH L=$LD_LIBRARY_PATH S=$SNEAKY C=${CUDA_VISIBLE_DEVICES-unset} J=$STARGATE_JOB_ID '
        'K=${STARGATE_ENV_PATH-gone}"; exit 3'
    )
    handle = ray.submit(
        request(
            "j-000005",
            command,
            PATH="/nowhere",  # no bash, no python: Ray must not start its workers with it
            LD_LIBRARY_PATH="/opt/lib",
            SNEAKY=sneaky,
            CUDA_VISIBLE_DEVICES="0,1",
            STARGATE_JOB_ID="j-999999",
        )
    )
    done = wait_final(ray, handle, timeout_s=20.0)  # a PATH without Ray's python left it pending for 15 min
    assert (done.state, done.exit_code) == (RunState.FAILED, 3)
    text, _ = ray.logs(handle)
    assert f"P=/nowhere L=/opt/lib S={sneaky} C=unset J=j-000005 K=gone" in text
    assert not (tmp_path / "pwned").exists()
    body = ray._job_body(request("j-000006", "-x", PATH="/only/env", FOO="x y"), "sid")
    assert "/only/env" not in body["entrypoint"] and body["runtime_env"]["env_vars"]["STARGATE_ENV_PATH"] == "/only/env"
    assert body["runtime_env"]["env_vars"]["FOO"] == "x y" and "PATH" not in body["runtime_env"]["env_vars"]


def test_cancel_stops_a_running_job_and_is_idempotent(ray: RayExecutor, head: RayHead) -> None:
    handle = ray.submit(request("j-000010", "echo started; sleep 60"))
    deadline = time.monotonic() + 30
    while "started" not in ray.logs(handle)[0] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ray.poll(handle).state is RunState.RUNNING
    ray.cancel(handle)
    ray.cancel(handle)
    status = wait_final(ray, handle)
    assert status.state is RunState.CANCELLED
    ray.cancel(handle)  # ended: still no error
    ray.cancel(RunHandle("ray-east", "sg-0123abcd-j-nobody-a1"))  # unknown to Ray: nothing to stop


def test_a_second_submit_of_an_attempt_starts_nothing_and_a_fresh_executor_finds_it(
    ray: RayExecutor, head: RayHead, home: Path
) -> None:
    req = request("j-000020", "sleep 0.5; echo once")
    answers: list[RunHandle] = []
    threads = [threading.Thread(target=lambda: answers.append(ray.submit(req))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 3 and len(set(answers)) == 1
    assert ray.submit(req) == answers[0]
    assert submissions(head).count(answers[0].key) == 1
    restarted = build(head, home, token_env=TOKEN_ENV)  # a restarted server: a new executor, same settings
    try:
        assert restarted.find("j-000020", 1) == answers[0]
        assert wait_final(restarted, answers[0]).state is RunState.SUCCEEDED
        assert restarted.logs(answers[0])[0].splitlines().count("once") == 1
    finally:
        restarted.close()


def test_after_find_found_nothing_the_attempt_never_starts(ray: RayExecutor, head: RayHead, tmp_path: Path) -> None:
    assert ray.find("j-000030", 1) is None
    assert (ray.withdrawn_dir / "sg-0123abcd-j-000030-a1").exists()
    with pytest.raises(RayExecutorError, match="withdrawn"):
        ray.submit(request("j-000030", "echo should never run"))
    assert ray.find("j-000030", 1) is None
    other_home = build(head, tmp_path, token_env=TOKEN_ENV)  # no marker here: Ray itself refuses the attempt
    try:
        with pytest.raises(RayExecutorError, match="withdrawn"):
            other_home.submit(request("j-000030", "echo should never run"))
    finally:
        other_home.close()
    assert "should never run" not in ray.logs(RunHandle("ray-east", "sg-0123abcd-j-000030-a1"))[0]
    assert ray.find("j-000020", 2) is None  # another attempt of a job that ran is withdrawn on its own


def test_logs_page_by_byte_offsets_without_splitting_a_character(
    ray: RayExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = ray.submit(request("j-000040", "printf 'héllo wörld ✓\\n%.0s' 1 2 3"))
    assert wait_final(ray, handle).state is RunState.SUCCEEDED
    whole, end = ray.logs(handle)
    assert whole.splitlines().count("héllo wörld ✓") == 3 and end == len(whole.encode())
    assert ray.logs(handle, end) == ("", end)
    assert ray.logs(handle, end + 100) == ("", end + 100)
    monkeypatch.setattr(ray_jobs, "MAX_LOG_CHUNK", 5)
    pieces, offset = [], 0
    while offset < end:
        text, offset = ray.logs(handle, offset)
        assert "\ufffd" not in text
        pieces.append(text)
    assert "".join(pieces) == whole
    with pytest.raises(ValueError, match="≥ 0"):
        ray.logs(handle, -1)


def test_gpus_are_ray_resources_and_a_job_asking_too_many_waits(ray: RayExecutor, head: RayHead, home: Path) -> None:
    one = ray.submit(request("j-000050", 'echo "cuda=$CUDA_VISIBLE_DEVICES gpus=$STARGATE_GPUS"', gpus=1))
    many = ray.submit(request("j-000051", "echo too many", gpus=4))
    accel = build(head, home, token_env=TOKEN_ENV, gpu_resource="accel")
    try:
        custom = accel.submit(request("j-000052", "echo accel ok", gpus=2))
        too_many = accel.submit(request("j-000053", "echo too many accel", gpus=3))
        assert wait_final(ray, one).state is RunState.SUCCEEDED
        text = ray.logs(one)[0]
        assert "gpus=1" in text and ("cuda=0" in text or "cuda=1" in text)
        assert wait_final(accel, custom).state is RunState.SUCCEEDED
        time.sleep(1.0)
        for handle in (many, too_many):
            assert ray.poll(handle) == RunStatus(RunState.RUNNING)
            assert ray_status(head, handle.key) == "PENDING"
            ray.cancel(handle)  # Ray stops a waiting job only once it gets its resources (see the how-to's limits)
            assert ray.poll(handle) == RunStatus(RunState.RUNNING)
    finally:
        accel.close()


def test_runs_ray_forgot_are_interrupted_and_an_unreachable_ray_raises(ray: RayExecutor, home: Path) -> None:
    status = ray.poll(RunHandle("ray-east", "sg-0123abcd-j-404-a1"))  # a head restarted without its job table
    assert status.state is RunState.INTERRUPTED
    assert (
        status.reason
        == f"Ray at {ray.address} has no job sg-0123abcd-j-404-a1 (its head restarted, or the job was deleted)"
    )
    (port,) = _closed_ports(1)
    gone = RayExecutor(f"http://127.0.0.1:{port}", withdrawn_dir=home / "w", timeout_s=2.0)
    with pytest.raises(RayExecutorError, match=f"127.0.0.1:{port}"):
        gone.poll(RunHandle("ray", "sg-local-j-1-a1"))
    with pytest.raises(RayExecutorError):
        gone.submit(request("j-000060", "true"))


def test_health_of_a_live_head_a_closed_port_a_silent_one_and_a_wrong_token(
    ray: RayExecutor, head: RayHead, home: Path
) -> None:
    live = ray.health()
    assert live.reachable and live.nodes == 1 and live.failed_nodes == 0 and not live.down()
    (port,) = _closed_ports(1)
    began = time.monotonic()
    closed = RayExecutor(f"http://127.0.0.1:{port}", withdrawn_dir=home / "w").health()
    assert time.monotonic() - began < 2.0
    assert not closed.reachable and closed.down() and closed.reason.startswith(f"ray at http://127.0.0.1:{port}: ")
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        began = time.monotonic()
        hung = RayExecutor(f"http://127.0.0.1:{silent.getsockname()[1]}", withdrawn_dir=home / "w").health()
        assert time.monotonic() - began <= 5.5
        assert not hung.reachable and "no answer in time" in hung.reason
    wrong = RayExecutor(head.address, token="not-the-token", withdrawn_dir=home / "w")
    assert "token was refused" in wrong.health().reason
    with pytest.raises(RayExecutorError, match="token was refused"):
        wrong.poll(RunHandle("ray", "sg-local-j-1-a1"))


def test_configuration_and_requests_it_cannot_use_are_clear_errors(ray: RayExecutor, home: Path) -> None:
    entry = RayExecutorConfig(id="ray-west", kind="ray", token_env="SG_TEST_UNSET_RAY_TOKEN")
    os.environ.pop("SG_TEST_UNSET_RAY_TOKEN", None)
    with pytest.raises(RayExecutorError, match="SG_TEST_UNSET_RAY_TOKEN") as caught:
        RayExecutor.from_config(entry, SimpleNamespace(home=home, installation_id=None))
    assert "ray-west" in str(caught.value)
    for bad, why in (
        (request("../etc", "true"), "cannot name a Ray job"),
        (request("j-000070", "  "), "runs commands"),
        (request("j-000071", "true", **{"A=B": "1"}), "not a shell name"),
        (request("j-000072", "echo \0"), "NUL"),
    ):
        with pytest.raises(RayExecutorError, match=why):
            ray.submit(bad)
    local = RayExecutor.from_config(RayExecutorConfig(id="ray", kind="ray"), SimpleNamespace(home=home))
    assert local.submission_id("j-000001", 3) == "sg-local-j-000001-a3"


def _closed_ports(count: int) -> list[int]:
    """Ports nothing listens on (bound then released)."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for sock in sockets:
        sock.close()
    return ports


def test_ray_job_details_map_to_run_states() -> None:
    failed = {"status": "FAILED", "driver_exit_code": 3, "message": "Job entrypoint command failed\nlast logs"}
    assert ray_jobs.status_of(failed) == RunStatus(RunState.FAILED, 3, "Job entrypoint command failed")
    assert ray_jobs.status_of({"status": "FAILED", "driver_exit_code": -15}).exit_code == 143
    assert ray_jobs.status_of({"status": "PENDING"}) == RunStatus(RunState.RUNNING)
    assert ray_jobs.status_of({"status": "SUCCEEDED"}) == RunStatus(RunState.SUCCEEDED, 0)
    assert ray_jobs.status_of({"status": "STOPPED"}).state is RunState.CANCELLED
    setup = ray_jobs.status_of({"status": "FAILED", "error_type": "RUNTIME_ENV_SETUP_FAILURE", "message": "pip"})
    assert setup.state is RunState.FAILED and setup.reason.startswith("cannot start")
    died = ray_jobs.status_of({"status": "FAILED", "error_type": "JOB_SUPERVISOR_ACTOR_DIED", "message": "node"})
    assert died.state is RunState.LOST and "node" in died.reason
    assert ray_jobs.status_of({"status": "WEIRD"}).state is RunState.LOST


def test_failed_nodes_are_recent_surprise_deaths_only() -> None:
    now = 1_000_000_000.0
    nodes = [
        {"state": "ALIVE"},
        {"state": "DEAD", "state_message": "Unexpected termination: health check failed", "end_time_ms": now - 1000},
        {"state": "DEAD", "state_message": "Terminated due to preemption", "end_time_ms": now - 5000},
        {"state": "DEAD", "state_message": "Unexpected termination: old", "end_time_ms": now - 3_600_000},
        {"state": "DEAD", "state_message": "Expected termination: received SIGTERM", "end_time_ms": now - 1000},
        {"state": "DEAD", "state_message": "Terminated due to idle (no Ray activity)", "end_time_ms": now - 1000},
        "not a node",
    ]
    assert ray_jobs.count_nodes(nodes, now_ms=now) == (1, 2)


def test_a_local_heads_commands_cannot_see_the_servers_private_directories(head: RayHead, tmp_path: Path) -> None:
    state, database = tmp_path / "state", tmp_path / "db"
    for private in (state, database):
        private.mkdir(mode=0o700)
        (private / "secret").write_text("private-42\n")
    (tmp_path / "link").symlink_to(state)  # a state directory named through a symlink is hidden all the same
    os.environ[TOKEN_ENV] = head.token
    entry = RayExecutorConfig(id="ray-local", kind="ray", address=head.address, token_env=TOKEN_ENV)
    settings = SimpleNamespace(
        home=tmp_path / "link", installation_id=INSTALLATION, private_dirs=(tmp_path / "link", database)
    )
    ray = RayExecutor.from_config(entry, settings)
    assert ray.sandbox is not None and ray.sandbox.hidden == (str(database), str(state))
    command = (
        f"cat {state}/secret {database}/secret {tmp_path}/link/secret; ls -A {state}; umount {state}; "
        f"cat {state}/secret; echo shared > {tmp_path}/out; echo caps $(grep CapEff /proc/self/status); "
        f"cat /proc/$PPID/root{state}/secret /proc/{os.getpid()}/root{state}/secret 2>/dev/null; "
        "echo processes $(ls /proc | grep -c '^[0-9]')"
    )
    try:
        handle = ray.submit(RunRequest("j-000080", 1, command, "ray-a", [], {}, team="ml"))
        done = wait_final(ray, handle, timeout_s=60.0)
        text, _ = ray.logs(handle)
        assert done.state is RunState.SUCCEEDED, (done, text)
        assert "private-42" not in text and text.count("No such file or directory") == 4, text
        assert "caps CapEff: 0000000000000000" in text, text  # no capability: the job cannot unmount the tmpfs
        assert (tmp_path / "out").read_text() == "shared\n"  # the rest of the filesystem is as it is
        # processes of its own: none outside to read the real filesystem through (/proc/<pid>/root)
        assert int(text.rsplit("processes ", 1)[1].split()[0]) < 10, text
    finally:
        ray.close()


def test_a_remote_head_gets_no_sandbox_and_a_local_one_none_without_bubblewrap(home: Path) -> None:
    assert on_this_machine("http://127.0.0.1:8265") and on_this_machine("http://localhost:1")
    assert on_this_machine("http://127.9.9.9:8265") and on_this_machine("http://[::1]:8265")
    assert on_this_machine(f"http://{socket.gethostname()}:8265") and on_this_machine("http://0.0.0.0:8265")
    assert not on_this_machine("http://ray-head:8265") and not on_this_machine("http://203.0.113.7:8265")
    remote = RayExecutor.from_config(
        RayExecutorConfig(id="ray-far", kind="ray", address="http://ray-head:8265"), SimpleNamespace(home=home)
    )
    assert remote.sandbox is None
    assert remote._job_body(request("j-000090", "echo hi"), "sid")["entrypoint"] == relayed("echo hi")  # no sandbox
    remote.close()
    build = (  # a server whose machine has no bwrap (none on its PATH)
        "from types import SimpleNamespace as S; from stargate.domain.executors import RayExecutorConfig as C; "
        "from stargate.executors import build; "
        f"build(C(id='ray', kind='ray'), S(home='{home}'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", build], env={"PATH": "/nonexistent"}, capture_output=True, text=True, timeout=60
    )
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("stargate.executors.ExecutorBuildError: executor 'ray': address http://127.0.0.1:8265 is"), (
        last
    )
    assert "bwrap is not installed" in last and "Install bubblewrap on this machine" in last, last


def test_the_sandbox_is_decided_on_the_heads_side_and_never_skipped_when_it_fails(tmp_path: Path) -> None:
    absent = RaySandbox("/nonexistent/bwrap", (str(tmp_path / "not-here"),))  # a loopback forwarded elsewhere
    ran = subprocess.run(["/bin/sh", "-c", absent.wrap("echo ran as is")], capture_output=True, text=True)
    assert (ran.returncode, ran.stdout) == (0, "ran as is\n")
    broken = RaySandbox("/nonexistent/bwrap", (str(tmp_path),))  # there, and no sandbox can start: never run
    failed = subprocess.run(["/bin/sh", "-c", broken.wrap("echo ran anyway")], capture_output=True, text=True)
    assert failed.returncode == 127 and "ran anyway" not in failed.stdout
