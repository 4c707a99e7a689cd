"""Oldest-first pages on PostgreSQL never pass a row still to commit (a transaction that took its id before another's
and commits after it), and wait for nothing else: a rolled-back insert, or one transaction's many inserts, hold back
nothing after they end; ids past the 32-bit range are no different; and a database whose default isolation is
REPEATABLE READ changes nothing (Stargate's engine pins READ COMMITTED; a page read in another isolation is refused,
not wrong). On SQLite writers take turns, so ids commit in their order and nothing is held back."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from integration.server.stargate_harness import Harness, build_harness
from stargate.store.database import create_engine
from stargate.store.repositories import events as event_repo
from stargate.store.repositories.horizon import SPACES

PAST_INT4 = 3_000_000_000
"""An id past the 32-bit range (ids are BIGINT)."""


@pytest.fixture
def h(postgres_url: str, tmp_path: Path) -> Iterator[Harness]:
    harness = build_harness(postgres_url, tmp_path / "home")
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


def test_past_the_32_bit_range_an_event_committed_before_a_writer_began_is_not_held_back(h: Harness) -> None:
    h.submit(name="first")
    with h.ctx.db.engine.begin() as conn:
        conn.execute(sa.text("SELECT setval('job_events_id_seq', :v)"), {"v": PAST_INT4})
        settled = _copy_row(conn, "job_events", reason="settled")  # committed here, before the writer below begins
    assert settled == PAST_INT4 + 1
    with h.ctx.db.engine.connect() as slow:
        tx = slow.begin()
        pending = _copy_row(slow, "job_events", reason="still to commit")  # a later id, taken after 'settled' committed
        assert pending > settled
        page = _events(h, PAST_INT4)
        tx.rollback()
    # 'settled' committed before 'pending' existed: nothing can still commit below it, so a page shows it
    assert [e["id"] for e in page["items"]] == [settled], page


def test_a_database_defaulting_to_repeatable_read_never_skips_an_event(h: Harness, postgres_url: str) -> None:
    h.submit(name="first")
    first = max(e["id"] for e in h.client.get("/api/v1/events", headers=h.headers()).json()["items"])
    # a reader as the server's would be on a PostgreSQL whose default_transaction_isolation is repeatable read
    reader = create_engine(postgres_url)  # Stargate's engine

    @sa.event.listens_for(reader, "connect")
    def _repeatable_read(dbapi_conn: Any, _record: Any) -> None:
        with dbapi_conn.cursor() as cur:
            cur.execute("SET default_transaction_isolation = 'repeatable read'")
        dbapi_conn.commit()

    try:
        with h.ctx.db.engine.connect() as slow:
            tx = slow.begin()
            late = _copy_row(slow, "job_events", reason="took its id first, commits last")
            after = h.submit(name="after")  # its event takes a later id and commits at once
            assert after

            @sa.event.listens_for(reader, "before_cursor_execute")
            def _commit_between(*args: Any) -> None:
                if "pg_locks" in args[2] and tx.is_active:
                    tx.commit()  # the slow transaction ends between the reader's first statement and its lock read

            with Session(reader) as session:
                rows, _ = event_repo.page(session, job_id=None, team=None, after_id=first, limit=100)
            seen = [r.id for r in rows]
        with Session(reader) as session:  # and a cursor that moved past it never comes back to it
            rest, _ = event_repo.page(session, job_id=None, team=None, after_id=max(seen, default=first), limit=100)
    finally:
        reader.dispose()
    listed = seen + [r.id for r in rest]
    assert late in listed, (late, seen, [r.id for r in rest])


def test_a_page_read_in_a_repeatable_read_transaction_is_refused_not_wrong(h: Harness, postgres_url: str) -> None:
    reader = sa.create_engine(postgres_url, isolation_level="REPEATABLE READ")  # not Stargate's engine
    try:
        with Session(reader) as session, pytest.raises(RuntimeError, match="needs a READ COMMITTED transaction"):
            event_repo.page(session, job_id=None, team=None, after_id=None, limit=10)
    finally:
        reader.dispose()
