"""``GET /api/v1/fleet/usage`` latency with 10,000 jobs in the database: median and p95, against ``GET /api/v1/fleet``
on the same server in the same run (the baseline: a fleet read without the runs).

A real ``stargate up`` (scheduler off) on loopback, SQLite and, with ``--postgres-url`` (or
STARGATE_DATABASE_URL), a fresh PostgreSQL database. The bench writes J jobs, each with one run, into the server's
database while it runs: placed at random over the last 36 h over the fleet's clusters, two thirds ended (the job
finished then) after 10 min to 6 h, the rest still running, so most of them fall in the default 24 h window. Then
one keep-alive client alternates the two requests (a warm-up first) and prints each one's median and p95 latency,
the ratio, and, measured in the bench's own process, the split of a usage answer into its one query and the
sampling. The goal: the usage answer in well under 100 ms.

    .venv/bin/python bench/fleet_usage.py                      # J=10,000, 50 clusters, 200 points, ~30 s
    .venv/bin/python bench/fleet_usage.py --postgres-url postgresql+psycopg://USER:PASSWORD@127.0.0.1:5432/DB
"""

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import text

from api_load import cycle_fleet, free_port, fresh_postgres, load_note, wait_healthy
from stargate.domain import Fleet, JobSpec
from stargate.engine import usage
from stargate.fleetfile import dump_fleet
from stargate.server.auth import Principal, Role
from stargate.server.bootstrap import open_database
from stargate.server.services import jobs as job_service
from stargate.server.settings import Settings
from stargate.store import insert_submitted
from stargate.store.repositories import runs as run_repo
from stargate.store.repositories import usage as usage_repo

ADMIN = Principal(token_id="bench", name="bench", team=None, role=Role.ADMIN)


def fill(settings: Settings, fleet: Fleet, jobs: int, now: datetime, seed: int = 11) -> None:
    """Write ``jobs`` jobs with one run each (see the module docstring) in one transaction."""
    rng = random.Random(seed)
    clusters = [c.id for c in fleet.clusters]
    at = now - timedelta(hours=40)
    db = open_database(settings)
    try:
        with db.write() as session:
            rules = job_service.SubmitRules.of(fleet)
            rows = [  # as the API's submission writer stores a batch: checked, then stored at once
                job_service.check(
                    ADMIN, JobSpec(name=f"job-{n}", queue=f"q{n % 20}", gpus=gpus, command="true"), rules, at
                )
                for n, gpus in enumerate(rng.choices((1, 2, 4, 8), k=jobs))
            ]
            ids = insert_submitted(session, rows)
            runs = []
            for job_id, row in zip(ids, rows, strict=True):
                placed = now - timedelta(seconds=rng.uniform(0, 36 * 3600))
                ended = placed + timedelta(seconds=rng.uniform(600, 6 * 3600)) if rng.random() < 2 / 3 else None
                ended = ended if ended is None or ended < now else None
                runs.append(
                    {
                        "job_id": job_id,
                        "attempt": 0,
                        "executor": "local",
                        "cluster": rng.choice(clusters),
                        "created_at": placed,
                        "gpus": row["gpus"],
                        "ended": ended is not None,
                        "ended_at": ended,
                    }
                )
            run_repo.add_many(session, runs)
            session.execute(
                text("UPDATE jobs SET finished_at = (SELECT r.ended_at FROM runs r WHERE r.job_id = jobs.id)")
            )
    finally:
        db.close()


def in_process(settings: Settings, clusters: list[str], points: int, repeat: int = 20) -> tuple[float, float, int]:
    """Median ms of the one query and of the sampling for the default window, and the runs it read."""
    db = open_database(settings)
    query_ms, sample_ms, count = [], [], 0
    try:
        for _ in range(repeat):
            now = datetime.now(UTC)
            at = usage.sample_instants(now - timedelta(hours=24), now, points)
            t0 = time.perf_counter()
            with db.read() as session:
                runs = usage_repo.held_between(session, at[0], at[-1])
            t1 = time.perf_counter()
            usage.gpus_held(runs, at, clusters, now)
            t2 = time.perf_counter()
            query_ms.append((t1 - t0) * 1000)
            sample_ms.append((t2 - t1) * 1000)
            count = len(runs)
    finally:
        db.close()
    return statistics.median(query_ms), statistics.median(sample_ms), count


