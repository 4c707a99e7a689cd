"""``Idempotency-Key`` on job submission: a retry gets the same job (201, the same body, ``Idempotent-Replayed``), a
different body with the same key is 409, keys are bounded (422), and concurrent duplicates — in one writer batch,
or on two connections of two server processes — store one job (SQLite and PostgreSQL)."""

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from integration.server.stargate_harness import Harness
from stargate.domain import JobSpec
from stargate.server.app import create_app
from stargate.server.auth import Principal, Role
from stargate.server.bootstrap import open_database
from stargate.server.context import ServerContext
from stargate.server.errors import ConflictError, ForbiddenError
from stargate.server.settings import Settings
from stargate.server.writer import Submission
from stargate.store import JobEventRow, JobRow
from stargate.store.repositories import jobs as job_repo

NOW = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
BODY = {"name": "train", "queue": "alpha-q", "gpus": 1, "command": "true"}


def _post(h: Harness, key: str | None, body: dict[str, Any] = BODY, **who: Any) -> Any:
    headers = h.headers(**who) | ({"Idempotency-Key": key} if key is not None else {})
    return h.client.post("/api/v1/jobs", json=body, headers=headers)


def _count(h: Harness, model: Any = JobRow) -> int:
    with h.ctx.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_a_retry_with_the_same_key_gets_the_same_job_and_body(harness: Harness) -> None:
    first = _post(harness, "3f1c9a52-5b7e-4c1e-9d0b-7a0c1e2f3a4b")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers, first.text
    cancelled = harness.client.post(f"/api/v1/jobs/{first.json()['id']}/cancel", headers=harness.headers())
    assert cancelled.json()["status"] == "cancelled"  # the job moved on; a replay still answers as the first time
    again = _post(harness, "3f1c9a52-5b7e-4c1e-9d0b-7a0c1e2f3a4b", dict(reversed(list(BODY.items()))))
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()  # the answer to the first request, as it was
    assert (_count(harness), _count(harness, JobEventRow)) == (1, 2)  # submitted, cancelled
    with harness.ctx.db.read() as session:
        job = session.scalars(select(JobRow)).one()
        me = harness.client.get("/api/v1/whoami", headers=harness.headers()).json()
        assert job.idempotency_key == f"{me['token_id']}:3f1c9a52-5b7e-4c1e-9d0b-7a0c1e2f3a4b"
        assert job.request_sha256 is not None and len(job.request_sha256) == 64


def test_the_same_key_with_a_different_body_is_409_and_stores_nothing(harness: Harness) -> None:
    first = _post(harness, "k-1")
    answer = _post(harness, "k-1", {**BODY, "gpus": 2})
    assert answer.status_code == 409
    assert answer.json()["detail"] == (
        f'header.Idempotency-Key: found "k-1", which this token already used for job {first.json()["id"]} with a '
        "different body; expected a new key for a different job (or the same body to get that job again)"
    )
    assert _count(harness) == 1


def test_keys_belong_to_one_token_and_a_request_without_one_is_never_deduplicated(harness: Harness) -> None:
    admin = _post(harness, "shared-key").json()
    member = _post(harness, "shared-key", role="member", team="alpha").json()
    assert admin["id"] != member["id"]
    plain = [_post(harness, None).json()["id"] for _ in range(2)]
    assert len(set(plain)) == 2 and _count(harness) == 4


@pytest.mark.parametrize(
    ("key", "detail"),
    [
        ("", "header.Idempotency-Key: found 0 characters, expected 1 to 255 printable ASCII characters, e.g. a UUID"),
        ("x" * 256, "header.Idempotency-Key: found 256 characters, expected 1 to 255"),
        ("tab\there", "header.Idempotency-Key: found '\\t' at position 3, expected 1 to 255"),
        ('""', "header.Idempotency-Key: found 0 characters"),
    ],
)
def test_a_bad_key_is_422_located_and_stores_nothing(harness: Harness, key: str, detail: str) -> None:
    answer = _post(harness, key)
    assert answer.status_code == 422 and answer.json()["detail"].startswith(detail), answer.text
    assert _count(harness) == 0


def test_a_non_ascii_key_is_422(harness: Harness) -> None:
    headers = [(b"authorization", f"Bearer {harness.admin_token}".encode()), (b"idempotency-key", "clé".encode())]
    answer = harness.client.post("/api/v1/jobs", json=BODY, headers=headers)  # type: ignore[arg-type]
    assert answer.status_code == 422 and answer.json()["detail"].startswith("header.Idempotency-Key: found '")
    assert _count(harness) == 0


