"""Review findings on the submission path (direct path, submission batches): regression tests, xfail until fixed.

A token's name may be 1 to 200 characters (``POST /api/v1/tokens``), but every row that records who acted stores
``token:<name>`` (up to 206 characters) in a ``VARCHAR(200)`` column (``jobs.submitted_by``, ``job_events.actor``).
SQLite does not enforce the length; PostgreSQL refuses the value, so on PostgreSQL such a token can submit nothing
(500), cancel nothing (500), and one of its submissions fails the whole batch it shares with other teams' jobs.
"""

from datetime import UTC, datetime

import pytest

from integration.server.stargate_harness import Harness
from stargate.domain import JobSpec
from stargate.server.auth import Principal, Role
from stargate.server.writer import Submission

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
LONG_NAME = "n" * 200  # the longest token name POST /api/v1/tokens accepts
GOOD = {"name": "job", "queue": "alpha-q", "gpus": 1, "command": "true"}


def _postgres_only(db_url: str) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite does not enforce VARCHAR lengths: the defect shows on PostgreSQL only")


def _token(h: Harness, name: str, role: str, team: str | None) -> str:
    answer = h.client.post(
        "/api/v1/tokens", json={"name": name, "role": role, "team": team}, headers=h.headers("admin")
    )
    assert answer.status_code == 201, answer.text
    token: str = answer.json()["token"]
    return token


