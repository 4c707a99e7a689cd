"""A leader whose scheduler lock ends mid-cycle commits nothing: the decision transaction checks the lock (fence)."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from integration.server.stargate_harness import Harness
from stargate.server.scheduling import loop
from stargate.server.scheduling.apply import LostLeadershipError
from stargate.server.scheduling.lock import SchedulerLock


def test_a_decision_made_after_the_lock_session_ended_is_rolled_back(
    db_url: str, make_harness: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    h: Harness = make_harness(db_url)  # type: ignore[operator]
    lock = SchedulerLock(h.ctx.db, h.ctx.settings.lock_path)
    assert lock.acquire()
    h.ctx.loop.fence = lock.holds_in
    job = h.submit()
    real = loop.decide
    ended: list[bool] = []

    def decide_then_lose_the_lock(*args: object, **kwargs: object) -> object:
        decided = real(*args, **kwargs)  # type: ignore[arg-type]
        if db_url.startswith("sqlite"):  # the kernel holds a file lock as long as the process lives: drop it
            lock.release()
        else:  # the lock session ends (e.g. its host's network went away), as a standby would see it
            with h.ctx.db.write() as session:
                pid = lock._pid
                ended.append(bool(session.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()))
        return decided

    monkeypatch.setattr(loop, "decide", decide_then_lose_the_lock)
    with pytest.raises(LostLeadershipError):
        loop.run_cycle(h.ctx, datetime.now(UTC))
    assert ended in ([], [True])
    still = h.client.get(f"/api/v1/jobs/{job['id']}", headers=h.headers()).json()
    assert still["status"] == "pending", still
    monkeypatch.setattr(loop, "decide", real)
    assert lock.acquire()  # leading again (no other server): the next cycle places the job
    loop.run_cycle(h.ctx, datetime.now(UTC))
    placed = h.client.get(f"/api/v1/jobs/{job['id']}", headers=h.headers()).json()
    assert placed["status"] in ("placed", "running"), placed
    lock.release()


def test_the_fence_holds_while_the_lock_is_held(db_url: str, make_harness: object) -> None:
    h: Harness = make_harness(db_url)  # type: ignore[operator]
    lock, other = (SchedulerLock(h.ctx.db, h.ctx.settings.lock_path) for _ in range(2))
    with h.ctx.db.read() as session:
        assert not lock.holds_in(session)
    assert lock.acquire() and not other.acquire()
    with h.ctx.db.read() as session:
        assert lock.holds_in(session) and not other.holds_in(session)
    lock.release()
    with h.ctx.db.read() as session:
        assert not lock.holds_in(session)
