"""What one server process's proxy measures of one service: cumulative counters since the process started.

A :class:`Meter` counts arrivals and their prompt tokens, completions and their output tokens, failed requests,
and integrates the requests in flight over time (request-seconds: from a request's arrival, waiting for a replica
included, to its last byte). Latencies go into :class:`Histogram` s (time to first byte of a streamed answer,
end-to-end). The proxy updates meters on the event loop; the flusher reads :meth:`Meter.counters` from another
thread, so every change holds the meter's lock (a few attribute updates: microseconds).

Counters are cumulative, never reset: the scheduler leader takes the difference between two reads (see
:mod:`stargate.server.inference.traffic`), so a read that is late or missed loses nothing.
"""

import math
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

BUCKET_RATIO = 1.1
"""Each latency bucket's upper bound is 10 % above the previous one's (percentiles to within 10 %)."""
FIRST_BUCKET_S = 0.001
"""The first bucket holds latencies up to 1 ms."""
LAST_BUCKET = 200
"""Buckets 0 to 200: up to about 190,000 s (anything longer lands in the last)."""


def bucket_of(seconds: float) -> int:
    """The latency bucket of ``seconds``: 0 up to 1 ms, then ``i`` for ``(1 ms · 1.1^(i-1), 1 ms · 1.1^i]``."""
    if not seconds > FIRST_BUCKET_S:
        return 0
    return min(LAST_BUCKET, math.ceil(math.log(seconds / FIRST_BUCKET_S, BUCKET_RATIO) - 1e-9))


def bucket_bound(index: int) -> float:
    """The upper bound of bucket ``index``, s."""
    return FIRST_BUCKET_S * BUCKET_RATIO**index


def quantile(counts: Mapping[int, int], q: float) -> float | None:
    """The ``q`` quantile (0 < q ≤ 1) of a histogram as its bucket's upper bound, s; None when it is empty."""
    total = sum(counts.values())
    if total <= 0:
        return None
    rank, seen = q * total, 0
    for index in sorted(counts):
        seen += counts[index]
        if seen >= rank - 1e-9:
            return bucket_bound(index)
    return bucket_bound(max(counts))


@dataclass
class Histogram:
    """Latencies counted by bucket (sparse: only buckets that were hit)."""

    counts: Counter[int] = field(default_factory=Counter)

    def add(self, seconds: float) -> None:
        """Count one latency."""
        self.counts[bucket_of(seconds)] += 1

    def as_json(self) -> dict[str, int]:
        """The counts with text keys (a JSON object)."""
        return {str(k): v for k, v in sorted(self.counts.items())}


@dataclass
class Meter:
    """One service's traffic through this process since it started (see the module docstring)."""

    arrived: int = 0
    prompt_tokens: int = 0
    completed: int = 0
    output_tokens: int = 0
    failed: int = 0
    """Requests the proxy answered itself with an error (no ready replica, no replica answered, cut off)."""
    in_flight: int = 0
    in_flight_s: float = 0.0
    ttft: Histogram = field(default_factory=Histogram)
    e2e: Histogram = field(default_factory=Histogram)
    by_replica: Counter[int] = field(default_factory=Counter)
    """Requests sent to each replica (by number) and not yet answered in full."""
    version: int = 0
    """Increases with every change (the flusher skips a meter unchanged since its last write)."""
    _mark: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _advance(self, now: float) -> None:
        """Integrate the requests in flight up to ``now`` (lock held)."""
        self.in_flight_s += self.in_flight * max(now - self._mark, 0.0)
        self._mark = now

    def arrive(self, prompt_tokens: int) -> None:
        """A request arrived (``prompt_tokens``: 0 when its request does not say)."""
        with self._lock:
            self._advance(time.monotonic())
            self.version += 1
            self.arrived += 1
            self.prompt_tokens += prompt_tokens
            self.in_flight += 1

    def add_prompt_tokens(self, tokens: int) -> None:
        """Prompt tokens learned from an answer (its ``usage``) rather than from the request."""
        with self._lock:
            self.prompt_tokens += tokens
            self.version += 1

    def routed(self, number: int) -> None:
        """A request was sent to replica ``number``."""
        with self._lock:
            self.by_replica[number] += 1
            self.version += 1

    def released(self, number: int) -> None:
        """A request sent to replica ``number`` ended there (answered, failed or cut off)."""
        with self._lock:
            self.by_replica[number] -= 1
            self.version += 1
            if self.by_replica[number] <= 0:
                del self.by_replica[number]

    def outstanding(self, number: int) -> int:
        """Requests this process has at replica ``number`` now."""
        return self.by_replica.get(number, 0)

    def finish(
        self, output_tokens: int | None, ttft_s: float | None, e2e_s: float | None, failed: bool = False
    ) -> None:
        """A request ended: answered by a replica (its output tokens, latencies; ``e2e_s`` None: the client went
        away before the end), or ``failed``."""
        with self._lock:
            self._advance(time.monotonic())
            self.version += 1
            self.in_flight -= 1
            if failed:
                self.failed += 1
                return
            self.completed += 1
            self.output_tokens += output_tokens or 0
            if e2e_s is not None:
                self.e2e.add(e2e_s)
            if ttft_s is not None:
                self.ttft.add(ttft_s)

    def counters(self) -> dict[str, Any]:
        """The cumulative counters as a JSON object (request-seconds integrated up to now)."""
        with self._lock:
            self._advance(time.monotonic())
            return {
                "arrived": self.arrived,
                "prompt_tokens": self.prompt_tokens,
                "completed": self.completed,
                "output_tokens": self.output_tokens,
                "failed": self.failed,
                "in_flight_s": self.in_flight_s,
                "in_flight": self.in_flight,
                "replicas": {str(n): c for n, c in sorted(self.by_replica.items()) if c > 0},
                "ttft": self.ttft.as_json(),
                "e2e": self.e2e.as_json(),
            }
