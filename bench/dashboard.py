"""Dashboard load benchmark: how long each page of /ui takes to show its first data, and how many bytes it ships,
in headless Chromium (the OS's, driven by Playwright) against a real ``stargate up`` on loopback with 10,000 jobs
in its database (SQLite). Prints figures and ratios against a baseline measured in the same run.

The state: the bundled fleet (examples/stargate-2025) and N jobs stored as the API stores them, then scheduling
cycles with an executor that records handles without starting processes (as bench/api_load.py does), so the
database holds placed, running and pending jobs; the server then serves it with ``--no-scheduler``.

Each page is loaded R times **cold** (a new browser profile: empty HTTP cache; the token put in the tab's session
storage before the page's scripts run, as logging in leaves it) and R times **warm** (the same profile reloaded).
A load is timed from navigation to the page marking itself drawn with its first data (``main[data-ready]``, set
after its first API answers are drawn). Bytes: what crossed the wire for the load (headers and encoded bodies).
"Charts drawn": until every chart of the page is drawn (Plotly is loaded on the first chart, after the first
data). Baseline: the login page, cold (the same shell, no data, no chart). Goals: every page's cold load to its
first data ≤ 1 s (median), ≤ 2 MB shipped.

    .venv/bin/python bench/dashboard.py                  # N=10,000, R=5
    .venv/bin/python bench/dashboard.py --jobs 2000 --runs 3
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import Browser, Page, Request, sync_playwright

from api_load import RecordingExecutor, free_port, wait_healthy
from stargate.domain import JobSpec
from stargate.fleetfile import load_fleet
from stargate.server.auth import Principal, Role
from stargate.server.bootstrap import open_database, prepare
from stargate.server.context import ExecutorRegistry
from stargate.server.scheduling.loop import run_cycle
from stargate.server.services import jobs as job_service
from stargate.server.settings import Settings
from stargate.store import insert_submitted

PROJECT = Path(__file__).resolve().parents[1]
FLEET = PROJECT / "examples" / "stargate-2025"
PAGES = ("fleet", "queues", "jobs", "services", "contracts", "budget", "plan", "simulation")
GPUS = (1, 8, 8, 64, 72, 144, 512)


def fill_database(home: Path, jobs: int) -> str:
    """Store ``jobs`` jobs over the demo fleet's queues and place what fits; the admin token."""
    settings = Settings.from_env({"STARGATE_HOME": str(home)})
    db = open_database(settings)
    fleet = load_fleet(FLEET)
    prepared = prepare(settings, db, fleet, now=datetime.now(UTC))
    assert prepared.admin_token is not None
    ctx = prepared.ctx  # its executors replaced in place: a copy would register its metrics a second time
    ctx.executors = ExecutorRegistry(settings, _built={"local": RecordingExecutor()})
    admin = Principal(token_id="bench", name="bench", team=None, role=Role.ADMIN)
    rules = job_service.SubmitRules.of(fleet)
    queues = [q.id for q in fleet.queues]
    now = datetime.now(UTC)
    with db.write() as session:
        rows = [
            job_service.check(
                admin,
                JobSpec(name=f"bench-{n}", queue=queues[n % len(queues)], gpus=GPUS[n % len(GPUS)], command="true"),
                rules,
                now,
            )
            for n in range(jobs)
        ]
        insert_submitted(session, rows)
    for _ in range(3):
        run_cycle(ctx, datetime.now(UTC))
    db.close()
    return prepared.admin_token


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        sys.exit("error: no chromium on PATH (apt-get install chromium)")
    return path


CHARTS_DRAWN = "[...document.querySelectorAll('.chart')].every(c => c.querySelector('.main-svg'))"
"""True once every chart of the page is drawn (Plotly loaded and run)."""


def wait_charts(page: Page, timeout_s: float = 30.0) -> None:
    """Poll until every chart is drawn (evaluated from here: the page's policy forbids eval in it)."""
    deadline = time.perf_counter() + timeout_s
    while not page.evaluate(CHARTS_DRAWN):
        if time.perf_counter() > deadline:
            raise RuntimeError(f"charts not drawn within {timeout_s:.0f} s on {page.url}")
        time.sleep(0.01)


