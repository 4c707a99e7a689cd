"""The reason-code migration: rows written with the previous revision's free-text reasons read back as a code and
a detail (jobs and job events alike), the runs and events of every job are kept, and a downgrade joins them again."""

from datetime import datetime

import pytest
import sqlalchemy as sa

from stargate.domain.reasons import JobReason
from stargate.store import create_engine, current_revision, downgrade, head_revision, upgrade

BEFORE = "20261130_0002"
THIS = "20261130_0003"
AT = datetime(2026, 11, 1, 12, 0, 0)

SAME = "<the old text>"
OLD_ROWS = [
    # (status the reason led to, old text, code, detail)
    ("pending", "submitted", "submitted", ""),
    ("placed", "placed on lab-a (8 GPUs)", "placed", "on lab-a (8 GPUs)"),
    ("running", "running on lab-a", "started", "on lab-a"),
    ("pending", "preempted: priority", "priority", ""),
    ("pending", "preempted: cluster_down", "cluster_down", ""),
    ("failed", "rejected: exceeds_quota", "exceeds_quota", ""),
    ("failed", "rejected: no_cluster_fits", "no_cluster_fits", ""),
    ("cancelled", "cancelled by token:alice", "cancelled", "by token:alice"),
    ("cancelled", "run cancelled outside Stargate: cancelled", "cancelled", SAME),
    ("pending", "requeued: cluster 'x' is no longer in the fleet", "cluster_removed",
     "cluster 'x' is no longer in the fleet"),
    ("pending", "requeued: priority class 'low' is not allowed", "requeued", "priority class 'low' is not allowed"),
    ("succeeded", "exited with code 0", "succeeded", SAME),
    ("failed", "exited with code 3", "failed", SAME),
    ("failed", "run lost: no record of run j-000001 attempt 0", "lost", "no record of run j-000001 attempt 0"),
    ("failed", "run lost", "lost", ""),
    ("failed", "could not start on local executor after 3 tries: OSError: boom", "start_failed",
     "on local executor after 3 tries: OSError: boom"),
    ("failed", "could not start on local executor: cannot start the command: [Errno 2]", "unstartable",
     "on local executor: cannot start the command: [Errno 2]"),
    ("failed", "executor kind 'ray' is not available yet (available: local)", "unstartable", SAME),
    ("failed", "the local executor runs commands; this job has only an image", "unstartable", SAME),
    ("failed", "failed: killed", "failed", "killed"),
    ("failed", "preempted: something new", "other", SAME),
    ("failed", "Placed On lab-a", "other", SAME),
    ("pending", "", "other", ""),
]  # fmt: skip


def _insert_old_rows(engine: sa.Engine) -> list[int]:
    """One job per old text (its status the one the text led to) with two events: its submission and that text."""
    meta = sa.MetaData()
    jobs = sa.Table("jobs", meta, autoload_with=engine)
    events = sa.Table("job_events", meta, autoload_with=engine)
    runs = sa.Table("runs", meta, autoload_with=engine)
    ids = []
    with engine.begin() as conn:
        for n, (status, text, _, _) in enumerate(OLD_ROWS):
            job = {
                "name": f"j{n}", "queue_id": "q", "team_id": "t", "kind": "batch", "gpus": 1, "gpu_models": [],
                "priority_class": "normal", "priority": 500, "preemptible": True, "spec": {}, "status": status,
                "reason": text, "attempt": 0, "progress_s": 0.0, "submitted_by": "test", "submitted_at": AT,
                "gpu_ids": [],
            }  # fmt: skip
            row_id = conn.execute(sa.insert(jobs).values(job).returning(jobs.c.id)).scalar_one()
            ids.append(row_id)
            first = {"job_id": row_id, "at": AT, "actor": "test", "from_status": None, "to_status": "pending"}
            conn.execute(sa.insert(events).values(first | {"reason": "submitted"}))
            moved = {"job_id": row_id, "at": AT, "actor": "scheduler", "from_status": "pending", "to_status": status}
            conn.execute(sa.insert(events).values(moved | {"reason": text}))
            run = {"job_id": row_id, "attempt": 0, "executor": "local", "cluster": "c", "created_at": AT}
            conn.execute(sa.insert(runs).values(run | {"ended": False, "note": ""}))
    return ids


