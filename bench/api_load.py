"""API load and scheduling-cycle benchmark: prints figures and ratios against baselines measured in the same run.

1. Submissions: N job submissions (``POST /api/v1/jobs``) by C concurrent keep-alive connections after a warm-up,
   against a real ``stargate up`` on loopback (SQLite; PostgreSQL too with ``--postgres-url`` or
   STARGATE_DATABASE_URL), scheduler off so that no job runs. Baseline: a bare FastAPI endpoint that parses the
   same JSON body and answers 201, served by uvicorn the same way, hit by the same clients. The load generator is a
   minimal HTTP/1.1 client (:class:`LoopbackClient`) whose own CPU use is printed: it shares the cores with the
   server, and a general-purpose client (httpx) used to cost more CPU per request than the server itself, so it
   set the pace of both the server and the baseline. The server's own CPU time per submission (all its threads,
   from /proc) is printed too: steadier than the rate when other work shares the machine. The goal (≥ 1,000
   submissions/s at p99 ≤ 50 ms) is checked on each database.
2. Scheduling cycle: J pending jobs over K clusters. (a) the engine alone (``Scheduler.submit`` + ``cycle``) against
   a naive first-fit scan written here (a Python loop over clusters per job, no quotas); (b) the server's
   ``run_cycle`` over a database holding the jobs (snapshot, engine, one decision transaction, handles recorded)
   with an executor that records handles without starting processes (starting 10,000 processes is not what is
   measured). The goal (≥ 5,000 placements/s) is checked on (b), each database.

Bounded: every part stops at its count or at ``--max-seconds``. Loopback only.

    .venv/bin/python bench/api_load.py                       # N=5,000, C=16, J=10,000, K=500
    .venv/bin/python bench/api_load.py --requests 1000 --skip-cycle
"""

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
from sqlalchemy import make_url

from loadgen import LoadResult, load
from stargate.domain import Cluster, Fleet, JobSpec, Provider, Queue, Quota, Site, Team
from stargate.engine import FleetIndex, JobRequest, Scheduler, get_policy
from stargate.executors import Capabilities, RunHandle, RunRequest, RunState, RunStatus
from stargate.fleetfile import dump_fleet
from stargate.server.auth import Principal, Role
from stargate.server.bootstrap import open_database, prepare
from stargate.server.context import ExecutorRegistry
from stargate.server.scheduling.loop import run_cycle
from stargate.server.services import jobs as job_service
from stargate.server.settings import Settings
from stargate.store import insert_submitted

MODELS = ("H100-SXM", "H200", "B200", "GB200", "MI300X")
BARE_APP = """
import sys
import uvicorn
from fastapi import FastAPI
app = FastAPI()
@app.get("/healthz")
def health() -> dict:
    return {"status": "ok"}
@app.post("/api/v1/jobs", status_code=201)
def submit(body: dict) -> dict:
    return {"id": "j-0", "status": "pending"}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def load_note() -> str:
    """The machine's load averages and cores, for the record."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    """Wait until ``url/healthz`` answers 200; exit with the server's output if it died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"error: the server at {url} exited with code {proc.returncode} before answering")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    sys.exit(f"error: the server at {url} did not answer within {timeout_s:.0f} s")


