"""Review of the wait reasons and the new read APIs: each defect found is one strict xfail test (the suite stays
green until it is fixed, and turns red when it is fixed so the mark is removed)."""

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from integration.server.stargate_harness import Harness, build_harness
from stargate.engine import Override
from stargate.server.scheduling.loop import run_cycle

TIMEOUT_S = 20.0


def _job(h: Harness, job_id: object) -> dict[str, Any]:
    data: dict[str, Any] = h.client.get(f"/api/v1/jobs/{job_id}", headers=h.headers()).json()
    return data


def _until(h: Harness, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not done():
        assert time.monotonic() < deadline, "timed out"
        run_cycle(h.ctx, datetime.now(UTC))
        time.sleep(0.05)


def test_a_job_not_reached_after_gpus_free_up_is_not_left_waiting_for_capacity(tmp_path: Path) -> None:
    """Strict FIFO on lab-h100 (8 GPUs): a 6-GPU job runs long, a 2-GPU one briefly; an 8-GPU head then blocks the
    queue, and a 1-GPU job behind it is judged 'capacity' (no GPU free). Once the 2-GPU job ends, 2 GPUs are free:
    the 1-GPU job was not reached (the head blocks the queue), so by the rules it waits for 'order'. No fleet change
    happened, so the engine never judges it again: it stays 'capacity' while its own detail, written from the state
    now, says a 2-GPU block is free for a 1-GPU ask."""
    h = build_harness(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "home", scheduling=Override(policy="fifo"))
    h100 = ["H100-SXM"]
    long = h.submit(command="sleep 60", gpus=6, gpu_models=h100)["id"]
    short = h.submit(command="sleep 2", gpus=2, gpu_models=h100)["id"]
    try:
        _until(h, lambda: _job(h, long)["status"] == "running" and _job(h, short)["status"] == "running")
        head = h.submit(command="true", gpus=8, gpu_models=h100)["id"]
        small = h.submit(command="true", gpus=1, gpu_models=h100)["id"]
        _until(h, lambda: _job(h, small)["waiting"] is not None and _job(h, head)["waiting"] is not None)
        assert _job(h, small)["waiting"]["reason"] == "capacity"  # right: no GPU free then
        _until(h, lambda: _job(h, short)["status"] == "succeeded")
        for _ in range(3):  # a few more cycles: it is not a matter of one cycle's delay
            run_cycle(h.ctx, datetime.now(UTC))
        found = _job(h, small)
        assert found["status"] == "pending"
        assert found["waiting"]["reason"] == "order", found["waiting"]
    finally:
        for job in (long,):
            h.client.post(f"/api/v1/jobs/{job}/cancel", headers=h.headers())
        h.client.close()
        h.ctx.db.close()


def test_oldest_first_pages_never_skip_a_job_submitted_concurrently(postgres_url: str, tmp_path: Path) -> None:
    """A submission whose transaction takes its id before another's and commits after it (two concurrent POSTs):
    a reader paging oldest first between the two commits must not get a cursor past the slow job's id, or no page
    ever shows it. Here the slow submission is a copy of a job row inserted in a transaction held open."""
    h = build_harness(postgres_url, tmp_path / "home")  # SQLite serialises writers: ids commit in their order
    closing: list[sa.Connection] = []
    try:
        first = h.submit(name="first")["id"]
        slow = h.ctx.db.engine.connect()
        closing.append(slow)  # closed (its transaction rolled back) should an assert fail while it is open
        tx = slow.begin()
        row = slow.execute(sa.text("SELECT * FROM jobs ORDER BY id LIMIT 1")).mappings().one()
        values = {k: v for k, v in row.items() if k != "id"}
        jobs = sa.Table("jobs", sa.MetaData(), autoload_with=slow)
        slow_id = slow.execute(sa.insert(jobs).values({**values, "name": "slow"}).returning(jobs.c.id)).scalar_one()
        fast = h.submit(name="fast")["id"]  # takes the next id and commits first
        last = h.submit(name="last")["id"]
        page = h.client.get("/api/v1/jobs", params={"order": "oldest", "limit": 2}, headers=h.headers()).json()
        seen = [j["id"] for j in page["items"]]
        assert seen == [first] and page["next_cursor"]  # the page stops before the job still to commit
        tx.commit()  # the slow submission is done: its job is stored, with an id before fast's
        slow.close()
        listed = h.client.get("/api/v1/jobs", params={"order": "oldest"}, headers=h.headers()).json()
        everyone = [j["id"] for j in listed["items"]]
        assert len(everyone) == 4 and slow_id
        rest = h.client.get(
            "/api/v1/jobs", params={"order": "oldest", "cursor": page["next_cursor"]}, headers=h.headers()
        ).json()
        seen += [j["id"] for j in rest["items"]]
        assert seen[-2:] == [fast, last]
        assert sorted(seen) == sorted(everyone), f"paged {seen}, stored {everyone}"
    finally:
        for conn in closing:
            conn.close()
        h.client.close()
        h.ctx.db.close()


def test_a_newest_cursor_is_refused_with_order_oldest(tmp_path: Path) -> None:
    h = build_harness(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "home")
    try:
        for n in range(5):
            h.submit(name=f"j{n}")
        page = h.client.get("/api/v1/jobs", params={"limit": 2}, headers=h.headers()).json()
        assert page["next_cursor"]
        mixed = h.client.get(
            "/api/v1/jobs", params={"order": "oldest", "cursor": page["next_cursor"]}, headers=h.headers()
        )
        assert mixed.status_code == 400, mixed.json()  # as every cursor not from this listing's pages
        assert "expected a next_cursor of a page listed with order=oldest" in mixed.json()["detail"]
        oldest = h.client.get("/api/v1/jobs", params={"order": "oldest", "limit": 2}, headers=h.headers()).json()
        back = h.client.get("/api/v1/jobs", params={"cursor": oldest["next_cursor"]}, headers=h.headers())
        assert back.status_code == 400 and "order=newest" in back.json()["detail"]
    finally:
        h.client.close()
        h.ctx.db.close()
