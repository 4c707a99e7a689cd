"""Proxy overhead: what ``/services/NAME/...`` adds to a request's latency at 500 requests/s on loopback.

A real ``stargate up`` (the e2e tests' server helper, a fresh state directory, SQLite unless ``--postgres-url``)
serves one service of one replica: the example replica program (examples/services/replica.py, as
examples/services/local.yaml runs it) with a profile so fast that a request of 1 prompt and 1 output token takes
about 0.1 ms, so what is measured is the path, not the model. The load generator sends ``POST /v1/completions``
open-loop at ``--rate`` requests/s over minimal keep-alive HTTP/1.1 connections (a connection per request in
flight), alternately **direct** to the replica's port and **through the proxy** (with a bearer token), in blocks of
``--block`` seconds (``--blocks`` of each, after a warm-up of 2 s of each). Blocks of a second keep both paths in
the same moments of a machine that other work shares (with blocks of 5 s, a burst of other work landing in one
path's block made the p99s differ by 100 ms either way). A request's latency runs from writing it to reading the
whole answer.

Printed: p50, p90, p99 and max of each path, the latency the proxy adds at each percentile (proxy − direct) and the
ratio of the p99s; the goal is a p99 added latency of at most 5 ms. Also the rate reached, errors, the server's CPU
time per proxied request, the load generator's CPU share (all three processes share the machine's cores) and the
load average before each run. With ``--runs K``, each run on a fresh server, the medians over the runs (a p99 on a
shared machine moves with what else runs; the median of a few runs is steadier than any one).

    .venv/bin/python bench/proxy.py                          # 500 requests/s, 15 blocks of 1 s of each path, ~45 s
    .venv/bin/python bench/proxy.py --runs 5 --json          # medians of 5 runs, each on a fresh server
    .venv/bin/python bench/proxy.py --postgres-url postgresql+psycopg://USER:PASSWORD@HOST/DB
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the server helper lives in tests/e2e

import httpx  # noqa: E402
import yaml  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from tests.e2e.e2e_support import ServerProcess, fresh_postgres_database, kill_runs  # noqa: E402

GOAL_P99_ADDED_MS = 5.0
BODY = json.dumps({"prompt_tokens": 1, "max_tokens": 1}).encode()
FLEET = """\
name: proxy-bench
providers: [{id: local, name: This machine, kind: owned, executor: local}]
sites: [{id: lab, provider: local, region: bench}]
clusters: [{id: lab-a, site: lab, gpu_model: H100-SXM, gpus_per_node: 8, nodes: 1, price_per_gpu_hour_usd: 2.0}]
teams: [{id: bench, name: Bench}]
queues: [{id: bench-q, team: bench, quotas: [{gpu_model: "*", gpus: 8}]}]
"""
FAST = "--prefill-tokens-per-s 1000000 --decode-tokens-per-s 1000000 --max-concurrent-sequences 64 --cold-start-s 0"


@dataclass
class Measured:
    """One path's measurements."""

    label: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    sent: int = 0
    server_cpu_s: float = 0.0
    """CPU time the server used during this path's blocks, s."""

    def percentile(self, q: float) -> float:
        """Latency percentile ``q`` (0-100), ms."""
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


