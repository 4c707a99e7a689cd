"""Crash recovery: 200 short jobs, the server SIGKILLed at seeded random moments and restarted each time; at the end
every job succeeded, and ran exactly once — no job lost, none run twice.

Each job's command appends ``JOB_ID.ATTEMPT`` to ``ran`` in its own working directory (jobs are isolated: they
cannot write to the test's files), so a second run of any attempt shows up as a second line. Runs on SQLite, and on
a fresh PostgreSQL database when STARGATE_TEST_POSTGRES_URL is set.
"""

import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from e2e_support import ServerFactory, ServerProcess, all_jobs, database_params

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SEED = 20261127
JOBS = 200
FIRST_BATCH = 80
KILLS = 4
FINAL_TIMEOUT_S = 90.0


def command_for(sleep_s: float) -> str:
    """The job's command: record this run (append to ``ran`` in its working directory), then work ``sleep_s`` s."""
    return f'echo "$STARGATE_JOB_ID.$STARGATE_ATTEMPT" >> ran; sleep {sleep_s:.2f}'


def submit_jobs(server: ServerProcess, rng: random.Random, count: int, start: int) -> list[str]:
    """Submit ``count`` one-GPU jobs alternating between the two teams' queues; their ids."""
    ids = []
    with server.client() as http:
        for n in range(start, start + count):
            spec = {
                "name": f"crash-{n:03d}",
                "queue": "alpha-q" if n % 4 else "beta-q",
                "gpus": 1,
                "command": command_for(rng.uniform(0.05, 0.4)),
            }
            answer = http.post("/api/v1/jobs", json=spec)
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["id"])
    return ids


def all_events(server: ServerProcess) -> list[dict[str, Any]]:
    """Every job event, oldest first, following the pages."""
    events: list[dict[str, Any]] = []
    after = None
    with server.client() as http:
        while True:
            params: dict[str, Any] = {"limit": 1000, **({"after": after} if after else {})}
            page = http.get("/api/v1/events", params=params).json()
            events += page["items"]
            after = page["next_cursor"]
            if after is None:
                return events


def wait_all_final(server: ServerProcess, timeout_s: float) -> list[dict[str, Any]]:
    """Poll until no job is pending, placed or running; every job then."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = all_jobs(server)
        if all(job["status"] in {"succeeded", "failed", "cancelled"} for job in jobs):
            return jobs
        time.sleep(0.2)
    counts = Counter(job["status"] for job in all_jobs(server))
    pytest.fail(f"jobs not final after {timeout_s} s: {dict(counts)}")


def runs_in_flight(server: ServerProcess) -> int:
    """Runs started but not ended (a ``run.json`` without ``exit.json``)."""
    return sum(
        1 for record in server.home.glob("runs/*/*/attempt-*/run.json") if not record.with_name("exit.json").exists()
    )


def kill_and_restart(server: ServerProcess, rng: random.Random, times: int) -> list[int]:
    """``times`` times: let the server work a seeded random while, SIGKILL it, start it again; the number of runs
    in flight at each kill."""
    in_flight = []
    for _ in range(times):
        time.sleep(rng.uniform(0.2, 1.2))
        server.kill()
        in_flight.append(runs_in_flight(server))
        server.start()
    return in_flight


@pytest.mark.parametrize("database_url", database_params(), indirect=True)
def test_every_job_succeeds_exactly_once_across_server_kills(
    make_server: ServerFactory, database_url: str | None, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    server = make_server(database_url=database_url, interval_s=0.05).start()
    submitted = submit_jobs(server, rng, FIRST_BATCH, 0)
    in_flight = kill_and_restart(server, rng, 1)
    submitted += submit_jobs(server, rng, JOBS - FIRST_BATCH, FIRST_BATCH)
    in_flight += kill_and_restart(server, rng, KILLS - 1)
    jobs = wait_all_final(server, FINAL_TIMEOUT_S)

    assert server.starts == KILLS + 1
    assert sum(in_flight) > 0, in_flight  # some kills hit jobs mid-run: their exit codes came in while down
    assert len(set(submitted)) == JOBS
    assert sorted(job["id"] for job in jobs) == sorted(submitted)  # none lost, none made up
    not_ok = [(job["id"], job["status"], job["reason"]) for job in jobs if job["status"] != "succeeded"]
    assert not_ok == []
    records = list(server.home.glob("work/*/*/*/attempt-*/ran"))
    runs = Counter(run for record in records for run in record.read_text().split())
    twice = {run: n for run, n in runs.items() if n != 1}
    assert twice == {}  # no run appended twice
    assert sorted(runs) == sorted(f"{job_id}.0" for job_id in submitted)  # each job ran once, as attempt 0
    assert len(records) == JOBS  # and in one working directory each
    finished = Counter(e["job_id"] for e in all_events(server) if e["to"] in {"succeeded", "failed", "cancelled"})
    assert set(finished.values()) == {1} and len(finished) == JOBS  # one final transition per job
