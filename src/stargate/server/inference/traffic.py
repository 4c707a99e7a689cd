"""The leader's side of measuring: every proxy's cumulative counters (one row per process and service) turned into
one traffic interval per service per tick, and the window's figures shown by ``GET /api/v1/services/NAME``.

Each tick the leader reads every process's row and takes the difference from what it read last time: the sum over
processes is the service's :class:`~stargate.engine.autoscale.Traffic` of the interval. A row first seen by this
leader counts from zero when its process started after the leader began leading (all its traffic is new), else it
is only remembered (its past was counted, or lost, before) and the service's interval of that read is a
*baseline* (:attr:`Interval.baseline`): part of its traffic is not known, so it is no measurement (a new leader's
first tick is one: the autoscaler is not handed it, else it would read the tick as one with no traffic). A process
that stopped leaves a row that no longer changes; rows not written for an hour are deleted.
"""

from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from stargate.engine.autoscale import Traffic
from stargate.server.inference.meter import quantile

COUNTS = ("arrived", "prompt_tokens", "completed", "output_tokens", "failed", "in_flight_s")
"""The cumulative scalar counters of a traffic row."""
LIVE_ROW = timedelta(seconds=10)
"""A row written within this long tells the requests its process has in flight now; an older one is of a process
gone (or idle: it writes while it has requests in flight)."""

Row = tuple[str, str, datetime, datetime, dict[str, Any]]
"""(service, process, started_at, updated_at, counters) as the repository reads it."""


@dataclass
class Interval:
    """One service's traffic over one tick, summed over every process."""

    arrived: int = 0
    prompt_tokens: int = 0
    completed: int = 0
    output_tokens: int = 0
    failed: int = 0
    in_flight_s: float = 0.0
    ttft: Counter[int] = field(default_factory=Counter)
    e2e: Counter[int] = field(default_factory=Counter)
    in_flight: int = 0
    """Requests in flight now (every live process)."""
    by_replica: Counter[int] = field(default_factory=Counter)
    """Requests in flight now at each replica (every live process)."""
    baseline: bool = False
    """A row of it was only remembered (first seen, its process older than this leader's lead): the interval's
    traffic is not known, it is no measurement."""

    def traffic(self, at_s: float, interval_s: float) -> Traffic:
        """This interval as the autoscaler takes it."""
        return Traffic(
            at_s=at_s,
            interval_s=interval_s,
            arrived=self.arrived,
            prompt_tokens=self.prompt_tokens,
            completed=self.completed,
            output_tokens=self.output_tokens,
            in_flight_s=self.in_flight_s,
        )


class TrafficReader:
    """Differences of the proxies' counters between two reads (see the module docstring); ``since``: when this
    leader began leading."""

    def __init__(self, since: datetime) -> None:
        self.since = since
        self.last: dict[tuple[str, str], dict[str, Any]] = {}

    def take(self, rows: Iterable[Row], now: datetime) -> dict[str, Interval]:
        """Each service's interval since the previous call (services with a row only)."""
        found: dict[str, Interval] = {}
        for service, process, started_at, updated_at, counters in rows:
            interval = found.setdefault(service, Interval())
            if now - updated_at <= LIVE_ROW:
                interval.in_flight += int(counters.get("in_flight", 0))
                interval.by_replica.update({int(n): int(c) for n, c in (counters.get("replicas") or {}).items()})
            before = self.last.get((service, process))
            self.last[(service, process)] = counters
            if before is None:
                if started_at < self.since:
                    interval.baseline = True
                    continue
                before = {}
            if any(_number(counters, k) < _number(before, k) for k in COUNTS):
                before = {}  # counters never go down: a row written anew (start from zero)
            _add(interval, counters, before)
        return found

    def forget(self, services: Iterable[str]) -> None:
        """Drop what was remembered of services that are gone."""
        gone = set(services)
        self.last = {key: value for key, value in self.last.items() if key[0] not in gone}


def _number(counters: Mapping[str, Any], key: str) -> float:
    value = counters.get(key, 0)
    return float(value) if isinstance(value, int | float) else 0.0


def _add(interval: Interval, now: Mapping[str, Any], before: Mapping[str, Any]) -> None:
    """Add the difference ``now - before`` of one row to ``interval``."""
    interval.arrived += int(_number(now, "arrived") - _number(before, "arrived"))
    interval.prompt_tokens += int(_number(now, "prompt_tokens") - _number(before, "prompt_tokens"))
    interval.completed += int(_number(now, "completed") - _number(before, "completed"))
    interval.output_tokens += int(_number(now, "output_tokens") - _number(before, "output_tokens"))
    interval.failed += int(_number(now, "failed") - _number(before, "failed"))
    interval.in_flight_s += max(_number(now, "in_flight_s") - _number(before, "in_flight_s"), 0.0)
    for name in ("ttft", "e2e"):
        after, earlier = now.get(name) or {}, before.get(name) or {}
        target: Counter[int] = getattr(interval, name)
        for key, count in after.items():
            delta = int(count) - int(earlier.get(key, 0))
            if delta > 0:
                target[int(key)] += delta


@dataclass
class Window:
    """The intervals of the last ``window_s`` seconds, for the figures a service shows."""

    window_s: float
    intervals: deque[tuple[float, float, Interval]] = field(default_factory=deque)

    def add(self, at_s: float, interval_s: float, interval: Interval) -> None:
        """Add the interval ending at ``at_s``; drop those past the window."""
        self.intervals.append((at_s, interval_s, interval))
        while self.intervals and self.intervals[0][0] <= at_s - self.window_s:
            self.intervals.popleft()

    def stats(self) -> dict[str, Any]:
        """Requests/s, mean requests in flight, completed and failed requests, and the p50 and p99 of time to first
        byte and of end-to-end latency over the window (None where nothing was measured)."""
        seen = sum(i[1] for i in self.intervals)
        ttft: Counter[int] = Counter()
        e2e: Counter[int] = Counter()
        for _, _, interval in self.intervals:
            ttft.update(interval.ttft)
            e2e.update(interval.e2e)
        arrived = sum(i[2].arrived for i in self.intervals)
        return {
            "window_s": round(seen, 3),
            "requests_per_s": round(arrived / seen, 4) if seen > 0 else 0.0,
            "in_flight": round(sum(i[2].in_flight_s for i in self.intervals) / seen, 4) if seen > 0 else 0.0,
            "completed": sum(i[2].completed for i in self.intervals),
            "failed": sum(i[2].failed for i in self.intervals),
            "ttft_p50_s": quantile(ttft, 0.5),
            "ttft_p99_s": quantile(ttft, 0.99),
            "e2e_p50_s": quantile(e2e, 0.5),
            "e2e_p99_s": quantile(e2e, 0.99),
        }
