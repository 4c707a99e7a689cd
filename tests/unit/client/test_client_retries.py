"""The client's bounded retries (only transient failures, exponential backoff within a budget), the Idempotency-Key
it sends, and expiry parsing (no server: httpx.MockTransport and a fake clock)."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from stargate.client import (
    ClientError,
    InvalidError,
    ServerError,
    ServerUnreachableError,
    StargateClient,
    parse_expiry,
    with_retries,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


class FakeTime:
    """A clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failing(errors: list[ClientError], result: str = "ok") -> tuple[list[int], object]:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result

    return calls, call


def test_transient_errors_are_retried_with_growing_delays_until_success() -> None:
    fake = FakeTime()
    errors: list[ClientError] = [ServerUnreachableError("refused")] * 3 + [ServerError(503, "busy")]
    calls, call = failing(errors)
    told: list[int] = []
    result = with_retries(call, 30, lambda e, n, d: told.append(n), sleep=fake.sleep, clock=fake.clock)  # type: ignore[arg-type]
    assert result == "ok" and len(calls) == 5 and told == [1, 2, 3, 4]
    assert all(b > a for a, b in zip(fake.sleeps, fake.sleeps[1:], strict=False))  # backoff grows
    assert 0.18 <= fake.sleeps[0] <= 0.25 and fake.sleeps[-1] <= 2.0


def test_retries_stop_at_the_budget_with_the_last_error() -> None:
    fake = FakeTime()
    calls, call = failing([ServerUnreachableError("refused")] * 1000)
    with pytest.raises(ServerUnreachableError):
        with_retries(call, 10, sleep=fake.sleep, clock=fake.clock)  # type: ignore[arg-type]
    assert fake.now == pytest.approx(10) and max(fake.sleeps) <= 4.0 and len(calls) < 15


@pytest.mark.parametrize("error", [InvalidError(422, "bad"), ServerError(200, "the answer is not JSON")])
def test_refusals_are_never_retried(error: ClientError) -> None:
    fake = FakeTime()
    calls, call = failing([error])
    with pytest.raises(type(error)):
        with_retries(call, 30, sleep=fake.sleep, clock=fake.clock)  # type: ignore[arg-type]
    assert len(calls) == 1 and fake.sleeps == []


def test_submit_sends_the_idempotency_key_header() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Idempotency-Key"))
        return httpx.Response(201, json={"id": "j-000001"})

    client = StargateClient("http://sg.test", "tok", transport=httpx.MockTransport(handler))
    client.submit_job({"name": "a"}, idempotency_key="k-1")
    client.submit_job({"name": "a"})
    assert seen == ["k-1", None]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", NOW + timedelta(seconds=90)),
        ("30m", NOW + timedelta(minutes=30)),
        ("12h", NOW + timedelta(hours=12)),
        ("7d", NOW + timedelta(days=7)),
        ("2w", NOW + timedelta(weeks=2)),
        ("2027-01-01T00:00:00Z", datetime(2027, 1, 1, tzinfo=UTC)),
        ("2027-01-01T02:00:00+02:00", datetime(2027, 1, 1, tzinfo=UTC)),
    ],
)
def test_expiry_is_a_duration_or_a_zoned_time(text: str, expected: datetime) -> None:
    assert parse_expiry(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("0s", "not in the future"),
        ("2026-01-01T00:00:00Z", "not in the future"),
        ("2027-01-01T00:00:00", "without a time zone"),
        ("soon", "expected a duration"),
        ("9999999d", "expected a duration"),
        ("999999w", "too far in the future"),
    ],
)
def test_a_bad_expiry_says_what_was_expected(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_expiry(text, NOW)
