"""The simulations API on SQLite and PostgreSQL: a run through the API gives the figures the simulator gives for the
same input, bad requests are located 422s that store nothing, roles, the listing of what may be picked (no path a
request names is opened), cancel, the queue's bound, and runs a stopped server left are failed at its next start.
A run goes on in a child process of the server: the API stays fast meanwhile, cancel and the wall-time limit kill
it at once, and the memory limit fails it (a real server stopped with its children: test_simulations_isolation.py).

The runs with thousands of jobs (progress, cancel, a full queue, the child process) are on SQLite only: what they
test is the runner's, not the database's."""

import contextlib
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from integration.server.stargate_harness import TINY_FLEET, Harness
from stargate.fleetfile import load_fleet
from stargate.server.app import create_app
from stargate.server.auth import Role
from stargate.server.limits import SettingsError
from stargate.server.services import tokens as token_service
from stargate.server.services.sim_runner import STOPPED, Limits, Runner, runner_name
from stargate.sim import SimConfig, run_simulation
from stargate.store.models import SimulationRow
from stargate.store.repositories import simulations as repo
from stargate.traces import read_trace

URL = "/api/v1/simulations"
TIMING = ("wall_s", "events_per_s", "jobs_per_s", "peak_rss_mb")
"""The fields of a summary that measure the run, not its decisions."""
TINY_TRACE = """id,submit_s,duration_s,gpus,queue,gpu_models
a,0,3600,4,alpha-q,H100-SXM
b,60,7200,8,alpha-q,H100-SXM
c,120,1800,4,beta-q,GB200
d,180,600,2,alpha-q,
e,240,900,16,alpha-q,
"""


def _runner(h: Harness) -> Runner:
    runner: Runner = h.app.state.simulations
    return runner


