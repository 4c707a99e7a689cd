"""The scheduler's per-cycle run queries (each live job's current run, placed jobs' start times, orphaned runs)
find exactly the right runs on both databases, and on PostgreSQL stay index-driven nested loops (never a hash join
over the whole history) under the planner's default ``random_page_cost``."""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, text
from sqlalchemy.orm import Session

from stargate.store import Database, JobRow, JobStatus, upgrade
from stargate.store.models import RunRow
from stargate.store.repositories import runs as run_repo

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A migrated database holding jobs in every situation the queries tell apart."""
    database = Database.open(db_url)
    upgrade(database.engine)
    # (status, attempt, [(run attempt, ended)]) per job, ids 1..n
    jobs: list[tuple[JobStatus, int, list[tuple[int, bool]]]] = [
        (JobStatus.RUNNING, 0, [(0, False)]),  # 1: running, its run
        (JobStatus.RUNNING, 1, [(0, True), (1, False)]),  # 2: running its second attempt
        (JobStatus.PLACED, 0, [(0, False)]),  # 3: placed
        (JobStatus.SUCCEEDED, 0, [(0, True)]),  # 4: history
        (JobStatus.SUCCEEDED, 0, [(0, False)]),  # 5: finished, its run not marked ended: an orphan
        (JobStatus.PENDING, 1, [(0, False)]),  # 6: requeued, the old run not ended: an orphan
        (JobStatus.RUNNING, 1, [(0, False), (1, False)]),  # 7: running again, attempt 0 not ended: an orphan
        (JobStatus.PENDING, 0, []),  # 8: never ran
    ]
    with database.write() as session:
        for n, (status, attempt, runs) in enumerate(jobs, start=1):
            session.execute(insert(JobRow), [_job(n, status, attempt)])
            for run_attempt, ended in runs:
                at = T0 + timedelta(minutes=n, seconds=run_attempt)
                row = {"job_id": n, "attempt": run_attempt, "executor": "local", "cluster": "c", "created_at": at}
                session.execute(insert(RunRow), [{**row, "handle_key": f"h{n}.{run_attempt}", "ended": ended}])
    yield database
    database.close()


def _job(n: int, status: JobStatus, attempt: int) -> dict[str, Any]:
    return {
        "id": n,
        "name": f"j{n}",
        "queue_id": "q",
        "team_id": "t",
        "kind": "batch",
        "gpus": 1,
        "gpu_models": [],
        "priority_class": "normal",
        "priority": 500,
        "preemptible": False,
        "spec": {"name": f"j{n}"},
        "status": status,
        "attempt": attempt,
        "submitted_by": "token:admin",
        "submitted_at": T0,
        "gpu_ids": [n],
    }


def test_each_query_finds_exactly_the_right_runs(db: Database) -> None:
    with db.read() as session:
        running = run_repo.live(session, JobStatus.RUNNING)
        assert [(r.job_id, r.attempt, r.handle_key, r.gpu_ids) for r in running] == [
            (1, 0, "h1.0", [1]),
            (2, 1, "h2.1", [2]),
            (7, 1, "h7.1", [7]),
        ]
        assert [r.job_id for r in run_repo.live(session, JobStatus.RUNNING, [2, 3])] == [2]
        assert [r.job_id for r in run_repo.live(session, JobStatus.PLACED)] == [3]
        since = run_repo.placed_since(session)
        assert {k: v.replace(tzinfo=UTC) for k, v in since.items()} == {
            1: T0 + timedelta(minutes=1),
            2: T0 + timedelta(minutes=2, seconds=1),
            3: T0 + timedelta(minutes=3),
            7: T0 + timedelta(minutes=7, seconds=1),
        }
        orphans = run_repo.orphans(session)
        assert [(r.job_id, r.attempt, r.team, r.gpu_ids) for r in orphans] == [
            (5, 0, "t", [5]),
            (6, 0, "t", [6]),
            (7, 0, "t", [7]),
        ]


QUERIES: list[tuple[str, Callable[[Session], object]]] = [
    ("running runs", lambda s: run_repo.live(s, JobStatus.RUNNING)),
    ("placed jobs' start times", run_repo.placed_since),
    ("orphaned runs", run_repo.orphans),
]


@pytest.mark.postgres
@pytest.mark.parametrize(("name", "query"), QUERIES, ids=[name for name, _ in QUERIES])
def test_postgres_plans_are_nested_loops_under_default_costs(
    db: Database, name: str, query: Callable[[Session], object]
) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner")
    statements: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        statements.append((statement, params))

    with db.read() as session:
        session.execute(text("SET LOCAL random_page_cost = 4"))
        session.execute(text("SET LOCAL enable_nestloop = on"))
        event.listen(db.engine, "before_cursor_execute", keep)
        try:
            query(session)
        finally:
            event.remove(db.engine, "before_cursor_execute", keep)
        statement, params = statements[-1]
        plan = "\n".join(r[0] for r in session.connection().exec_driver_sql(f"EXPLAIN {statement}", params))
    assert "Nested Loop" in plan and "Hash Join" not in plan and "Merge Join" not in plan, f"{name}:\n{plan}"
