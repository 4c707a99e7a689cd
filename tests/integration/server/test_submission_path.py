"""The fast submission path: verified tokens cached for a few seconds and dropped on token changes; the writer
that stores concurrent submissions in one transaction answers each one on its own."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from integration.server.stargate_harness import Harness
from stargate.domain import JobSpec
from stargate.server.auth import Principal, Role, TokenCache
from stargate.server.errors import ForbiddenError, InvalidError
from stargate.server.writer import Submission
from stargate.store import JobEventRow, JobRow, TokenRow, parse_job_id

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def _revoke_in_database(h: Harness, name: str) -> None:
    """Revoke a token behind the server's back, as another process would."""
    with h.ctx.db.write() as s:
        s.execute(update(TokenRow).where(TokenRow.name == name).values(revoked_at=NOW))


def test_a_verified_token_is_trusted_until_a_token_changes(harness: Harness) -> None:
    member = harness.headers("member", "alpha")
    assert harness.client.get("/api/v1/whoami", headers=member).status_code == 200
    _revoke_in_database(harness, "member-alpha")
    assert harness.client.get("/api/v1/whoami", headers=member).status_code == 200  # cached, within its 5 s
    created = harness.client.post(
        "/api/v1/tokens", json={"name": "other", "team": "beta", "role": "viewer"}, headers=harness.headers()
    )
    assert created.status_code == 201
    answer = harness.client.get("/api/v1/whoami", headers=member)
    assert answer.status_code == 401 and answer.json() == {"detail": "unknown, revoked or expired token"}


def test_a_cached_token_expires_after_its_ttl() -> None:
    who = Principal(token_id="t-1", name="n", team=None, role=Role.ADMIN)
    lasting, expired = TokenCache(ttl_s=60), TokenCache(ttl_s=0)
    for cache in (lasting, expired):
        cache.put("digest", who)
    assert (lasting.get("digest"), expired.get("digest"), lasting.get("other")) == (who, None, None)
    lasting.clear()
    assert lasting.get("digest") is None


def test_unknown_tokens_are_not_remembered(harness: Harness) -> None:
    bad = {"Authorization": "Bearer not-a-token-at-all"}
    assert harness.client.get("/api/v1/whoami", headers=bad).status_code == 401
    assert harness.ctx.tokens.get("not-a-token-at-all") is None and not harness.ctx.tokens._entries


def test_one_batch_stores_the_good_submissions_and_answers_each_error_alone(harness: Harness) -> None:
    admin = Principal(token_id="t-a", name="admin", team=None, role=Role.ADMIN)
    member = Principal(token_id="t-m", name="member-alpha", team="alpha", role=Role.MEMBER)
    batch = [
        Submission(admin, JobSpec(name="a", queue="alpha-q", gpus=1, command="true"), NOW),
        Submission(admin, JobSpec(name="b", queue="nowhere", gpus=1, command="true"), NOW),
        Submission(member, JobSpec(name="c", queue="beta-q", gpus=1, command="true"), NOW),
        Submission(member, JobSpec(name="d", queue="alpha-q", gpus=2, command="true"), NOW),
    ]
    harness.ctx.submissions.write(batch)
    assert isinstance(batch[1].done.exception(), InvalidError)
    assert isinstance(batch[2].done.exception(), ForbiddenError)
    (id_a, values_a), (id_d, values_d) = batch[0].done.result(), batch[3].done.result()
    assert id_d > id_a and (values_a["name"], values_d["team_id"]) == ("a", "alpha")
    with harness.ctx.db.read() as s:
        jobs = {j.id: j for j in s.scalars(select(JobRow))}
        events = [(e.job_id, e.actor, e.from_status, e.to_status) for e in s.scalars(select(JobEventRow))]
    assert sorted(jobs) == [id_a, id_d] and jobs[id_d].gpus == 2 and jobs[id_a].submitted_at == NOW
    assert events == [(id_a, "token:admin", None, "pending"), (id_d, "token:member-alpha", None, "pending")]


def test_a_job_checked_against_an_older_fleet_version_is_checked_again(harness: Harness) -> None:
    admin = Principal(token_id="t-a", name="admin", team=None, role=Role.ADMIN)
    spec = JobSpec(name="x", queue="gone-q", gpus=1, command="true")
    forged = {"name": "x", "queue_id": "gone-q"}  # what a check against some other fleet might have produced
    item = Submission(admin, spec, NOW, values=forged, version="an-older-version")
    harness.ctx.submissions.write([item])
    with pytest.raises(InvalidError, match=r"body\.queue: found 'gone-q'"):
        item.done.result()


def test_the_api_answers_the_stored_job(harness: Harness) -> None:
    job = harness.submit(name="api", gpus=3, gpu_models=["H100-SXM"])
    again = harness.client.get(f"/api/v1/jobs/{job['id']}", headers=harness.headers()).json()
    assert job == again and parse_job_id(str(job["id"])) is not None
    assert (job["status"], job["reason"], job["detail"]) == ("pending", "submitted", "")
    assert (job["attempt"], job["spec"]["gpus"]) == (0, 3)


def test_a_request_cancelled_before_its_batch_is_not_stored_and_the_rest_are(harness: Harness) -> None:
    admin = Principal(token_id="t-a", name="admin", team=None, role=Role.ADMIN)
    gone = Submission(admin, JobSpec(name="gone", queue="alpha-q", gpus=1, command="true"), NOW)
    kept = Submission(admin, JobSpec(name="kept", queue="alpha-q", gpus=1, command="true"), NOW)
    assert gone.done.cancel()
    harness.ctx.submissions.write([gone, kept])
    with harness.ctx.db.read() as s:
        assert [j.name for j in s.scalars(select(JobRow))] == ["kept"]
    assert kept.done.result()[1]["name"] == "kept"


def test_the_writer_thread_serves_concurrent_submissions_and_stops(harness: Harness) -> None:
    admin = Principal(token_id="t-a", name="admin", team=None, role=Role.ADMIN)
    items = [Submission(admin, JobSpec(name=f"n{i}", queue="alpha-q", gpus=1, command="true"), NOW) for i in range(50)]
    futures = [harness.ctx.submissions.put(item) for item in items]
    ids = [f.result(timeout=30)[0] for f in futures]
    harness.ctx.submissions.stop()
    assert len(set(ids)) == 50
    with harness.ctx.db.read() as s:
        assert len(list(s.scalars(select(JobEventRow)))) == 50
