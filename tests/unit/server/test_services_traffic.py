"""Measuring a service's traffic: a meter's cumulative counters (request-seconds in flight included), latency
histograms and their percentiles, the leader's differences between two reads of every process's counters (a row
first seen counts from zero only when its process started after the leader), and what the proxy reads of requests
and answers (prompt_tokens, max_tokens, usage)."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from stargate.server.inference.meter import Meter, bucket_bound, bucket_of, quantile
from stargate.server.inference.proxy import answer_usage, request_tokens
from stargate.server.inference.traffic import TrafficReader, Window

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_latency_buckets_are_within_ten_percent_and_percentiles_take_the_bucket_bound() -> None:
    for seconds in (0.0005, 0.001, 0.0123, 0.5, 1.0, 7.3, 600.0):
        index = bucket_of(seconds)
        assert bucket_bound(index) >= seconds and (index == 0 or bucket_bound(index - 1) < seconds)
        assert bucket_bound(index) <= max(seconds, 0.001) * 1.1 + 1e-12
    counts = {bucket_of(0.1): 98, bucket_of(2.0): 2}
    assert quantile(counts, 0.5) == pytest.approx(bucket_bound(bucket_of(0.1)))
    assert quantile(counts, 0.99) == pytest.approx(bucket_bound(bucket_of(2.0)))
    assert quantile({}, 0.5) is None


def test_a_meter_counts_requests_tokens_and_request_seconds_in_flight() -> None:
    meter = Meter()
    meter.arrive(100)
    meter.arrive(0)
    meter.routed(3)
    assert meter.outstanding(3) == 1 and meter.in_flight == 2
    meter.add_prompt_tokens(40)
    meter.released(3)
    meter.finish(20, 0.05, 0.4)
    meter.finish(None, None, None, failed=True)
    counters = meter.counters()
    assert {k: counters[k] for k in ("arrived", "prompt_tokens", "completed", "output_tokens", "failed")} == {
        "arrived": 2,
        "prompt_tokens": 140,
        "completed": 1,
        "output_tokens": 20,
        "failed": 1,
    }
    assert counters["in_flight"] == 0 and counters["replicas"] == {} and counters["in_flight_s"] >= 0
    assert counters["e2e"] == {str(bucket_of(0.4)): 1} and counters["ttft"] == {str(bucket_of(0.05)): 1}
    json.dumps(counters)  # stored as a JSON column


def _row(process: str, started: datetime, at: datetime, **counts: object) -> tuple[str, str, datetime, datetime, dict]:
    return ("chat", process, started, at, {"arrived": 0, "in_flight_s": 0.0, **counts})


def test_the_leader_sums_the_differences_of_every_process_since_its_last_read() -> None:
    reader = TrafficReader(since=T0)
    old, new = T0 - timedelta(hours=1), T0 + timedelta(seconds=5)
    first = reader.take([_row("a", old, T0, arrived=100, in_flight_s=50.0)], T0)
    assert first["chat"].arrived == 0  # a process older than this leader: its past is not this interval's
    later = T0 + timedelta(seconds=10)
    rows = [
        _row("a", old, later, arrived=130, in_flight_s=62.5, e2e={"40": 3}, replicas={"1": 2}, in_flight=2),
        _row("b", new, later, arrived=7, in_flight_s=1.5, replicas={"1": 1, "2": 4}, in_flight=5),
    ]
    second = reader.take(rows, later)["chat"]
    assert (second.arrived, second.in_flight_s, dict(second.e2e)) == (37, 14.0, {40: 3})
    assert (second.in_flight, dict(second.by_replica)) == (7, {1: 3, 2: 4})
    traffic = second.traffic(at_s=20.0, interval_s=10.0)
    assert (traffic.arrived, traffic.in_flight_s, traffic.interval_s) == (37, 14.0, 10.0)
    stale = reader.take(rows, later + timedelta(seconds=60))["chat"]
    assert (stale.arrived, stale.in_flight) == (0, 0)  # nothing new, and rows that old say nothing about now


def test_a_window_reports_rates_in_flight_and_percentiles() -> None:
    reader = TrafficReader(since=T0 - timedelta(hours=2))
    window = Window(window_s=10)
    at = T0
    for step in range(1, 4):
        at = T0 + timedelta(seconds=5 * step)
        counts = {"arrived": 10 * step, "in_flight_s": 5.0 * step, "completed": 10 * step, "e2e": {"30": 10 * step}}
        window.add(5.0 * step, 5.0, reader.take([_row("a", T0, at, **counts)], at)["chat"])
    stats = window.stats()
    assert (stats["window_s"], stats["requests_per_s"], stats["in_flight"], stats["completed"]) == (10, 2.0, 1.0, 20)
    assert stats["e2e_p50_s"] == pytest.approx(bucket_bound(30)) and stats["ttft_p50_s"] is None


@pytest.mark.parametrize(
    ("body", "content_type", "found"),
    [
        (b'{"prompt_tokens": 120, "max_tokens": 30}', "application/json", (120, 30)),
        (b'{"prompt": "hi", "max_tokens": 30}', "application/json; charset=utf-8", (None, 30)),
        (b'{"prompt_tokens": -1, "max_tokens": true}', "application/json", (None, None)),
        (b"[1, 2]", "application/json", (None, None)),
        (b"not json", "application/json", (None, None)),
        (b'{"prompt_tokens": 5}', "text/plain", (None, None)),
    ],
)
def test_what_the_proxy_reads_of_a_request(
    body: bytes, content_type: str, found: tuple[int | None, int | None]
) -> None:
    assert request_tokens(body, content_type) == found


def test_what_the_proxy_reads_of_an_answer() -> None:
    usage = {"prompt_tokens": 7, "completion_tokens": 9}
    assert answer_usage(json.dumps({"choices": [], "usage": usage}).encode(), streamed=False) == usage
    stream = f'data: {{"choices": []}}\n\ndata: {json.dumps({"usage": usage})}\n\ndata: [DONE]\n\n'.encode()
    assert answer_usage(stream, streamed=True) == usage
    assert answer_usage(b'data: {"choices": []}\n\n', streamed=True) == {}
    assert answer_usage(b"{truncated", streamed=False) == {}
