"""A simulation of a real server (``stargate up``, a process of its own) runs in a child process of that server: the
server answers fast while it runs, and no simulation outlives the server, whether it is stopped (SIGTERM) or killed
(SIGKILL)."""

import contextlib
import os
import pickle
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from integration.server.stargate_harness import TINY_FLEET
from stargate.fleetfile import load_fleet
from stargate.server.services.sim_child import Child
from stargate.sim import SimConfig
from stargate.traces import read_trace

STARTUP_TIMEOUT_S = 60.0
CHILD = "stargate.server.services.sim_child"


def _long_trace(traces: Path, jobs: int = 160_000) -> Path:
    """``jobs`` one-GPU jobs of 1 s: 160,000 take over 10 s to simulate on the tiny fleet, 40,000 over 2 s."""
    traces.mkdir(exist_ok=True)
    path = traces / "long.csv"
    rows = "".join(f"j{i},{i // 8},1,1,alpha-q\n" for i in range(jobs))
    path.write_text("id,submit_s,duration_s,gpus,queue\n" + rows)
    return path


def _start(home: Path, traces: Path) -> tuple[subprocess.Popen[str], str]:
    """``stargate up`` on a free port with the scheduler on, offering ``traces``; the process and its URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STARGATE_")}
    env |= {"STARGATE_HOME": str(home), "STARGATE_TRACES_DIR": str(traces)}
    args = ["up", "--port", "0", "--interval", "0.05", "--fleet", str(TINY_FLEET)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "stargate", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    seen = []
    while time.monotonic() < deadline and (line := proc.stdout.readline()):
        seen.append(line)
        if match := re.match(r"listening on (http://\S+)", line):
            return proc, match[1]
    proc.kill()
    raise AssertionError(f"stargate up did not start: {seen}")


def _child_of(pid: int, timeout_s: float = 10.0) -> psutil.Process:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = []
        for child in psutil.Process(pid).children():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                if CHILD in " ".join(child.cmdline()):  # a child gone or a zombie is no simulation
                    found.append(child)
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError("no simulation process was started")


def test_a_servers_simulation_runs_in_its_child_the_api_stays_fast_and_sigterm_ends_both(tmp_path: Path) -> None:
    _long_trace(tmp_path / "traces")
    proc, url = _start(tmp_path / "home", tmp_path / "traces")
    try:
        auth = {"Authorization": f"Bearer {(tmp_path / 'home' / 'admin-token').read_text().strip()}"}
        with httpx.Client(base_url=url, headers=auth, timeout=10) as client:
            made = client.post("/api/v1/simulations", json={"trace": "long.csv"})
            assert made.status_code == 201, made.text
            child = _child_of(proc.pid)
            assert child.pid != proc.pid
            time.sleep(1.0)  # the child has its jobs and simulates
            took = []
            for _ in range(20):
                t0 = time.perf_counter()
                assert client.get("/api/v1/jobs").status_code == 200
                took.append(time.perf_counter() - t0)
                time.sleep(0.02)
            assert client.get(f"/api/v1/simulations/{made.json()['id']}").json()["status"] == "running"
            assert statistics.median(took) < 0.050, sorted(took)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        child.wait(timeout=5)  # psutil.TimeoutExpired: the simulation outlived its server
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_simulation_whose_server_is_killed_exits(tmp_path: Path) -> None:
    """The server is killed outright (SIGKILL: no exit handler runs): its child dies with it."""
    trace = read_trace(_long_trace(tmp_path / "traces", 40_000), "native")
    script = (
        "import pickle, sys, time\n"
        "from stargate.server.services.sim_child import Child\n"
        "fleet, config, start, jobs = pickle.load(open(sys.argv[1], 'rb'))\n"
        "child = Child.start(4096)\n"
        "print(child.pid, flush=True)\n"
        "child.send_work(fleet, config, start, jobs)\n"
        "time.sleep(60)\n"
    )
    work = tmp_path / "work.pickle"
    work.write_bytes(pickle.dumps((load_fleet(TINY_FLEET), SimConfig(), trace.start, trace.jobs)))
    server = subprocess.Popen([sys.executable, "-c", script, str(work)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        child = psutil.Process(int(server.stdout.readline()))
        time.sleep(1.0)
        assert child.is_running() and child.ppid() == server.pid
        server.kill()
        server.wait()
        child.wait(timeout=2)  # psutil.TimeoutExpired: it outlived its server
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_a_child_sent_a_run_the_engine_refuses_says_so_in_one_line() -> None:
    """What the runner records as the run's error: one line."""
    child = Child.start(4096)
    try:
        child.send_work(load_fleet(TINY_FLEET), SimConfig(policy="nope"), None, [])
        said = None
        deadline = time.monotonic() + 20
        while said is None:
            assert time.monotonic() < deadline
            said = child.receive(0.1)
        assert said[0] == "error" and said[1].startswith("simulation failed: ") and "\n" not in said[1]
    finally:
        child.stop()
