"""A submission batch is acknowledged only after its commit: a failure between its statements and the commit
answers every request of the batch with the error and stores none of it; the next batch is stored as usual. An
idempotent retry inside one batch gets the job stored by the earlier request of that batch."""

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from integration.server.stargate_harness import Harness
from stargate.domain import JobSpec
from stargate.server import writer
from stargate.server.auth import Principal, Role
from stargate.server.writer import Submission
from stargate.store import JobEventRow, JobRow

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
ADMIN = Principal(token_id="t-a", name="admin", team=None, role=Role.ADMIN)


def _spec(name: str) -> JobSpec:
    return JobSpec(name=name, queue="alpha-q", gpus=1, command="true")


def _stored(h: Harness) -> tuple[int, int]:
    with h.ctx.db.read() as s:
        return s.scalar(select(func.count()).select_from(JobRow)) or 0, s.scalar(
            select(func.count()).select_from(JobEventRow)
        ) or 0


def test_a_crash_before_the_commit_acknowledges_nothing(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    real = writer.insert_submitted

    def stored_then_crash(session: Session, rows: list[dict[str, Any]]) -> list[int]:
        real(session, rows)  # the rows are written in the transaction, which then fails before its commit
        raise ConnectionError("the database went away before the commit")

    monkeypatch.setattr(writer, "insert_submitted", stored_then_crash)
    batch = [Submission(ADMIN, _spec(f"lost-{n}"), NOW) for n in range(5)]
    harness.ctx.submissions.write(batch)
    assert all(isinstance(item.done.exception(), ConnectionError) for item in batch)
    assert _stored(harness) == (0, 0)
    monkeypatch.setattr(writer, "insert_submitted", real)
    again = [Submission(ADMIN, _spec(f"kept-{n}"), NOW) for n in range(5)]
    harness.ctx.submissions.write(again)
    ids = [item.done.result()[0] for item in again]
    assert ids == sorted(ids) and _stored(harness) == (5, 5)


def test_an_idempotent_retry_in_the_same_batch_gets_the_first_job(harness: Harness) -> None:
    key = f"{ADMIN.token_id}:retry-1"
    first = Submission(ADMIN, _spec("once"), NOW, idempotency_key=key)
    other = Submission(ADMIN, _spec("other"), NOW)
    retry = Submission(ADMIN, _spec("once"), NOW, idempotency_key=key)
    harness.ctx.submissions.write([first, other, retry])
    (first_id, _), (retry_id, values) = first.done.result(), retry.done.result()
    assert retry_id == first_id and values["name"] == "once"
    assert (first.replayed, retry.replayed) == (False, True)
    assert other.done.result()[0] != first_id
    assert _stored(harness) == (2, 2)
    later = Submission(ADMIN, _spec("once"), NOW, idempotency_key=key)  # a retry in a later batch: replayed too
    harness.ctx.submissions.write([later])
    assert later.done.result()[0] == first_id and later.replayed
    assert _stored(harness) == (2, 2)