def test_the_longest_key_and_the_quoted_form_are_accepted(harness: Harness) -> None:
    longest = "~" * 255
    assert _post(harness, longest).status_code == 201
    quoted = _post(harness, '"abc"')
    assert quoted.status_code == 201
    assert _post(harness, "abc").json()["id"] == quoted.json()["id"]  # the quoted form names the same key


def _admin(token_id: str = "t-a") -> Principal:
    return Principal(token_id=token_id, name="admin", team=None, role=Role.ADMIN)


def test_duplicates_in_one_writer_batch_store_one_job(harness: Harness) -> None:
    spec = JobSpec(name="a", queue="alpha-q", gpus=1, command="true")
    member = Principal(token_id="t-m", name="member-beta", team="beta", role=Role.MEMBER)
    batch = [
        Submission(_admin(), spec, NOW, idempotency_key="t-a:one"),
        Submission(_admin(), spec, NOW, idempotency_key="t-a:one"),
        Submission(_admin(), spec.model_copy(update={"gpus": 2}), NOW, idempotency_key="t-a:one"),
        Submission(member, spec, NOW, idempotency_key="t-m:two"),
        Submission(member, spec, NOW, idempotency_key="t-m:two"),
        Submission(_admin(), spec, NOW),
    ]
    harness.ctx.submissions.write(batch)
    first, second = batch[0].done.result(), batch[1].done.result()
    assert first[0] == second[0] and (batch[0].replayed, batch[1].replayed) == (False, True)
    assert isinstance(batch[2].done.exception(), ConflictError)
    assert f"already used for job j-{first[0]:06d}" in str(batch[2].done.exception())
    assert isinstance(batch[3].done.exception(), ForbiddenError)  # beta may not use alpha-q: both get the error
    assert isinstance(batch[4].done.exception(), ForbiddenError)
    assert batch[5].done.result()[0] != first[0]
    assert (_count(harness), _count(harness, JobEventRow)) == (2, 2)


def test_a_key_stored_by_another_connection_meanwhile_hits_the_constraint_and_is_replayed(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look-up misses the key (the other transaction had not committed yet); the unique constraint refuses the
    INSERT, and the batch written again finds the other job: one job, and this request gets it."""
    spec = JobSpec(name="a", queue="alpha-q", gpus=1, command="true")
    ctx_b, client_b = _second_app(harness, tmp_path / "replica")
    try:
        other = Submission(_admin(), spec, NOW, idempotency_key="t-a:race")
        ctx_b.submissions.write([other])
        looked_up: list[int] = []
        real = job_repo.by_idempotency_keys

        def blind_once(session: Any, keys: Any) -> dict[str, JobRow]:
            looked_up.append(1)
            return {} if len(looked_up) == 1 else real(session, keys)

        monkeypatch.setattr(job_repo, "by_idempotency_keys", blind_once)
        mine = Submission(_admin(), spec, NOW, idempotency_key="t-a:race")
        plain = Submission(_admin(), spec, NOW)
        harness.ctx.submissions.write([mine, plain])
        assert len(looked_up) == 2 and mine.replayed
        assert mine.done.result()[0] == other.done.result()[0]
        assert plain.done.result()[0] > other.done.result()[0]  # the rest of the batch is stored on the retry
        assert (_count(harness), _count(harness, JobEventRow)) == (2, 2)
    finally:
        client_b.close()
        ctx_b.db.close()


def _second_app(h: Harness, home: Path) -> tuple[ServerContext, TestClient]:
    """Another server process's state over the same database (its own submission writer)."""
    settings = Settings(home=home, database_url=h.ctx.settings.database_url, scheduler_enabled=False)
    ctx = ServerContext(settings=settings, db=open_database(settings))
    return ctx, TestClient(create_app(ctx))


def test_racing_duplicates_on_two_servers_store_one_job(harness: Harness, tmp_path: Path) -> None:
    ctx_b, client_b = _second_app(harness, tmp_path / "replica")
    clients: list[Callable[..., Any]] = [harness.client.post, client_b.post]
    try:
        for round_ in range(3):
            key = f"race-{round_}"
            barrier = threading.Barrier(8)
            answers: list[Any] = []

            def send(
                n: int, key: str = key, barrier: threading.Barrier = barrier, answers: list[Any] = answers
            ) -> None:
                barrier.wait()
                headers = harness.headers() | {"Idempotency-Key": key}
                answers.append(clients[n % 2]("/api/v1/jobs", json=BODY, headers=headers))

            threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert [a.status_code for a in answers] == [201] * 8, [a.text for a in answers]
            assert len({a.json()["id"] for a in answers}) == 1
            assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 7
        assert (_count(harness), _count(harness, JobEventRow)) == (3, 3)
    finally:
        client_b.close()
        ctx_b.db.close()