def test_old_reason_texts_become_codes_with_their_detail(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        upgrade(engine, BEFORE)
        ids = _insert_old_rows(engine)
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            jobs = {i: (r, d) for i, r, d in conn.execute(sa.text("SELECT id, reason, detail FROM jobs"))}
            events = list(conn.execute(sa.text("SELECT job_id, reason, detail FROM job_events ORDER BY id")))
            run_count = conn.execute(sa.text("SELECT count(*) FROM runs")).scalar_one()
        expected = {
            row_id: (code, old if detail == SAME else detail)
            for row_id, (_, old, code, detail) in zip(ids, OLD_ROWS, strict=True)
        }
        assert jobs == expected
        assert [(j, r, d) for j, r, d in events[1::2]] == [(i, *expected[i]) for i in ids]
        assert {(r, d) for _, r, d in events[0::2]} == {("submitted", "")}
        assert run_count == len(OLD_ROWS)  # no table was rebuilt: nothing cascaded away
        assert all(JobReason(code) for code, _ in jobs.values())
    finally:
        engine.dispose()


@pytest.mark.parametrize("text", ["placed on lab-a (8 GPUs)", "preempted: priority", "rejected: exceeds_quota"])
def test_a_downgrade_keeps_the_preemption_and_rejection_texts(db_url: str, text: str) -> None:
    engine = create_engine(db_url)
    try:
        upgrade(engine, BEFORE)
        _insert_one(engine, text)
        upgrade(engine, THIS)
        downgrade(engine, BEFORE)
        with engine.connect() as conn:
            reasons = list(conn.execute(sa.text("SELECT reason FROM jobs")).scalars())
            columns = {c["name"] for c in sa.inspect(conn).get_columns("jobs")}
        want = {"placed on lab-a (8 GPUs)": "placed: on lab-a (8 GPUs)"}.get(text, text)
        assert reasons == [want] and "detail" not in columns
    finally:
        engine.dispose()


def _insert_one(engine: sa.Engine, text: str) -> None:
    meta = sa.MetaData()
    jobs = sa.Table("jobs", meta, autoload_with=engine)
    job = {
        "name": "j", "queue_id": "q", "team_id": "t", "kind": "batch", "gpus": 1, "gpu_models": [],
        "priority_class": "normal", "priority": 500, "preemptible": True, "spec": {}, "status": "failed",
        "reason": text, "attempt": 0, "progress_s": 0.0, "submitted_by": "test", "submitted_at": AT, "gpu_ids": [],
    }  # fmt: skip
    with engine.begin() as conn:
        conn.execute(sa.insert(jobs).values(job))


def test_upgrading_from_the_first_release_keeps_every_event_and_run(db_url: str) -> None:
    """Migrations that rebuild ``jobs`` on SQLite (0002 adds a unique constraint) must not cascade-delete the rows
    that refer to it: foreign keys are off while they run, and checked before the upgrade commits."""
    engine = create_engine(db_url)
    try:
        upgrade(engine, "20261127_0001")
        ids = _insert_old_rows(engine)
        upgrade(engine)
        with engine.connect() as conn:
            events = conn.execute(sa.text("SELECT count(*) FROM job_events")).scalar_one()
            runs = conn.execute(sa.text("SELECT count(*) FROM runs")).scalar_one()
            jobs = conn.execute(sa.text("SELECT count(*) FROM jobs")).scalar_one()
        assert (jobs, events, runs) == (len(ids), 2 * len(ids), len(ids))
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1  # on again for the server
    finally:
        engine.dispose()