class Connection:
    """A minimal HTTP/1.1 keep-alive connection: writes prepared bytes, reads the status, headers and body
    (``Content-Length`` or chunked)."""

    def __init__(self, host: str, port: int, head: bytes) -> None:
        self.host, self.port, self.head = host, port, head
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self) -> int:
        """One request; its status."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(self.head + BODY)
        head = await self.reader.readuntil(b"\r\n\r\n")
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in head.split(b"\r\n")[1:])
        }
        if b"content-length" in headers:
            await self.reader.readexactly(int(headers[b"content-length"]))
        else:  # chunked
            while (size := int((await self.reader.readuntil(b"\r\n")).strip(), 16)) > 0:
                await self.reader.readexactly(size + 2)
            await self.reader.readuntil(b"\r\n")
        return int(head[9:12])

    async def close(self) -> None:
        """Close the connection."""
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
            self.writer = None


async def run_block(
    host: str, port: int, path: str, token: str | None, rate: float, seconds: float, out: Measured
) -> None:
    """Send ``rate`` requests/s for ``seconds`` to ``path`` on ``host:port``, open loop (a request waits for no
    other: an idle connection is taken, or a new one opened)."""
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}Content-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    ).encode()
    idle: list[Connection] = []
    pending: set[asyncio.Task[None]] = set()

    async def one() -> None:
        connection = idle.pop() if idle else Connection(host, port, head)
        started = time.perf_counter()
        try:
            status = await asyncio.wait_for(connection.post(), timeout=10)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            status = 0
            await connection.close()
        out.latencies_ms.append((time.perf_counter() - started) * 1000)
        out.sent += 1
        if status != 200:
            out.errors += 1
        else:
            idle.append(connection)

    count = int(rate * seconds)
    start = time.perf_counter()
    for n in range(count):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one())
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    out.seconds += time.perf_counter() - start
    await asyncio.gather(*(c.close() for c in idle))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far, s."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def service_spec() -> dict[str, Any]:
    """The example local service, one fast replica, on the bench fleet."""
    spec: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "services" / "local.yaml").read_text())
    flags = spec["command"].split(" - ", 1)[1].split(" <<", 1)[0]
    spec.update(name="bench", queue="bench-q", min_replicas=1, max_replicas=1)
    spec.pop("priority_class")
    spec["command"] = spec["command"].replace(flags, FAST)
    spec["profiles"][0].update(prefill_tokens_per_s=1e6, decode_tokens_per_s=1e6, max_concurrent_sequences=64)
    spec["profiles"][0]["decode_step_s"] = None
    return spec


def start(home: Path, database_url: str | None) -> tuple[ServerProcess, str, int]:
    """A server with the bench service ready; (server, admin token, the replica's port)."""
    fleet = home.parent / "fleet.yaml"
    fleet.write_text(FLEET)
    server = ServerProcess(home=home, fleet=fleet, database_url=database_url, interval_s=0.2).start()
    with server.client() as http:
        answer = http.post("/api/v1/services", json=service_spec())
        assert answer.status_code == 201, answer.text
        deadline = time.monotonic() + 60
        while True:
            replicas = http.get("/api/v1/services/bench").json()["replicas"]
            if replicas and replicas[0]["state"] == "ready":
                return server, server.admin_token, int(replicas[0]["port"])
            if time.monotonic() > deadline:
                raise SystemExit(f"the replica did not become ready: {replicas}")
            time.sleep(0.2)


def stop(server: ServerProcess) -> None:
    """Delete the service (its replica drains and stops), stop the server, and kill any run left."""
    with contextlib.suppress(Exception), server.client() as http:
        http.delete("/api/v1/services/bench")
        deadline = time.monotonic() + 15
        while http.get("/api/v1/services/bench").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
    server.stop()
    kill_runs(server.home / "runs")


async def measure(server: ServerProcess, token: str, port: int, args: argparse.Namespace) -> dict[str, Measured]:
    """Warm both paths up, then alternate blocks of each."""
    address = httpx.URL(server.url)
    host, server_port = address.host, address.port or 80
    paths = {
        "direct": ("127.0.0.1", port, "/v1/completions", None),
        "proxy": (host, server_port, "/services/bench/v1/completions", token),
    }
    for target in paths.values():
        await run_block(*target, args.rate, 2.0, Measured("warm-up"))
    found = {label: Measured(label) for label in paths}
    assert server.proc is not None
    cpu = 0.0
    for _ in range(args.blocks):
        for label, target in paths.items():
            before = cpu_seconds(server.proc.pid)
            await run_block(*target, args.rate, args.block, found[label])
            if label == "proxy":
                cpu += cpu_seconds(server.proc.pid) - before
    found["proxy"].server_cpu_s = cpu
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rate", type=float, default=500.0, help="Requests per second, per path.")
    parser.add_argument("--block", type=float, default=1.0, help="Seconds of each block.")
    parser.add_argument("--blocks", type=int, default=15, help="Blocks of each path.")
    parser.add_argument("--runs", type=int, default=1, help="Runs, each on a fresh server; the medians are reported.")
    parser.add_argument("--postgres-url", default=None, help="Run the server on a fresh database next to this one.")
    parser.add_argument("--json", action="store_true", help="Print one JSON line as well.")
    args = parser.parse_args()
    console = Console(highlight=False)
    runs = [one_run(args) for _ in range(max(1, args.runs))]
    for n, (found, load_share, load_avg) in enumerate(runs, 1):
        report(console, found, args, load_share, load_avg, f"run {n} of {len(runs)}")
    summary = summarize(console, [r[0] for r in runs], args)
    if args.json:
        print(json.dumps(summary))
    if summary["p99_added_ms"] > GOAL_P99_ADDED_MS or summary["errors"]:
        raise SystemExit(1)


def one_run(args: argparse.Namespace) -> tuple[dict[str, Measured], float, str]:
    """One run on a fresh server: the measurements, the load generator's CPU share, the load average before it."""
    load_avg = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        url = stack.enter_context(fresh_postgres_database(args.postgres_url)) if args.postgres_url else None
        home = Path(tmp) / "home" / ".stargate"
        home.parent.mkdir(parents=True)
        server, token, port = start(home, url)
        stack.callback(stop, server)
        gc.freeze()  # this process's start-up objects: its own full collections would delay either path
        load_cpu = time.process_time()
        began = time.perf_counter()
        found = asyncio.run(measure(server, token, port, args))
        load_share = (time.process_time() - load_cpu) / (time.perf_counter() - began)
    return found, load_share, load_avg


def report(
    console: Console, found: dict[str, Measured], args: argparse.Namespace, load_share: float, load: str, title: str
) -> None:
    """One run's table and figures."""
    direct, proxy = found["direct"], found["proxy"]
    table = Table(
        title=f"{title}: proxy overhead at {args.rate:g} requests/s ({args.blocks} × {args.block:g} s of each path)"
    )
    for column in ("path", "requests", "rate/s", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for item in (direct, proxy):
        rate = item.sent / item.seconds if item.seconds else 0.0
        row = [item.percentile(q) for q in (50, 90, 99, 100)]
        table.add_row(item.label, f"{item.sent:,}", f"{rate:,.0f}", str(item.errors), *(f"{v:.2f}" for v in row))
    added = {q: proxy.percentile(q) - direct.percentile(q) for q in (50, 90, 99)}
    table.add_row("added", "", "", "", *(f"{added[q]:+.2f}" for q in (50, 90, 99)), "")
    console.print(table)
    cpu_ms = 1000 * proxy.server_cpu_s / max(proxy.sent, 1)
    console.print(
        f"server CPU {cpu_ms:.2f} ms per proxied request; load generator {100 * load_share:.0f}% of a core; load "
        f"average before the run {load}; database {'PostgreSQL' if args.postgres_url else 'SQLite'}"
    )


def summarize(console: Console, runs: list[dict[str, Measured]], args: argparse.Namespace) -> dict[str, Any]:
    """The medians over the runs, the goal line; the JSON summary."""

    def median(values: list[float]) -> float:
        return statistics.median(values)

    added = {q: median([r["proxy"].percentile(q) - r["direct"].percentile(q) for r in runs]) for q in (50, 90, 99)}
    direct = {q: median([r["direct"].percentile(q) for r in runs]) for q in (50, 90, 99)}
    proxy = {q: median([r["proxy"].percentile(q) for r in runs]) for q in (50, 90, 99)}
    ratio = median([r["proxy"].percentile(99) / r["direct"].percentile(99) for r in runs])
    cpu = median([1000 * r["proxy"].server_cpu_s / max(r["proxy"].sent, 1) for r in runs])
    errors = sum(r["proxy"].errors + r["direct"].errors for r in runs)
    verdict = "met" if added[99] <= GOAL_P99_ADDED_MS else "MISSED"
    median_of = f"median of {len(runs)} runs" if len(runs) > 1 else "one run"
    console.print(
        f"p99 added by the proxy ({median_of}): {added[99]:.2f} ms (goal ≤ {GOAL_P99_ADDED_MS:g} ms: {verdict}); "
        f"p50 {added[50]:+.2f} ms; p99 proxy / direct {ratio:.2f}×; server CPU {cpu:.2f} ms per proxied request; "
        f"{errors} errors"
    )
    return {
        "rate": args.rate,
        "runs": len(runs),
        "direct_ms": direct,
        "proxy_ms": proxy,
        "added_ms": added,
        "p99_added_ms": added[99],
        "p99_ratio": ratio,
        "server_cpu_ms_per_request": cpu,
        "errors": errors,
        "goal_met": added[99] <= GOAL_P99_ADDED_MS,
        "database": "postgresql" if args.postgres_url else "sqlite",
    }


if __name__ == "__main__":
    main()
