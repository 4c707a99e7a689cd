"""Oldest-first pages on PostgreSQL never pass a row still to commit (a transaction that took its id before another's
and commits after it), and wait for nothing else: a rolled-back insert, or one transaction's many inserts, hold back
nothing after they end. On SQLite writers take turns, so ids commit in their order and nothing is held back."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from integration.server.stargate_harness import Harness, build_harness
from stargate.store.repositories.horizon import SPACES


@pytest.fixture
def h(db_url: str, tmp_path: Path) -> Iterator[Harness]:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers: ids commit in their order")
    harness = build_harness(db_url, tmp_path / "home")
    yield harness
    harness.client.close()
    harness.ctx.db.close()


def _events(h: Harness, after: int | None = None) -> dict[str, Any]:
    params = {} if after is None else {"after": str(after)}
    page: dict[str, Any] = h.client.get("/api/v1/events", params=params, headers=h.headers()).json()
    return page


def _copy_row(conn: sa.Connection, table: str, **changes: object) -> int:
    """Insert a copy of ``table``'s first row (a new id from the table's default) on ``conn``; its id."""
    rows = sa.Table(table, sa.MetaData(), autoload_with=conn)
    first = conn.execute(sa.select(rows).order_by(rows.c.id).limit(1)).mappings().one()
    values = {k: v for k, v in first.items() if k != "id"} | changes
    return int(conn.execute(sa.insert(rows).values(values).returning(rows.c.id)).scalar_one())


def test_an_event_page_stops_before_an_event_still_to_commit_and_shows_it_next(h: Harness) -> None:
    h.submit(name="first")
    seen = [e["id"] for e in _events(h)["items"]]
    assert seen
    with h.ctx.db.engine.connect() as slow:  # closed, its transaction rolled back, should an assert fail
        tx = slow.begin()
        slow_id = _copy_row(slow, "job_events", reason="slow")
        h.submit(name="after")  # its event takes a later id and commits first
        held = _events(h, seen[-1])
        assert held["items"] == [], held  # the new event is there, behind the one still to commit
        tx.commit()
    rest = [e["id"] for e in _events(h, seen[-1])["items"]]
    assert rest[0] == slow_id and len(rest) == 2, rest
    assert sorted(seen + rest) == [e["id"] for e in _events(h)["items"]]


def test_a_rolled_back_insert_holds_nothing_back(h: Harness) -> None:
    first = h.submit(name="first")["id"]
    with h.ctx.db.engine.connect() as slow:
        tx = slow.begin()
        _copy_row(slow, "jobs", name="never")
        tx.rollback()  # its id is a gap for ever
    later = h.submit(name="later")["id"]
    page = h.client.get("/api/v1/jobs", params={"order": "oldest"}, headers=h.headers()).json()
    assert [j["id"] for j in page["items"]] == [first, later]


def test_one_transactions_many_inserts_take_one_lock_and_hold_back_only_while_it_runs(h: Harness) -> None:
    first = h.submit(name="first")["id"]
    with h.ctx.db.engine.connect() as slow:
        tx = slow.begin()
        for n in range(300):
            _copy_row(slow, "jobs", name=f"bulk-{n}")
        locks = slow.execute(
            sa.text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
                "AND classid::text::bigint BETWEEN :space AND :space + 65535 AND objsubid = 2"
            ),
            {"space": SPACES["jobs"]},
        ).scalar_one()
        assert locks == 1  # not one per row: a bulk submission never fills the lock table
        later = h.submit(name="later")["id"]
        page = h.client.get("/api/v1/jobs", params={"order": "oldest"}, headers=h.headers()).json()
        assert [j["id"] for j in page["items"]] == [first]  # "later" waits behind the 300 still to commit
        newest = h.client.get("/api/v1/jobs", headers=h.headers()).json()
        assert [j["id"] for j in newest["items"]] == [later, first]  # newest first shows what is stored
        tx.commit()
    page = h.client.get("/api/v1/jobs", params={"order": "oldest", "limit": 500}, headers=h.headers()).json()
    ids = [j["id"] for j in page["items"]]
    assert len(ids) == 302 and ids[0] == first and ids[-1] == later
