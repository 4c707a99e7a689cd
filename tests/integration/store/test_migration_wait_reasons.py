"""The wait-reasons migration: two nullable columns on the jobs table (no row written but the details older servers
hijacked: a pending job's "waits for <clusters> (down since ...)" goes back to its last status change's detail), and a
downgrade drops them and keeps the jobs."""

from datetime import datetime

import sqlalchemy as sa

from stargate.store import create_engine, current_revision, downgrade, head_revision, upgrade

BEFORE = "20261203_0008"
AT = datetime(2026, 12, 3, 12, 0, 0)
DOWN = "waits for lab-h100 (down since 2026-12-01T10:00:00Z: executor local unreachable for 60 s)"
ROWS = [
    # (status, detail now, last event's detail, detail after the upgrade)
    ("pending", DOWN, "", ""),
    ("pending", DOWN, "cluster lab-a down: gone; resumes elsewhere", "cluster lab-a down: gone; resumes elsewhere"),
    ("pending", "", "", ""),
    ("failed", "waits for nothing: a text of its own", "waits for nothing: a text of its own",
     "waits for nothing: a text of its own"),
]  # fmt: skip


def _insert(engine: sa.Engine) -> list[int]:
    meta = sa.MetaData()
    jobs = sa.Table("jobs", meta, autoload_with=engine)
    events = sa.Table("job_events", meta, autoload_with=engine)
    ids = []
    with engine.begin() as conn:
        for n, (status, detail, last, _) in enumerate(ROWS):
            job = {
                "name": f"j{n}", "queue_id": "q", "team_id": "t", "kind": "batch", "gpus": 1, "gpu_models": [],
                "priority_class": "normal", "priority": 500, "preemptible": True, "spec": {}, "status": status,
                "reason": "submitted", "detail": detail, "attempt": 0, "progress_s": 0.0, "submitted_by": "test",
                "submitted_at": AT, "gpu_ids": [],
            }  # fmt: skip
            row_id = conn.execute(sa.insert(jobs).values(job).returning(jobs.c.id)).scalar_one()
            ids.append(row_id)
            event = {"job_id": row_id, "at": AT, "actor": "test", "from_status": None, "to_status": status}
            conn.execute(sa.insert(events).values(event | {"reason": "submitted", "detail": last}))
    return ids


def test_upgrade_adds_the_columns_gives_back_hijacked_details_and_a_downgrade_drops_them(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        upgrade(engine, BEFORE)
        ids = _insert(engine)
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            got = {
                i: (d, r, w)
                for i, d, r, w in conn.execute(sa.text("SELECT id, detail, wait_reason, wait_detail FROM jobs"))
            }
        assert got == {i: (row[3], None, None) for i, row in zip(ids, ROWS, strict=True)}
        assert "ix_jobs_wait_reason" in {ix["name"] for ix in sa.inspect(engine).get_indexes("jobs")}
        downgrade(engine, BEFORE)
        assert "wait_reason" not in {c["name"] for c in sa.inspect(engine).get_columns("jobs")}
        assert current_revision(engine) == BEFORE
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM jobs")).scalar_one() == len(ROWS)
        upgrade(engine)
    finally:
        engine.dispose()