def process_cpu_s(pid: int) -> float:
    """CPU time (user + system) process ``pid`` used so far, all its threads, s (0 where /proc is missing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(label: str, url: str, token: str, args: argparse.Namespace, pid: int) -> LoadResult:
    """Warm up, then measure ``args.requests`` submissions (and the server's CPU time over them)."""
    asyncio.run(load(url, token, args.warmup, args.concurrency, args.max_seconds))
    before = process_cpu_s(pid)
    seconds, latencies, errors, cpu = asyncio.run(load(url, token, args.requests, args.concurrency, args.max_seconds))
    result = LoadResult(label, len(latencies), seconds, latencies, errors, cpu)
    result.server_cpu_s = process_cpu_s(pid) - before
    return result


def bench_fleet_yaml(path: Path) -> Path:
    """A one-cluster fleet with the queue ``bench-q`` (for the API runs)."""
    fleet = Fleet(
        name="bench-api",
        providers=[Provider(id="local", name="Local", kind="owned")],
        sites=[Site(id="lab", provider="local", region="test")],
        clusters=[
            Cluster(
                id="c0", site="lab", gpu_model="H100-SXM", gpus_per_node=8, nodes=4, price_per_gpu_hour_usd=Decimal(2)
            )
        ],
        teams=[Team(id="bench", name="Bench")],
        queues=[Queue(id="bench-q", team="bench", quotas=[Quota(gpu_model="*", gpus=32)])],
    )
    path.write_text(dump_fleet(fleet))
    return path


def run_stargate(label: str, tmp: Path, database_url: str | None, args: argparse.Namespace) -> LoadResult:
    """Start ``stargate up`` (scheduler off) on a fresh state and measure submissions against it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STARGATE_")}
    env.update(STARGATE_HOME=str(tmp / label / ".stargate"))
    if database_url:
        env["STARGATE_DATABASE_URL"] = database_url
    fleet = bench_fleet_yaml(tmp / f"{label}-fleet.yaml")
    argv = [sys.executable, "-m", "stargate", "up", "--port", str(port), "--fleet", str(fleet)]
    argv += ["--no-scheduler", "--log-level", "warning"]
    return _with_server(label, argv, env, port, args)


def run_bare(args: argparse.Namespace) -> LoadResult:
    """Measure the bare FastAPI endpoint (the baseline)."""
    port = free_port()
    argv = [sys.executable, "-c", BARE_APP, str(port)]
    return _with_server("bare FastAPI endpoint (baseline)", argv, dict(os.environ), port, args)


def _with_server(label: str, argv: list[str], env: dict[str, str], port: int, args: argparse.Namespace) -> LoadResult:
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(url, proc)
        token_file = Path(env.get("STARGATE_HOME", "/nonexistent")) / "admin-token"
        token = token_file.read_text().strip() if token_file.exists() else "none: the baseline takes any token"
        return measure(label, url, token, args, proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def cycle_fleet(clusters: int, teams: int = 20) -> Fleet:
    """``clusters`` clusters of 128 GPUs (16 nodes × 8) over 5 providers and 50 sites; ``teams`` queues sharing
    one cohort, quotas summing to the fleet's GPUs."""
    providers = [Provider(id=f"p{i}", name=f"Provider {i}", kind="cloud") for i in range(5)]
    sites = [Site(id=f"s{i}", provider=f"p{i % 5}", region=f"r{i % 10}") for i in range(50)]
    cluster_list = [
        Cluster(
            id=f"c{i:03d}",
            site=f"s{i % 50}",
            gpu_model=MODELS[i % len(MODELS)],
            gpus_per_node=8,
            nodes=16,
            price_per_gpu_hour_usd=Decimal("1.50") + Decimal(i % 17) / 10,
        )
        for i in range(clusters)
    ]
    share = clusters * 128 // teams
    return Fleet(
        name="bench-cycle",
        providers=providers,
        sites=sites,
        clusters=cluster_list,
        teams=[Team(id=f"t{i}", name=f"Team {i}") for i in range(teams)],
        queues=[
            Queue(id=f"q{i}", team=f"t{i}", cohort="all", quotas=[Quota(gpu_model="*", gpus=share)])
            for i in range(teams)
        ],
    )


def cycle_jobs(count: int, teams: int, seed: int = 7) -> list[JobRequest]:
    """``count`` pending jobs: 1–8 GPUs, a quarter pinned to one GPU model, submitted over the last hour."""
    rng = random.Random(seed)
    return [
        JobRequest(
            id=f"j{n}",
            queue=f"q{n % teams}",
            gpus=rng.choice((1, 1, 2, 4, 8)),
            gpu_models=(rng.choice(MODELS),) if n % 4 == 0 else (),
            priority=500,
            submit_s=3600.0 + n * 0.01,
            duration_s=600.0,
        )
        for n in range(count)
    ]


def naive_cheapest_fit(fleet: Fleet, jobs: list[JobRequest]) -> int:
    """Baseline: for each job in submit order, a Python loop over every cluster object for the cheapest one with
    enough free GPUs of an accepted model (ties: fewest GPUs left); placements made. No quotas, no backfill."""
    clusters = [(c.id, c.gpu_model, float(c.price_per_gpu_hour_usd)) for c in fleet.clusters]
    free = {c.id: c.gpus for c in fleet.clusters}
    placed = 0
    for job in jobs:
        best: tuple[float, int, str] | None = None
        for cluster_id, model, price in clusters:
            left = free[cluster_id] - job.gpus
            if left >= 0 and (not job.gpu_models or model in job.gpu_models):
                key = (price, left, cluster_id)
                best = key if best is None or key < best else best
        if best is not None:
            free[best[2]] -= job.gpus
            placed += 1
    return placed


def engine_until_placed(fleet: Fleet, jobs: list[JobRequest], max_cycles: int = 100) -> tuple[int, int, float, float]:
    """Drive the engine as the server does: each cycle a fresh scheduler, the placed jobs restored, the rest
    submitted, one ``cycle``; until nothing is pending or nothing moves. (placements, cycles, seconds, seconds of
    the first cycle)."""
    epoch = datetime(2026, 1, 1, tzinfo=UTC)
    by_id = {job.id: job for job in jobs}
    placed: dict[str, tuple[str, tuple[int, ...], float]] = {}
    now, cycles, first = 7200.0, 0, 0.0
    t0 = time.perf_counter()
    while len(placed) < len(jobs) and cycles < max_cycles:
        t_cycle = time.perf_counter()
        sched = Scheduler(FleetIndex.from_fleet(fleet, epoch=epoch), get_policy("stargate"))
        for job_id, (cluster, gpu_ids, started) in placed.items():
            sched.restore_running(by_id[job_id], cluster, gpu_ids, started)
        for job in jobs:
            if job.id not in placed:
                sched.submit(job)
        result = sched.cycle(now)
        for start in result.starts:
            placed[start.job_id] = (start.cluster_id, start.gpu_ids, now)
        cycles += 1
        first = first or time.perf_counter() - t_cycle
        if not result.starts:
            break
        now += 1.0
    return len(placed), cycles, time.perf_counter() - t0, first


def bench_engine(fleet: Fleet, jobs: list[JobRequest]) -> float:
    """The engine (driven as the server drives it) vs the naive scan, same jobs and fleet; the naive rate."""
    placed, cycles, seconds, first = engine_until_placed(fleet, jobs)
    t0 = time.perf_counter()
    naive = naive_cheapest_fit(fleet, jobs)
    naive_s = time.perf_counter() - t0
    engine_rate, naive_rate = placed / seconds, naive / naive_s
    print(
        f"  engine, {cycles} cycles              {seconds:8.3f} s  {placed:,} placements  "
        f"{engine_rate:,.0f} placements/s  (first cycle {first:.3f} s;"
        " at most 64 starts per queue per cycle: the policy's scan depth)"
    )
    print(f"  naive cheapest-fit (baseline)  {naive_s:8.3f} s  {naive:,} placements  {naive_rate:,.0f} placements/s")
    print(
        f"  ratio engine / naive           {engine_rate / naive_rate:8.2f}×"
        "  (the engine also keeps quotas, priority order and backfill, and rebuilds its state every cycle)"
    )
    return naive_rate


class RecordingExecutor:
    """Records handles without starting anything: the cycle's decision path is what is measured."""

    kind = "local"
    capabilities = Capabilities()

    def __init__(self) -> None:
        self.cancelled: set[str] = set()

    def submit(self, request: RunRequest) -> RunHandle:
        """A handle named after the run."""
        return RunHandle("local", f"{request.job_id}:{request.attempt}")

    def find(self, job_id: str, attempt: int) -> RunHandle | None:
        """Every run was "started": its handle."""
        return RunHandle("local", f"{job_id}:{attempt}")

    def poll(self, handle: RunHandle) -> RunStatus:
        """Running until cancelled."""
        return RunStatus(RunState.CANCELLED if handle.key in self.cancelled else RunState.RUNNING)

    def cancel(self, handle: RunHandle) -> None:
        """Nothing to stop: the run reads as cancelled from now on."""
        self.cancelled.add(handle.key)

    def logs(self, handle: RunHandle, offset: int = 0) -> tuple[str, int]:
        """No output."""
        return "", offset


def bench_run_cycle(
    label: str, fleet: Fleet, jobs: list[JobRequest], home: Path, url: str | None, max_seconds: float, naive: float
) -> None:
    """Store the jobs as pending, then time ``run_cycle`` until nothing more is placed (goal: 5,000 placements/s)."""
    settings = Settings.from_env({"STARGATE_HOME": str(home), **({"STARGATE_DATABASE_URL": url} if url else {})})
    db = open_database(settings)
    prepared = prepare(settings, db, fleet, now=datetime.now(UTC))
    ctx = prepared.ctx  # its executors replaced in place: a copy would register its metrics a second time
    ctx.executors = ExecutorRegistry(settings, _built={"local": RecordingExecutor()})
    admin = Principal(token_id="bench", name="bench", team=None, role=Role.ADMIN)
    now = datetime.now(UTC)
    rules = job_service.SubmitRules.of(fleet)
    t0 = time.perf_counter()
    with db.write() as session:  # as the API's submission writer stores a batch: checked, then stored at once
        rows = [
            job_service.check(
                admin,
                JobSpec(name=j.id, queue=j.queue, gpus=j.gpus, gpu_models=list(j.gpu_models), command="true"),
                rules,
                now,
            )
            for j in jobs
        ]
        insert_submitted(session, rows)
    stored = time.perf_counter() - t0
    placed, seconds, cycles = 0, 0.0, 0
    pending = len(jobs)
    while pending and cycles < 50 and seconds < max_seconds:
        report = run_cycle(ctx, datetime.now(UTC))
        cycles += 1
        placed += report.placed
        seconds += report.duration_s
        pending = report.pending_after
    db.close()
    print(f"  {label}: stored {len(jobs):,} pending jobs in {stored:.2f} s (one transaction)")
    rate = placed / seconds if seconds else 0.0
    print(
        f"  {label}: run_cycle ×{cycles}: {placed:,} placements in {seconds:.2f} s = "
        f"{rate:,.0f} placements/s, {pending:,} still pending"
        " (each cycle: poll, snapshot, engine, decision transaction, handles recorded)"
    )
    goal = "met" if rate >= 5000 and not pending else "NOT met"
    print(f"  {label}: ratio to the naive scan {rate / naive:.2f}×; goal ≥ 5,000 placements/s: {goal}")


@contextmanager
def fresh_postgres(admin_url: str) -> Iterator[str]:
    """A new empty database on the server of ``admin_url`` (dropped afterwards), so the bench never touches data."""
    url = make_url(admin_url)
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"stargate_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="Measured submissions per server (default 5000).")
    parser.add_argument("--warmup", type=int, default=300, help="Warm-up submissions per server (default 300).")
    parser.add_argument("--concurrency", type=int, default=16, help="Concurrent clients (default 16).")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="Time bound of each load run, s.")
    parser.add_argument("--postgres-url", default=os.environ.get("STARGATE_DATABASE_URL"), help="PostgreSQL URL.")
    parser.add_argument("--jobs", type=int, default=10_000, help="Pending jobs for the cycle part (default 10000).")
    parser.add_argument("--clusters", type=int, default=500, help="Clusters for the cycle part (default 500).")
    parser.add_argument("--skip-api", action="store_true", help="Skip the submissions part.")
    parser.add_argument("--skip-cycle", action="store_true", help="Skip the scheduling-cycle part.")
    return parser.parse_args()


