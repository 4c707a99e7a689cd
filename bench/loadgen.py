"""The load generator of bench/api_load.py: job submissions over minimal keep-alive HTTP/1.1 connections.

A general client (httpx) spends more CPU per request than the server it measures, and both share the machine's
cores; this one writes prepared request bytes and reads only the status and the body length.
"""

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class LoadResult:
    """What one load run measured."""

    label: str
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    client_cpu_s: float = 0.0
    """CPU time the load generator itself used during the run (it shares the cores with the server), s."""
    server_cpu_s: float = 0.0
    """CPU time the server process used during the run (all its threads), s: steadier than the rate on a machine
    other work shares."""

    @property
    def cpu_per_request_ms(self) -> float:
        """Server CPU time per completed request, ms."""
        return 1000 * self.server_cpu_s / self.requests if self.requests else 0.0

    @property
    def rate(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """Latency percentile ``q`` (0–100), ms."""
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else 0.0

    def line(self) -> str:
        """One line of figures."""
        return (
            f"{self.label:<32} {self.rate:>8,.0f} submissions/s   p50 {self.percentile(50):6.1f} ms   "
            f"p99 {self.percentile(99):6.1f} ms   server CPU {self.cpu_per_request_ms:.2f} ms/request   "
            f"({self.requests:,} in {self.seconds:.1f} s, {self.errors} errors; "
            f"load generator CPU {100 * self.client_cpu_s / self.seconds if self.seconds else 0:.0f}% of a core)"
        )


def job_body(n: int) -> dict[str, Any]:
    """The n-th submitted job spec (JSON)."""
    return {"name": f"bench-{n}", "queue": "bench-q", "gpus": 1 + n % 8, "command": "true"}


class LoopbackClient:
    """A minimal HTTP/1.1 keep-alive client over one loopback connection: it writes prepared request bytes and
    reads status line, headers and a ``Content-Length`` body. Several times cheaper per request than a general
    client, so the load generator (sharing the machine's cores with the server) does not set the pace."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.head = (
            f"POST /api/v1/jobs HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\n"
        )
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> int:
        """Send one submission; its HTTP status (0 when the connection failed)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(f"{self.head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        """Close the connection."""
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
            self.writer = None


async def _worker(
    client: LoopbackClient, next_n: Callable[[], int | None], out: list[float], errors: list[int]
) -> None:
    while (n := next_n()) is not None:
        body = json.dumps(job_body(n)).encode()
        t0 = time.perf_counter()
        try:
            status = await asyncio.wait_for(client.post(body), timeout=10)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            status = 0  # a timeout or a dropped connection counts as an error, not a crash
            await client.close()
        out.append((time.perf_counter() - t0) * 1000)
        if status != 201:
            errors.append(status)


async def load(
    url: str, token: str, count: int, concurrency: int, max_seconds: float
) -> tuple[float, list[float], int, float]:
    """Send ``count`` submissions with ``concurrency`` connections; (seconds, latencies ms, errors, CPU seconds
    the load generator itself used)."""
    counter = iter(range(count))
    deadline = time.monotonic() + max_seconds

    def next_n() -> int | None:
        return next(counter, None) if time.monotonic() < deadline else None

    latencies: list[float] = []
    errors: list[int] = []
    address = httpx.URL(url)
    clients = [LoopbackClient(address.host, address.port or 80, token) for _ in range(concurrency)]
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(_worker(c, next_n, latencies, errors) for c in clients))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await asyncio.gather(*(c.close() for c in clients))
    return seconds, latencies, len(errors), cpu