def _wait(h: Harness, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not _runner(h).idle():
        assert time.monotonic() < deadline, "the simulation did not end"
        time.sleep(0.01)


def _post(h: Harness, role: str = "admin", team: str | None = None, **body: Any) -> Any:
    return h.client.post(URL, json=body, headers=h.headers(role, team))


def _count(h: Harness) -> int:
    with h.ctx.db.read() as session:
        return repo.count(session)


def _big_trace(jobs: int) -> str:
    """``jobs`` one-GPU jobs of 1 s, eight a second: the tiny fleet runs them without a queue. The simulator calls
    its progress hook every 20,000 events: at 10,000 jobs settled."""
    return "id,submit_s,duration_s,gpus,queue\n" + "".join(f"j{i},{i // 8},1,1,alpha-q\n" for i in range(jobs))


def _long_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The name of a listed trace of 160,000 one-GPU jobs of 1 s that the tiny fleet takes over 10 s to replay (about
    12 s here); a listed trace, because an upload that large is over the body limit."""
    traces = tmp_path / "traces"
    traces.mkdir(exist_ok=True)
    rows = "".join(f"j{i},{i // 8},1,1,alpha-q\n" for i in range(160_000))
    (traces / "long.csv").write_text("id,submit_s,duration_s,gpus,queue\n" + rows)
    monkeypatch.setenv("STARGATE_TRACES_DIR", str(traces))
    return "long.csv"


def _children() -> list[psutil.Process]:
    """This (the server's) process's simulation children (a child of another test that is gone or a zombie not
    yet reaped is no simulation: its command line cannot be read)."""
    found = []
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            if "stargate.server.services.sim_child" in " ".join(child.cmdline()):
                found.append(child)
    return found


def _running(h: Harness, sim_id: str, timeout_s: float = 10.0) -> psutil.Process:
    """Wait until ``sim_id`` runs, and its process."""
    deadline = time.monotonic() + timeout_s
    while True:
        assert time.monotonic() < deadline, "the simulation did not start"
        status = h.client.get(f"{URL}/{sim_id}", headers=h.headers()).json()["status"]
        found = _children()
        if status == "running" and found:
            assert len(found) == 1
            return found[0]
        time.sleep(0.01)


def test_a_run_through_the_api_gives_the_simulators_figures(harness: Harness, tmp_path: Path) -> None:
    made = _post(harness, "member", "alpha", trace_text=TINY_TRACE, trace_format="native", seed=3, name="tiny")
    assert made.status_code == 201, made.text
    sim = made.json()
    assert (sim["status"], sim["progress"], sim["result"], sim["name"]) == ("queued", 0.0, None, "tiny")
    assert sim["id"].startswith("sim-") and sim["created_by"] == "token:member-alpha"
    assert sim["request"]["trace"]["uploaded"]["bytes"] == len(TINY_TRACE.encode())
    assert sim["request"]["fleet"]["name"] == "tiny" and "current" in sim["request"]["fleet"]
    _wait(harness)
    done = harness.client.get(f"{URL}/{sim['id']}", headers=harness.headers("viewer", "beta")).json()
    assert (done["status"], done["progress"], done["error"]) == ("succeeded", 1.0, None)
    assert done["started_at"] is not None and done["finished_at"] >= done["started_at"]

    path = tmp_path / "tiny.csv"
    path.write_text(TINY_TRACE)
    trace = read_trace(path, "native")
    expected, _ = run_simulation(load_fleet(TINY_FLEET), trace.jobs, SimConfig(seed=3), start=trace.start)
    got = done["result"]
    assert {k: v for k, v in got.items() if k not in (*TIMING, "trace")} == {
        k: v for k, v in expected.items() if k not in TIMING
    }
    assert got["jobs_total"] == 5 and got["jobs_finished"] + got["jobs_rejected"] == 5
    assert got["trace"] == {"source": "(uploaded)", "jobs": 5, "skipped": {}, "bad_rows": 0, "notes": {}}
    listed = harness.client.get(URL, headers=harness.headers("viewer", "beta")).json()
    assert [s["id"] for s in listed] == [sim["id"]]
    assert listed[0]["figures"]["jobs_total"] == 5 and listed[0]["figures"]["cost_usd"] == expected["cost_usd"]


def test_an_example_fleet_and_a_listed_trace_run_and_the_listing_offers_only_traces(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    traces = tmp_path / "traces"
    (traces / "mine").mkdir(parents=True)
    (traces / "mine" / "small.csv").write_text(TINY_TRACE.replace("alpha-q", "vc1").replace("beta-q", "vc1"))
    (traces / "nodes.csv").write_text("sn,cpu_milli,memory_mib,gpu,model\nn0,1,1,8,T4\n")  # not a trace
    (tmp_path / "secret.csv").write_text(TINY_TRACE)
    (traces / "escape.csv").symlink_to(tmp_path / "secret.csv")  # a link out of the directory: not offered
    monkeypatch.setenv("STARGATE_TRACES_DIR", str(traces))
    picks = harness.client.get(f"{URL}/traces", headers=harness.headers("viewer", "alpha")).json()
    names = {t["name"]: t for t in picks["traces"]}
    size = (traces / "mine" / "small.csv").stat().st_size
    assert names["mine/small.csv"] == {
        "name": "mine/small.csv",
        "format": "native",
        "bytes": size,
        "source": "traces_dir",
    }
    assert "nodes.csv" not in names and "escape.csv" not in names
    assert names["examples/stargate-2025/workload.csv"]["format"] == "native"
    assert "current" in picks["fleets"] and "examples/philly" in picks["fleets"]
    assert picks["limits"]["max_waiting"] == 4 and "gittins" in picks["policies"]

    made = _post(harness, trace="mine/small.csv", fleet="examples/philly", policy="fifo")
    assert made.status_code == 201, made.text
    _wait(harness)
    done = harness.client.get(f"{URL}/{made.json()['id']}", headers=harness.headers()).json()
    assert done["status"] == "succeeded", done["error"]
    assert (done["result"]["policy"], done["result"]["trace"]["source"]) == ("fifo", "mine/small.csv")
    assert done["request"]["fleet"] == {"example": "examples/philly", "name": load_fleet(Path("examples/philly")).name}


BAD = [
    ({"trace_text": TINY_TRACE, "trace_format": "native", "policy": "best"}, "body.policy: found 'best', expected one "
     "of fifo, gittins, las, srtf, stargate"),
    ({"trace_text": TINY_TRACE.replace("b,60,7200", "b,60,-5"), "trace_format": "native"}, "body.trace_text:3: "),
    ({"trace_text": TINY_TRACE, "trace_format": "csv"}, "body.trace_format: found 'csv', expected one of philly"),
    ({"trace_text": TINY_TRACE}, "body.trace_format: found nothing"),
    ({"trace": "../../etc/passwd"}, "body.trace: found '../../etc/passwd', expected a trace listed by"),
    ({"trace": "/etc/passwd"}, "body.trace: found '/etc/passwd', expected a trace listed by"),
    ({"trace": "examples/stargate-2025/workload.csv", "trace_format": "philly"}, "body.trace_format: found 'philly', "
     "expected 'native'"),
    ({"trace": "examples/stargate-2025/workload.csv", "trace_text": TINY_TRACE}, "body: found both trace and trace_"),
    ({}, "body.trace: found nothing"),
    ({"trace_text": TINY_TRACE, "trace_format": "native", "fleet": "../examples/philly"}, "body.fleet: found "
     "'../examples/philly', expected 'current' or one of examples/"),
    ({"trace_text": TINY_TRACE, "trace_format": "native", "fleet_yaml": "name: x\nclusters:\n  - id: 5\n"},
     "invalid fleet: body.fleet_yaml:"),
    ({"trace_text": TINY_TRACE, "trace_format": "native", "seed": -1}, "body.seed: found -1"),
    ({"trace_text": TINY_TRACE, "trace_format": "native", "scale_arrivals": 0}, "body.scale_arrivals: found 0"),
    ({"trace_text": TINY_TRACE, "trace_format": "native", "estimates": "guess"}, "body.estimates: found 'guess', "
     "expected learned, trace, actual"),
    ({"trace_text": "id,submit_s,duration_s,gpus,queue\n", "trace_format": "native"}, "body.trace_text: found no jobs"),
    ({"trace_text": TINY_TRACE, "trace_format": "native", "bogus": 1}, "body.bogus: found unknown key 'bogus'"),
]  # fmt: skip


def test_a_bad_request_is_a_located_422_and_stores_nothing(harness: Harness) -> None:
    for body, message in BAD:
        response = _post(harness, **body)
        assert response.status_code == 422, response.text
        assert message in response.json()["detail"], body
    assert _count(harness) == 0 and _runner(harness).idle()


def test_a_bad_fleet_upload_lists_its_problems_located(harness: Harness) -> None:
    fleet = TINY_FLEET.read_text().replace("gpus_per_node: 4\n    nodes: 2", "gpus_per_node: four\n    nodes: 2")
    response = _post(harness, trace_text=TINY_TRACE, trace_format="native", fleet_yaml=fleet)
    assert response.status_code == 422
    line = next(i for i, text in enumerate(fleet.splitlines(), 1) if "four" in text)
    assert f"body.fleet_yaml:{line}:" in response.json()["detail"] and "gpus_per_node" in response.json()["detail"]
    assert _count(harness) == 0


def test_jobs_over_the_servers_limit_are_refused_and_max_jobs_takes_the_first(harness: Harness) -> None:
    _runner(harness).limits = Limits(max_jobs=3)
    refused = _post(harness, trace_text=TINY_TRACE, trace_format="native")
    assert refused.status_code == 422
    assert "the trace has 5 jobs, over this server's limit of 3 jobs" in refused.json()["detail"]
    made = _post(harness, trace_text=TINY_TRACE, trace_format="native", max_jobs=3)
    assert made.status_code == 201, made.text
    _wait(harness)
    result = harness.client.get(f"{URL}/{made.json()['id']}", headers=harness.headers()).json()["result"]
    assert (result["jobs_total"], result["trace"]["jobs"]) == (3, 5)


def test_roles_viewers_read_members_run_providers_nothing(harness: Harness) -> None:
    body = {"trace_text": TINY_TRACE, "trace_format": "native"}
    refused = _post(harness, "viewer", "alpha", **body)
    assert refused.status_code == 403 and "'admin' or 'member' role" in refused.json()["detail"]
    made = _post(harness, "member", "beta", **body)
    assert made.status_code == 201
    sim_id = made.json()["id"]
    with harness.ctx.db.write() as session:
        _, provider = token_service.create(session, "p", None, Role.PROVIDER, datetime.now(UTC), provider="lab")
    for method, path in (("GET", URL), ("GET", f"{URL}/{sim_id}"), ("GET", f"{URL}/traces"), ("POST", URL)):
        answer = harness.client.request(method, path, json=body, headers={"Authorization": f"Bearer {provider}"})
        assert answer.status_code == 403, (method, path)
    assert harness.client.get(f"{URL}/{sim_id}", headers=harness.headers("viewer", "alpha")).status_code == 200
    assert harness.client.post(f"{URL}/{sim_id}/cancel", headers=harness.headers("viewer", "alpha")).status_code == 403
    assert harness.client.get(URL).status_code == 401
    missing = harness.client.get(f"{URL}/sim-nope", headers=harness.headers())
    assert missing.status_code == 404 and missing.json()["detail"] == "simulation 'sim-nope' not found"
    _wait(harness)
    over = harness.client.post(f"{URL}/{sim_id}/cancel", headers=harness.headers("member", "alpha"))
    assert over.status_code == 409 and "has ended (succeeded)" in over.json()["detail"]


def test_progress_rises_from_0_to_1(make_harness: Callable[[str], Harness], sqlite_url: str) -> None:
    h = make_harness(sqlite_url)
    sim_id = _post(h, trace_text=_big_trace(14_000), trace_format="native").json()["id"]
    seen: list[tuple[str, float]] = []
    deadline = time.monotonic() + 30
    while not seen or seen[-1][0] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline
        now = h.client.get(f"{URL}/{sim_id}", headers=h.headers()).json()
        seen.append((now["status"], now["progress"]))
        time.sleep(0.01)
    progress = [p for _, p in seen]
    assert seen[0][1] == 0.0 and seen[-1] == ("succeeded", 1.0)
    assert progress == sorted(progress)
    assert any(0 < p < 1 for p in progress), seen  # written from the simulator's hook while it ran


def test_cancel_stops_a_running_simulation_and_a_queued_one(
    make_harness: Callable[[str], Harness], sqlite_url: str
) -> None:
    h = make_harness(sqlite_url)
    big = {"trace_text": _big_trace(10_500), "trace_format": "native"}
    running = _post(h, **big).json()["id"]
    queued = _post(h, trace_text=TINY_TRACE, trace_format="native").json()["id"]
    deadline = time.monotonic() + 10
    while h.client.get(f"{URL}/{running}", headers=h.headers()).json()["status"] == "queued":
        assert time.monotonic() < deadline
        time.sleep(0.005)
    for sim_id in (queued, running):
        answer = h.client.post(f"{URL}/{sim_id}/cancel", headers=h.headers("member", "alpha"))
        assert answer.status_code == 200 and answer.json()["status"] == "cancelled"
    _wait(h)
    for sim_id in (running, queued):
        final = h.client.get(f"{URL}/{sim_id}", headers=h.headers()).json()
        assert (final["status"], final["result"]) == ("cancelled", None)
        assert final["progress"] < 1 and final["finished_at"] is not None


def test_a_full_queue_is_429_and_the_wall_time_limit_fails_a_run(
    make_harness: Callable[[str], Harness], sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The child is killed at the limit wherever it is: the limit is one a small run stays under, not 0 s, which the
    # in-process runner only checked at the simulator's progress reports.
    h = make_harness(sqlite_url)
    _runner(h).limits = Limits(max_wall_s=2.0, max_waiting=1)
    first = _post(h, trace=_long_trace(tmp_path, monkeypatch)).json()["id"]
    second = _post(h, trace_text=TINY_TRACE, trace_format="native").json()["id"]
    refused = _post(h, trace_text=TINY_TRACE, trace_format="native")
    assert refused.status_code == 429
    assert "runs one simulation at a time and 1 are waiting" in refused.json()["detail"]
    assert _count(h) == 2
    _wait(h, 30)
    failed = h.client.get(f"{URL}/{first}", headers=h.headers()).json()
    assert failed["status"] == "failed" and failed["result"] is None
    assert failed["error"].startswith("stopped after 2 s of wall time, this server's limit for one simulation")
    assert not _children()
    assert h.client.get(f"{URL}/{second}", headers=h.headers()).json()["status"] == "succeeded"  # too small to stop


def test_runs_a_stopped_server_left_are_failed_at_its_next_start(harness: Harness) -> None:
    at = datetime(2026, 12, 3, tzinfo=UTC)
    mine, other = runner_name(harness.ctx), "elsewhere:/srv/stargate"
    rows = [("sim-running", "running", mine), ("sim-queued", "queued", mine), ("sim-other", "running", other)]
    with harness.ctx.db.write() as session:
        for sim_id, status, runner in rows:
            row = SimulationRow(id=sim_id, created_at=at, created_by="token:x", runner=runner, status=status,
                                progress=0.5 if status == "running" else 0.0, request={})  # fmt: skip
            repo.add(session, row)
    create_app(harness.ctx)  # the server starts again over the same database and state directory
    with harness.ctx.db.read() as session:
        found = {r: repo.get(session, r) for r, _, _ in rows}
    assert all(found[r] is not None for r in found)
    assert [(found[r].status, found[r].error) for r in ("sim-running", "sim-queued")] == [("failed", STOPPED)] * 2  # type: ignore[union-attr]
    assert found["sim-other"].status == "running"  # type: ignore[union-attr]


def test_a_simulation_runs_in_a_child_process_the_api_stays_fast_and_cancel_kills_it_at_once(
    make_harness: Callable[[str], Harness], sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = make_harness(sqlite_url)
    h.submit()  # GET /jobs lists something
    sim_id = _post(h, trace=_long_trace(tmp_path, monkeypatch)).json()["id"]
    child = _running(h, sim_id)
    assert child.pid != os.getpid() and child.is_running()
    took = []
    for _ in range(20):
        t0 = time.perf_counter()
        assert h.client.get("/api/v1/jobs", headers=h.headers()).status_code == 200
        took.append(time.perf_counter() - t0)
        time.sleep(0.02)
    assert statistics.median(took) < 0.050, sorted(took)  # about 10 ms; 100 ms with the run in the server's process

    deadline = time.monotonic() + 15
    while h.client.get(f"{URL}/{sim_id}", headers=h.headers()).json()["progress"] == 0:  # in the middle of the run
        assert time.monotonic() < deadline
        time.sleep(0.05)
    t0 = time.monotonic()
    assert h.client.post(f"{URL}/{sim_id}/cancel", headers=h.headers()).json()["status"] == "cancelled"
    child.wait(timeout=2.0)  # psutil.TimeoutExpired past 2 s
    assert time.monotonic() - t0 < 2.0 and not _children()
    _wait(h, 5)
    final = h.client.get(f"{URL}/{sim_id}", headers=h.headers()).json()
    assert (final["status"], final["result"], final["error"]) == ("cancelled", None, None)
    assert 0 < final["progress"] < 1  # cancelled in the middle: the run had not ended by itself


def test_a_run_over_the_memory_limit_fails_saying_so(make_harness: Callable[[str], Harness], sqlite_url: str) -> None:
    h = make_harness(sqlite_url)
    _runner(h).limits = Limits(max_memory_mb=1)  # below what the interpreter itself takes: its first allocations fail
    sim_id = _post(h, trace_text=_big_trace(2_000), trace_format="native").json()["id"]
    _wait(h)
    failed = h.client.get(f"{URL}/{sim_id}", headers=h.headers()).json()
    assert (failed["status"], failed["result"]) == ("failed", None)
    assert failed["error"] == (
        "stopped at 1 MB of memory, this server's limit for one simulation (STARGATE_SIM_MAX_MEMORY_MB); replay "
        "fewer jobs (max_jobs) or stop earlier (until_s)"
    )
    _runner(h).limits = Limits()
    again = _post(h, trace_text=_big_trace(2_000), trace_format="native").json()["id"]
    _wait(h)
    assert h.client.get(f"{URL}/{again}", headers=h.headers()).json()["status"] == "succeeded"


def test_the_memory_limit_is_a_setting() -> None:
    assert Limits.from_env({"STARGATE_SIM_MAX_MEMORY_MB": "8_192"}).max_memory_mb == 8192
    assert Limits.from_env({}).max_memory_mb == 4096
    with pytest.raises(SettingsError, match=r"^STARGATE_SIM_MAX_MEMORY_MB: found '12'; expected a whole number from "):
        Limits.from_env({"STARGATE_SIM_MAX_MEMORY_MB": "12"})
