"""Review of the oldest-first listing horizon on PostgreSQL (stargate.store.repositories.horizon, migration
20261205_0012): defects found by attacking it, now fixed.

- Ids are 64-bit, and a writer's lock key was capped at 2,147,483,647: past that id every writer's lock sat below
  every stored row, so a page held back even rows that committed before the writer took its id.
- The horizon's proof needs a new snapshot for each of its three statements (READ COMMITTED); on a database whose
  default isolation is REPEATABLE READ the page's snapshot was the first statement's, and a row whose transaction
  committed between the reads was skipped for ever. Stargate's engine now pins READ COMMITTED, and a page read in
  any other isolation is refused rather than wrong.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from integration.server.stargate_harness import Harness, build_harness
from stargate.store.database import create_engine
from stargate.store.repositories import events as event_repo

PAST_INT4 = 3_000_000_000
"""An id past the 32-bit range (ids are BIGINT)."""


@pytest.fixture
def h(db_url: str, tmp_path: Path) -> Iterator[Harness]:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers: no horizon")
    harness = build_harness(db_url, tmp_path / "home")
    yield harness
    harness.client.close()
    harness.ctx.db.close()


def _copy_event(conn: sa.Connection, **changes: object) -> int:
    """Insert a copy of the first job event on ``conn`` (its id from the column's default); the new id."""
    rows = sa.Table("job_events", sa.MetaData(), autoload_with=conn)
    first = conn.execute(sa.select(rows).order_by(rows.c.id).limit(1)).mappings().one()
    values = {k: v for k, v in first.items() if k != "id"} | changes
    return int(conn.execute(sa.insert(rows).values(values).returning(rows.c.id)).scalar_one())


def _events(h: Harness, after: int) -> dict[str, Any]:
    page: dict[str, Any] = h.client.get("/api/v1/events", params={"after": str(after)}, headers=h.headers()).json()
    return page


def test_past_the_32_bit_range_an_event_committed_before_a_writer_began_is_not_held_back(h: Harness) -> None:
    h.submit(name="first")
    with h.ctx.db.engine.begin() as conn:
        conn.execute(sa.text("SELECT setval('job_events_id_seq', :v)"), {"v": PAST_INT4})
        settled = _copy_event(conn, reason="settled")  # committed here, before the writer below begins
    assert settled == PAST_INT4 + 1
    with h.ctx.db.engine.connect() as slow:
        tx = slow.begin()
        pending = _copy_event(slow, reason="still to commit")  # a later id, taken after 'settled' committed
        assert pending > settled
        page = _events(h, PAST_INT4)
        tx.rollback()
    # 'settled' committed before 'pending' existed: nothing can still commit below it, so a page shows it
    assert [e["id"] for e in page["items"]] == [settled], page


def test_a_database_defaulting_to_repeatable_read_never_skips_an_event(h: Harness, db_url: str) -> None:
    h.submit(name="first")
    first = max(e["id"] for e in h.client.get("/api/v1/events", headers=h.headers()).json()["items"])
    # a reader as the server's would be on a PostgreSQL whose default_transaction_isolation is repeatable read
    reader = create_engine(db_url)  # Stargate's engine

    @sa.event.listens_for(reader, "connect")
    def _repeatable_read(dbapi_conn: Any, _record: Any) -> None:
        with dbapi_conn.cursor() as cur:
            cur.execute("SET default_transaction_isolation = 'repeatable read'")
        dbapi_conn.commit()

    try:
        with h.ctx.db.engine.connect() as slow:
            tx = slow.begin()
            late = _copy_event(slow, reason="took its id first, commits last")
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


def test_a_page_read_in_a_repeatable_read_transaction_is_refused_not_wrong(h: Harness, db_url: str) -> None:
    reader = sa.create_engine(db_url, isolation_level="REPEATABLE READ")  # not Stargate's engine
    try:
        with Session(reader) as session, pytest.raises(RuntimeError, match="needs a READ COMMITTED transaction"):
            event_repo.page(session, job_id=None, team=None, after_id=None, limit=10)
    finally:
        reader.dispose()