@dataclass
class Loads:
    """One page's loads: seconds to first data and to every chart drawn, cold and warm; bytes of the first cold
    load; the JS heap after it."""

    cold: list[float] = field(default_factory=list)
    cold_charts: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)
    shipped: int = 0
    heap: int = 0


def load_once(browser: Browser, url: str, token: str | None, page_name: str, runs: int) -> Loads:
    """Load one page ``runs`` times cold and warm (``token`` None: the login page)."""
    found = Loads()
    for run in range(runs):
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        if token is not None:
            context.add_init_script(f"sessionStorage.setItem('stargate.token', {token!r})")
        page = context.new_page()
        sizes: list[int] = []
        page.on("requestfinished", lambda r, into=sizes: into.append(_wire_bytes(r)))
        marker = f"main[data-ready='{page_name}']" if token is not None else "#token"
        start = time.perf_counter()
        page.goto(f"{url}/ui#/{page_name}")
        page.wait_for_selector(marker, state="attached", timeout=30_000)
        found.cold.append(time.perf_counter() - start)
        wait_charts(page)
        found.cold_charts.append(time.perf_counter() - start)
        if run == 0:
            page.wait_for_load_state("networkidle")
            found.shipped = sum(sizes)
            found.heap = int(page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : 0"))
        start = time.perf_counter()
        page.reload()
        page.wait_for_selector(marker, state="attached", timeout=30_000)
        found.warm.append(time.perf_counter() - start)
        context.close()
    return found


def _wire_bytes(request: Request) -> int:
    """Bytes of a response as they crossed the wire: headers and the encoded (gzipped) body."""
    sizes = request.sizes()
    return int(sizes["responseBodySize"] + sizes["responseHeadersSize"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs in the database (default 10,000)")
    parser.add_argument("--runs", type=int, default=5, help="loads per page, cold and warm each (default 5)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sg-dash-"))
    home = tmp / ".stargate"
    t0 = time.perf_counter()
    token = fill_database(home, args.jobs)
    print(f"state: {args.jobs:,} jobs over examples/stargate-2025 in {time.perf_counter() - t0:.1f} s (SQLite)")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STARGATE_")} | {"STARGATE_HOME": str(home)}
    argv = [sys.executable, "-m", "stargate", "up", "--port", str(port), "--no-scheduler", "--log-level", "warning"]
    with (tmp / "server.log").open("wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
            load_once(browser, url, token, "fleet", 1)  # warm the server's caches and the browser's start-up
            base = load_once(browser, url, None, "fleet", args.runs)
            baseline = statistics.median(base.cold)
            print(f"baseline (login page, cold): median {baseline * 1000:.0f} ms, {base.shipped / 1e6:.2f} MB shipped")
            head = ("page", "first data", "max", "charts drawn", "warm", "ratio", "shipped", "JS heap")
            print("{:<11} {:>10} {:>7} {:>12} {:>7} {:>6} {:>8} {:>8}".format(*head))
            worst_cold = worst_bytes = 0.0
            for name in PAGES:
                loads = load_once(browser, url, token, name, args.runs)
                median = statistics.median(loads.cold)
                worst_cold, worst_bytes = max(worst_cold, median), max(worst_bytes, loads.shipped)
                print(
                    f"{name:<11} {median * 1000:>7.0f} ms {max(loads.cold) * 1000:>4.0f} ms"
                    f" {statistics.median(loads.cold_charts) * 1000:>9.0f} ms"
                    f" {statistics.median(loads.warm) * 1000:>4.0f} ms"
                    f" {median / baseline:>5.2f}× {loads.shipped / 1e6:>5.2f} MB {loads.heap / 1e6:>5.1f} MB"
                )
            browser.close()
        print(
            f"goal: every page's cold load to first data ≤ 1 s (worst median {worst_cold * 1000:.0f} ms: "
            f"{'met' if worst_cold <= 1 else 'NOT met'}); ≤ 2 MB shipped (worst {worst_bytes / 1e6:.2f} MB: "
            f"{'met' if worst_bytes <= 2e6 else 'NOT met'})"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
