"""Bad procurement input is refused with a located message and writes nothing: a late or second answer (409), a
negative, non-finite or malformed price, an unknown GPU model, a quote for a site of another provider (422)."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.server.money_support import Money, money_harness


@pytest.fixture
def m(db_url: str, tmp_path: Path) -> Iterator[Money]:
    yield from money_harness(db_url, tmp_path / "home")


def _refused(m: Money, status: int, words: str, method: str, path: str, headers: Any = None, **kwargs: Any) -> None:
    rows = m.rows()
    response = m.call(method, path, headers, **kwargs)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"], response.json()["detail"]
    assert m.rows() == rows, "a refused step wrote rows"


def test_an_answer_at_or_after_the_deadline_is_late(m: Money) -> None:
    offer = m.request()["request"]["offer"]
    m.tick(days=7)  # exactly the deadline: the window is half-open
    path = f"/procurement/offers/{offer['id']}/respond"
    _refused(m, 409, "expected one before its deadline", "POST", path, m.provider("oracle"), json={"answer": "match"})
    assert m.ok("GET", f"/procurement/requests/{offer['request_id']}")["offer"]["state"] == "open"


def test_a_second_answer_is_refused(m: Money) -> None:
    offer = m.request()["request"]["offer"]
    path = f"/procurement/offers/{offer['id']}/respond"
    m.ok("POST", path, m.provider("oracle"), json={"answer": "decline"})
    _refused(
        m, 409, "found it declined by token:oracle-bot", "POST", path, m.provider("oracle"), json={"answer": "match"}
    )


@pytest.mark.parametrize("price", [-1, "-0.5", "NaN", "Infinity", "1e400", "abc", "0.0000001"])
def test_a_bad_price_names_the_field(m: Money, price: object) -> None:
    offer = m.request()["request"]["offer"]
    path = f"/procurement/offers/{offer['id']}/respond"
    body = {"answer": "match", "price_per_gpu_hour_usd": price}
    _refused(m, 422, "body.price_per_gpu_hour_usd", "POST", path, m.provider("oracle"), json=body)


def test_a_non_finite_json_number_is_refused(m: Money) -> None:
    offer = m.request()["request"]["offer"]
    path = f"/procurement/offers/{offer['id']}/respond"
    raw = b'{"answer": "match", "price_per_gpu_hour_usd": NaN}'
    headers = m.provider("oracle") | {"content-type": "application/json"}
    _refused(m, 422, "body.price_per_gpu_hour_usd", "POST", path, headers, content=raw)


def test_a_request_for_an_unknown_gpu_model_names_the_field(m: Money) -> None:
    body = {"gpu_model": "Z9000", "gpus": 8, "start": "2027-01-01", "term_days": 30}
    _refused(m, 422, "body.gpu_model: found 'Z9000'", "POST", "/procurement/requests", json=body)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"gpus": 0}, "body.gpus"),
        ({"term_days": 0}, "body.term_days"),
        ({"start": "2027-02-30"}, "body.start"),
        ({"colour": "red"}, "body.colour"),
    ],
)
def test_a_bad_request_body_names_the_field(m: Money, change: dict[str, object], words: str) -> None:
    body = {"gpu_model": "GB200", "gpus": 8, "start": "2027-01-01", "term_days": 30} | change
    _refused(m, 422, words, "POST", "/procurement/requests", json=body)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"price_per_gpu_hour_usd": "-3"}, "body.price_per_gpu_hour_usd"),
        ({"site": "lab-1"}, "body.site"),
        ({"gpu_model": "Z9000"}, "body.gpu_model"),
    ],
)
def test_a_bad_quote_names_the_field(m: Money, change: dict[str, object], words: str) -> None:
    body = {
        "provider": "coreweave",
        "site": "coreweave-us",
        "gpu_model": "B200",
        "gpus_per_node": 8,
        "price_per_gpu_hour_usd": "4.5",
        "valid_from": "2026-01-01",
    } | change
    _refused(m, 422, words, "POST", "/procurement/quotes", json=body)


def test_members_and_viewers_may_not_raise_requests_or_add_quotes(m: Money) -> None:
    body = {"gpu_model": "GB200", "gpus": 8, "start": "2027-01-01", "term_days": 30}
    for role in ("member", "viewer"):
        _refused(
            m, 403, "needs the 'admin' role", "POST", "/procurement/requests", m.h.headers(role, "alpha"), json=body
        )
    assert m.ok("GET", "/procurement/requests", m.h.headers("viewer", "alpha")) == []


def test_unknown_offers_and_requests_are_404(m: Money) -> None:
    _refused(
        m, 404, "no offer 'offer-nope'", "POST", "/procurement/offers/offer-nope/respond", json={"answer": "match"}
    )
    _refused(m, 404, "no capacity request", "POST", "/procurement/requests/r-nope/override", json={"reason": "x"})
    assert m.call("GET", "/procurement/requests/r-nope").status_code == 404
