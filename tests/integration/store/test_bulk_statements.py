"""The batch statements (one JSON document per batch on PostgreSQL, portable statements on SQLite) write exactly
what row-by-row statements would: submitted jobs in order with their first events, run rows, run updates, and
values that need converting (times, money, JSON, enums, infinite floats)."""

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from stargate.domain import JobReason
from stargate.store import (
    Database,
    JobEventRow,
    JobRow,
    JobStatus,
    Move,
    insert_submitted,
    lock_current,
    transition_many,
    upgrade,
)
from stargate.store.models import RunRow
from stargate.store.repositories import runs as run_repo

T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A migrated, empty database."""
    database = Database.open(db_url)
    upgrade(database.engine)
    yield database
    database.close()


def _row(n: int) -> dict[str, Any]:
    """The column values of the n-th new job (as the submission check gives them)."""
    return {
        "name": f"job-{n}",
        "queue_id": "q",
        "team_id": "t",
        "kind": "batch",
        "gpus": 1 + n % 8,
        "gpu_models": ["H100-SXM"] if n % 2 else [],
        "priority_class": "normal",
        "priority": 500,
        "preemptible": n % 3 == 0,
        "spec": {"name": f"job-{n}", "queue": "q", "command": "echo 'ü \"quoted\"' \\ back"},
        "status": JobStatus.PENDING,
        "reason": JobReason.SUBMITTED,
        "detail": "",
        "attempt": 0,
        "progress_s": 0.0,
        "submitted_by": f"token:user-{n % 3}",
        "submitted_at": T0 + timedelta(seconds=n),
        "gpu_ids": [],
    }


def test_submitted_jobs_get_ids_in_order_and_one_first_event_each(db: Database) -> None:
    rows = [_row(n) for n in range(300)]
    with db.write() as s:
        ids = insert_submitted(s, rows)
    assert ids == sorted(ids) and len(set(ids)) == 300
    with db.read() as s:
        jobs = {j.id: j for j in s.scalars(select(JobRow))}
        events = list(s.scalars(select(JobEventRow).order_by(JobEventRow.job_id)))
    for row_id, row in zip(ids, rows, strict=True):
        job = jobs[row_id]
        assert (job.name, job.gpus, job.gpu_models, job.spec) == (
            row["name"],
            row["gpus"],
            row["gpu_models"],
            row["spec"],
        )
        assert (job.preemptible, job.submitted_at, job.status) == (row["preemptible"], row["submitted_at"], "pending")
    assert [(e.job_id, e.actor, e.at, e.from_status, e.to_status, e.reason, e.detail) for e in events] == [
        (i, r["submitted_by"], r["submitted_at"], None, "pending", "submitted", "")
        for i, r in zip(ids, rows, strict=True)
    ]


def test_placements_runs_and_run_updates_in_batches(db: Database) -> None:
    with db.write() as s:
        ids = insert_submitted(s, [_row(n) for n in range(40)])
    at = T0 + timedelta(hours=1)
    with db.write() as s:
        current = lock_current(s, ids)
        moves = [
            Move(
                current[i],
                JobStatus.PLACED,
                JobReason.PLACED,
                f"on c{n}",
                {"cluster": f"c{n}", "gpu_ids": [n, n + 1], "price_usd_per_gpu_hour": Decimal("1.250001")},
            )
            for n, i in enumerate(ids)
        ]
        transition_many(s, moves, "scheduler", at)
        run_repo.add_many(
            s, [{"job_id": i, "attempt": 0, "executor": "local", "cluster": "c", "created_at": at} for i in ids]
        )
        run_repo.set_handles(s, [(i, 0, f"key-{i}") for i in ids[:30]])
        run_repo.count_start_failures(s, [(i, 0) for i in ids[30:]])
        run_repo.end_many(s, [(i, 0, 7, "done") for i in ids[:10]], at)
        run_repo.set_notes(s, [(i, 0, "later") for i in ids[:20]])  # the ended ones keep their note
    with db.read() as s:
        jobs = {j.id: j for j in s.scalars(select(JobRow))}
        runs = {r.job_id: r for r in s.scalars(select(RunRow))}
    for n, i in enumerate(ids):
        job = jobs[i]
        assert (job.status, job.cluster, job.gpu_ids, job.detail) == ("placed", f"c{n}", [n, n + 1], f"on c{n}")
        assert job.price_usd_per_gpu_hour == Decimal("1.250001")
        run = runs[i]
        assert run.handle_key == (f"key-{i}" if n < 30 else None)
        assert run.start_failures == (1 if n >= 30 else 0)
        assert (run.ended, run.exit_code, run.ended_at) == ((True, 7, at) if n < 10 else (False, None, None))
        assert run.note == ("done" if n < 10 else "later" if n < 20 else "")


def test_an_infinite_progress_and_a_requeue_clear_the_placement(db: Database) -> None:
    with db.write() as s:
        [job_id] = insert_submitted(s, [_row(1)])
    with db.write() as s:
        cur = lock_current(s, [job_id])[job_id]
        transition_many(
            s, [Move(cur, JobStatus.PLACED, JobReason.PLACED, "", {"cluster": "c", "gpu_ids": [1]})], "x", T0
        )
    with db.write() as s:
        cur = lock_current(s, [job_id])[job_id]
        transition_many(s, [Move(cur, JobStatus.PENDING, JobReason.PRIORITY, "", {"progress_s": math.inf})], "x", T0)
    with db.read() as s:
        job = s.get(JobRow, job_id)
        assert job is not None
        assert (job.status, job.attempt, job.cluster, job.gpu_ids, job.progress_s) == ("pending", 1, None, [], math.inf)