def p95(values: list[float]) -> float:
    """The 95th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def bench(label: str, tmp: Path, database_url: str | None, args: argparse.Namespace) -> None:
    """Start a server on a fresh state, fill it, time both requests alternately and print the figures."""
    home = tmp / label.replace(" ", "-") / ".stargate"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STARGATE_")}
    env["STARGATE_HOME"] = str(home)
    if database_url:
        env["STARGATE_DATABASE_URL"] = database_url
    fleet = cycle_fleet(args.clusters)
    fleet_file = tmp / f"{label.replace(' ', '-')}-fleet.yaml"
    fleet_file.write_text(dump_fleet(fleet))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "stargate", "up", "--port", str(port), "--fleet", str(fleet_file)]
    proc = subprocess.Popen(
        [*argv, "--no-scheduler", "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(url, proc)
        settings = Settings.from_env({k: v for k, v in env.items() if k.startswith("STARGATE_")})
        clusters = [c.id for c in fleet.clusters]
        t0 = time.perf_counter()
        fill(settings, fleet, args.jobs, datetime.now(UTC))
        print(f"{label}: wrote {args.jobs:,} jobs with one run each in {time.perf_counter() - t0:.1f} s")
        token = (home / "admin-token").read_text().strip()
        paths = {"fleet": "/api/v1/fleet", "usage": f"/api/v1/fleet/usage?points={args.points}"}
        took: dict[str, list[float]] = {name: [] for name in paths}
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            for i in range(args.warmup + args.requests):
                for name, path in paths.items():
                    start = time.perf_counter()
                    response = client.get(path)
                    elapsed = (time.perf_counter() - start) * 1000
                    if response.status_code != 200:
                        sys.exit(f"error: {path} answered {response.status_code}: {response.text[:300]}")
                    if i >= args.warmup:
                        took[name].append(elapsed)
            size = len(client.get(paths["usage"]).content)
        base, used = took["fleet"], took["usage"]
        print(f"  GET /api/v1/fleet (baseline)      median {statistics.median(base):7.2f} ms   p95 {p95(base):7.2f} ms")
        print(
            f"  GET /api/v1/fleet/usage           median {statistics.median(used):7.2f} ms   p95 {p95(used):7.2f} ms"
            f"   ({args.points} points × {args.clusters} clusters, {size:,} bytes)"
        )
        print(
            f"  ratio usage / fleet               median {statistics.median(used) / statistics.median(base):7.2f}×"
            f"     p95 {p95(used) / p95(base):7.2f}×"
        )
        query_ms, sample_ms, count = in_process(settings, clusters, args.points)
        print(
            f"  in-process: the query {query_ms:.2f} ms ({count:,} runs in the window), the sampling {sample_ms:.2f} ms"
        )
        goal = "met" if p95(used) < 100 else "NOT met"
        print(f"  goal (usage p95 < 100 ms with {args.jobs:,} jobs): {goal}")
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="Jobs (one run each) in the database (10000).")
    parser.add_argument("--clusters", type=int, default=50, help="Clusters of the fleet (default 50).")
    parser.add_argument("--points", type=int, default=200, help="Samples per answer, 2 to 1000 (default 200).")
    parser.add_argument("--requests", type=int, default=200, help="Measured requests of each kind (default 200).")
    parser.add_argument("--warmup", type=int, default=20, help="Warm-up requests of each kind (default 20).")
    parser.add_argument("--postgres-url", default=os.environ.get("STARGATE_DATABASE_URL"), help="PostgreSQL URL.")
    return parser.parse_args()


def main() -> None:
    """Measure on SQLite, and on PostgreSQL when a URL is given."""
    args = parse_args()
    print(f"machine: {load_note()}; Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="stargate-bench-") as tmp_name:
        tmp = Path(tmp_name)
        bench("SQLite", tmp, None, args)
        if args.postgres_url:
            with fresh_postgres(args.postgres_url) as url:
                bench("PostgreSQL", tmp, url, args)
    print(f"  {load_note()}")


if __name__ == "__main__":
    main()