def test_a_token_with_the_longest_allowed_name_can_submit(db_url: str, make_harness: object) -> None:
    _postgres_only(db_url)
    h: Harness = make_harness(db_url)  # type: ignore[operator]
    secret = _token(h, LONG_NAME, "member", "alpha")
    answer = h.client.post("/api/v1/jobs", json=GOOD, headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 201, answer.text


def test_an_admin_token_with_the_longest_allowed_name_can_cancel(db_url: str, make_harness: object) -> None:
    _postgres_only(db_url)
    h: Harness = make_harness(db_url)  # type: ignore[operator]
    job = h.submit()
    secret = _token(h, LONG_NAME, "admin", None)
    answer = h.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 200, answer.text


def test_one_unstorable_submission_fails_only_itself(db_url: str, make_harness: object) -> None:
    _postgres_only(db_url)
    h: Harness = make_harness(db_url)  # type: ignore[operator]
    other_team = Principal(token_id="t-b", name="beta-member", team="beta", role=Role.MEMBER)
    long_named = Principal(token_id="t-l", name=LONG_NAME, team="alpha", role=Role.MEMBER)
    batch = [
        Submission(other_team, JobSpec(name="b-1", queue="beta-q", gpus=1, command="true"), NOW),
        Submission(long_named, JobSpec(name="a-1", queue="alpha-q", gpus=1, command="true"), NOW),
        Submission(other_team, JobSpec(name="b-2", queue="beta-q", gpus=1, command="true"), NOW),
    ]
    h.ctx.submissions.write(batch)
    assert batch[0].done.exception() is None, batch[0].done.exception()
    assert batch[2].done.exception() is None, batch[2].done.exception()


def test_a_row_the_database_refuses_fails_only_its_own_request(db_url: str, make_harness: object) -> None:
    """A row that does not fit its columns (here a name longer than ``jobs.name``) gets a 422 naming why; the other
    rows of its batch are stored and acknowledged."""
    from stargate.server.errors import InvalidError
    from stargate.server.services import jobs as job_service

    _postgres_only(db_url)
    h: Harness = make_harness(db_url)  # type: ignore[operator]
    h.submit()  # the fleet is known to the server from here on
    known = h.ctx.fleet.peek()
    assert known is not None
    who = Principal(token_id="t-b", name="beta-member", team="beta", role=Role.MEMBER)
    bad_spec = JobSpec(name="b-bad", queue="beta-q", gpus=1, command="true")
    bad = Submission(who, bad_spec, NOW)
    bad.values = {**job_service.check(who, bad_spec, known[1], NOW), "name": "x" * 300}
    bad.version = known[0]
    batch = [
        Submission(who, JobSpec(name="b-1", queue="beta-q", gpus=1, command="true"), NOW),
        bad,
        Submission(who, JobSpec(name="b-2", queue="beta-q", gpus=1, command="true"), NOW),
    ]
    h.ctx.submissions.write(batch)
    refused = bad.done.exception()
    assert isinstance(refused, InvalidError) and "value too long" in refused.detail, refused
    stored = [item.done.result()[0] for item in (batch[0], batch[2])]
    listed = {j["id"] for j in h.client.get("/api/v1/jobs", headers=h.headers("admin")).json()["items"]}
    assert {f"j-{n:06d}" for n in stored} <= listed


def test_a_token_revoked_during_its_lookup_is_refused_at_once_by_this_server(
    sqlite_url: str, make_harness: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The revoking server must refuse a token at once (docs/howto/replicas.md), even when one of its requests was
    looking the token up while the revocation committed and cleared the cache."""
    from stargate.server import deps

    h: Harness = make_harness(sqlite_url)  # type: ignore[operator]
    secret = _token(h, "victim", "member", "alpha")
    token_id = h.client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {secret}"}).json()["token_id"]
    h.ctx.tokens.clear()
    real = deps._lookup

    def lookup_then_revoked(ctx: object, authorization: str | None) -> Principal:
        who = real(ctx, authorization)  # type: ignore[arg-type]
        monkeypatch.setattr(deps, "_lookup", real)
        revoked = h.client.post(f"/api/v1/tokens/{token_id}/revoke", headers=h.headers("admin"))
        assert revoked.status_code == 200, revoked.text  # committed and the cache cleared, before the put below
        return who

    monkeypatch.setattr(deps, "_lookup", lookup_then_revoked)
    assert h.client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    later = h.client.post("/api/v1/jobs", json=GOOD, headers={"Authorization": f"Bearer {secret}"})
    assert later.status_code == 401, later.text


def test_a_lookup_that_began_before_a_clear_is_not_cached() -> None:
    from stargate.server.auth import TokenCache

    cache, who = TokenCache(ttl_s=60), Principal(token_id="t-1", name="n", team=None, role=Role.MEMBER)
    before = cache.generation
    cache.clear()
    cache.put("digest", who, before)
    assert cache.get("digest") is None
    cache.put("digest", who, cache.generation)
    assert cache.get("digest") == who


@pytest.mark.parametrize(
    ("field", "value", "known"),
    [
        ("allowed_providers", "nowhere", "the id of a provider (lab)"),
        ("allowed_regions", "mars", "the region of a site (local)"),
    ],
)
@pytest.mark.parametrize("cached", [True, False], ids=["direct", "fastapi"])
def test_an_unknown_provider_or_region_is_a_located_422_at_submission(
    sqlite_url: str, make_harness: object, field: str, value: str, known: str, cached: bool
) -> None:
    h: Harness = make_harness(sqlite_url)  # type: ignore[operator]
    h.submit()  # the token is cached now: the next submission takes the direct path
    if not cached:
        h.ctx.tokens.clear()
    answer = h.client.post(
        "/api/v1/jobs",
        json={**GOOD, field: ["local" if field == "allowed_regions" else "lab", value]},
        headers=h.headers("admin"),
    )
    assert answer.status_code == 422, answer.text
    assert answer.json() == {"detail": f"body.{field}[1]: found '{value}', expected {known}"}


def test_a_trailing_slash_is_a_located_404_not_a_redirect(sqlite_url: str, make_harness: object) -> None:
    h: Harness = make_harness(sqlite_url)  # type: ignore[operator]
    answer = h.client.post("/api/v1/jobs/", json=GOOD, headers={**h.headers("admin"), "Host": "evil.example"})
    assert answer.status_code == 404 and "location" not in answer.headers, answer.headers
    assert answer.json() == {
        "detail": "path: found '/api/v1/jobs/', expected an API path without the trailing slash (see /docs)"
    }
    wrong = h.client.delete("/api/v1/jobs", headers=h.headers("admin"))
    assert wrong.status_code == 405 and wrong.json()["detail"].startswith("method: found DELETE on '/api/v1/jobs'")


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b'{"name": ' + b"1" * 5000 + b"}", "body: found JSON Python cannot read (Exceeds the limit (4300 digits)"),
        (b"[" * 100_000 + b"]" * 100_000, "body: found JSON nested too deep to read"),
    ],
    ids=["long-integer", "deep-nesting"],
)
@pytest.mark.parametrize("cached", [True, False], ids=["direct", "fastapi"])
def test_json_python_cannot_read_is_a_located_422(
    sqlite_url: str, make_harness: object, body: bytes, said: str, cached: bool
) -> None:
    h: Harness = make_harness(sqlite_url)  # type: ignore[operator]
    h.submit()
    if not cached:
        h.ctx.tokens.clear()
    headers = {**h.headers("admin"), "Content-Type": "application/json"}
    answer = h.client.post("/api/v1/jobs", content=body, headers=headers)
    assert answer.status_code == 422 and answer.json()["detail"].startswith(said), answer.text


def test_a_form_body_is_shown_as_text(sqlite_url: str, make_harness: object) -> None:
    h: Harness = make_harness(sqlite_url)  # type: ignore[operator]
    answer = h.client.post("/api/v1/jobs", data={"name": "job", "queue": "alpha-q"}, headers=h.headers("admin"))
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("body: found 'name=job&queue=alpha-q', expected"), answer.text


def test_a_standby_says_the_policy_it_shows_may_not_be_the_leaders(sqlite_url: str, make_harness: object) -> None:
    h: Harness = make_harness(sqlite_url)  # type: ignore[operator]
    assert h.client.get("/api/v1/fleet/scheduling", headers=h.headers()).json()["answered_by"] is None  # no scheduler
    for leads, said in ((True, "leader"), (False, "standby")):
        h.app.state.leads = lambda leads=leads: leads
        for path in ("/api/v1/fleet/scheduling", "/api/v1/fleet"):
            body = h.client.get(path, headers=h.headers()).json()
            shown = body if path.endswith("scheduling") else body["scheduling"]
            assert shown["answered_by"] == said, shown
            assert (shown["note"] is not None) == (not leads) and "not necessarily the leader's" in (
                shown["note"] or "x not necessarily the leader's"
            )