def main() -> None:
    """Run the parts asked for and print their figures."""
    args = parse_args()
    print(f"machine: {load_note()}; Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="stargate-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if not args.skip_api:
            print(
                f"\n== submissions: {args.requests:,} after {args.warmup} warm-up, {args.concurrency} clients, loopback"
            )
            bare = run_bare(args)
            print(bare.line())
            results = [run_stargate("stargate up, SQLite", tmp, None, args)]
            if args.postgres_url:
                with fresh_postgres(args.postgres_url) as url:
                    results.append(run_stargate("stargate up, PostgreSQL", tmp, url, args))
            for result in results:
                print(result.line())
                print(
                    f"{'':<32} ratio to the bare endpoint: {result.rate / bare.rate:.2f}× the rate, "
                    f"{result.cpu_per_request_ms / bare.cpu_per_request_ms:.2f}× the server CPU per request"
                )
            for result in results:
                met = result.rate >= 1000 and result.percentile(99) <= 50
                print(f"goal, {result.label} (≥ 1,000 submissions/s, p99 ≤ 50 ms): {'met' if met else 'NOT met'}")
            print(f"  {load_note()}")
        if not args.skip_cycle:
            teams = 20
            print(f"\n== scheduling cycle: {args.jobs:,} pending jobs over {args.clusters} clusters")
            fleet, jobs = cycle_fleet(args.clusters, teams), cycle_jobs(args.jobs, teams)
            naive = bench_engine(fleet, jobs)
            bench_run_cycle("server, SQLite", fleet, jobs, tmp / "cycle-sqlite", None, args.max_seconds, naive)
            if args.postgres_url:
                with fresh_postgres(args.postgres_url) as url:
                    bench_run_cycle("server, PostgreSQL", fleet, jobs, tmp / "cycle-pg", url, args.max_seconds, naive)
            print(f"  {load_note()}")
    print("\ndone")


if __name__ == "__main__":
    main()
