"""The submission route's direct path (a cached token, a valid JSON spec) answers as FastAPI's handler does, and
skips FastAPI's dependency resolution; anything else takes FastAPI's handler."""

from pathlib import Path
from typing import Any

import fastapi.routing
import pytest

from integration.server.stargate_harness import Harness

GOOD = {"name": "job", "queue": "alpha-q", "gpus": 1, "command": "true"}
CASES: list[tuple[str, dict[str, Any]]] = [
    ("valid", {"json": GOOD}),
    ("unknown queue", {"json": {**GOOD, "queue": "nowhere"}}),
    ("other team's queue", {"json": {**GOOD, "queue": "beta-q"}}),
    ("unknown GPU model", {"json": {**GOOD, "gpu_models": ["Z9"]}}),
    ("bad field", {"json": {**GOOD, "gpus": -1}}),
    ("unknown field", {"json": {**GOOD, "colour": "red"}}),
    ("not an object", {"json": [GOOD]}),
    ("repeated key", {"content": b'{"name":"a","name":"b","queue":"alpha-q","gpus":1,"command":"true"}'}),
    ("not JSON", {"content": b'{"name":', "headers": {"Content-Type": "application/json"}}),
    ("text body", {"content": b"name=job", "headers": {"Content-Type": "text/plain"}}),
    ("empty body", {"content": b"", "headers": {"Content-Type": "application/json"}}),
    ("bad idempotency key", {"json": GOOD, "headers": {"Idempotency-Key": ""}}),
    ("idempotency key", {"json": GOOD, "headers": {"Idempotency-Key": "k-1"}}),
    ("replayed key", {"json": GOOD, "headers": {"Idempotency-Key": "k-1"}}),
    ("reused key", {"json": {**GOOD, "gpus": 2}, "headers": {"Idempotency-Key": "k-1"}}),
]


def _answer(h: Harness, cached: bool, role: str, team: str | None, case: dict[str, Any]) -> tuple[Any, ...]:
    headers = {**h.headers(role, team), **case.get("headers", {})}
    if cached:
        h.client.get("/api/v1/whoami", headers=h.headers(role, team))  # the token is verified and cached now
    else:
        h.ctx.tokens.clear()
    if "content" in case and "Content-Type" not in headers:
        headers["Content-Type"] = "application/json"
    answer = h.client.post("/api/v1/jobs", headers=headers, **{k: v for k, v in case.items() if k != "headers"})
    body = answer.json()
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in ("id", "submitted_at")}
        body["detail"] = str(body.get("detail", "")).replace("j-000", "j-")  # job ids differ between the runs
    return answer.status_code, body, answer.headers.get("idempotent-replayed"), answer.headers.get("content-type")


@pytest.mark.parametrize(("role", "team"), [("admin", None), ("member", "alpha"), ("viewer", "alpha")])
def test_the_direct_path_answers_as_fastapis_handler(
    tmp_path: Path, make_harness: Any, role: str, team: str | None
) -> None:
    direct, fastapi_path = (make_harness(f"sqlite:///{tmp_path / name}.db") for name in ("direct", "fastapi"))
    for name, case in CASES:
        expected = _answer(fastapi_path, False, role, team, case)
        assert _answer(direct, True, role, team, case) == expected, name
    assert direct.submit(role="admin")["status"] == "pending"


def test_a_cached_token_and_a_valid_spec_skip_dependency_resolution(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    solve = fastapi.routing.solve_dependencies

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["request"].url.path)
        return await solve(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counted)
    first = harness.submit()  # the token is looked up: FastAPI's handler
    second = harness.submit()  # cached: the direct path
    assert calls == ["/api/v1/jobs"]
    assert (first["status"], second["status"], first["id"] != second["id"]) == ("pending", "pending", True)
    bad = harness.client.post("/api/v1/jobs", json={**GOOD, "gpus": 0}, headers=harness.headers())
    assert bad.status_code == 422 and bad.json()["detail"].startswith("body.gpus: found 0")
    assert calls == ["/api/v1/jobs", "/api/v1/jobs"]
