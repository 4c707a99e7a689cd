"""Browser fixtures: a real ``stargate up`` on loopback with the bundled fleet (examples/stargate-2025), and headless
Chromium from the OS packages driven by Playwright.

Every page a test opens records each request the browser makes; at teardown the test fails if any went anywhere
but the server on loopback, if the page logged a script error, or if it logged a failed request the test did not
expect (``page_errors.expected``). Screenshots go to ``test-artifacts/ui/`` in the project (:func:`shot`).
"""

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from e2e.e2e_support import ServerFactory, ServerProcess

PROJECT = Path(__file__).resolve().parents[2]
DEMO_FLEET = PROJECT / "examples" / "stargate-2025"
ARTIFACTS = PROJECT / "test-artifacts" / "ui"
VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Headless Chromium from the OS (``chromium`` on PATH; .ci/run installs it): never a downloaded browser."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("no chromium on PATH: install the OS package (apt-get install chromium), as .ci/run does")
    found = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"], headless=True)
    yield found
    found.close()


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server per test module over fresh state, with the bundled demo fleet."""
    factory = ServerFactory(tmp_path_factory.mktemp("web"))
    server = factory(fleet=DEMO_FLEET, interval_s=0.2).start()
    yield server
    factory.cleanup()


@dataclass
class Watch:
    """What a page did: every request's URL, the script errors and failed requests it logged."""

    origin: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)
    """Substrings of console errors a test provoked on purpose (e.g. a 403 it asked for)."""

    def outside(self) -> list[str]:
        """Requests to anything but the server (data: and blob: URLs stay in the page)."""
        return [
            u for u in self.requests if urlsplit(u).scheme not in {"data", "blob"} and not u.startswith(self.origin)
        ]


@pytest.fixture
def context(browser: Browser, web_server: ServerProcess) -> Iterator[tuple[BrowserContext, Watch]]:
    """A fresh browser profile (no token kept from another test) that watches every request it makes."""
    ctx = browser.new_context(viewport=VIEWPORT, timezone_id="Europe/Paris", locale="en-GB")
    watch = Watch(origin=web_server.url + "/")
    ctx.on("request", lambda r: watch.requests.append(r.url))
    yield ctx, watch
    ctx.close()
    assert watch.outside() == [], "requests left the server on loopback"
    unexpected = [e for e in watch.errors if not any(x in e for x in watch.expected)]
    assert unexpected == [], "the page logged errors"


@pytest.fixture
def page(context: tuple[BrowserContext, Watch]) -> Page:
    """A page of the watched profile; its console errors and uncaught exceptions are recorded."""
    ctx, watch = context
    found = ctx.new_page()
    found.on("console", lambda m: watch.errors.append(m.text) if m.type == "error" else None)
    found.on("pageerror", lambda e: watch.errors.append(f"uncaught: {e}"))
    return found


@pytest.fixture
def watch(context: tuple[BrowserContext, Watch]) -> Watch:
    return context[1]


def login(page: Page, server: ServerProcess, token: str, to: str = "fleet") -> None:
    """Open the dashboard, log in with ``token`` and wait for page ``to`` to be shown."""
    page.goto(f"{server.url}/ui")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector("#nav:not([hidden])")
    if to != "fleet":
        page.goto(f"{server.url}/ui#/{to}")
    expect(page).to_have_title(f"Stargate · {to.capitalize()}")
    expect(page.locator(f"main[data-ready='{to}']")).to_be_attached(timeout=15_000)


def shot(page: Page, name: str) -> Path:
    """Save a screenshot of the whole page as ``test-artifacts/ui/NAME.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def drawn(page: Page, chart_id: str, timeout_ms: float = 10_000) -> int:
    """Wait until the chart ``chart_id`` has drawn data (Plotly's traces with a path or bars) and count them."""
    selector = f"#{chart_id} g.trace path, #{chart_id} g.point path"  # scatter, bar, box: each trace is a g.trace
    script = "s => [...document.querySelectorAll(s)].filter(p => (p.getAttribute('d') || '').length > 10).length"
    deadline = time.monotonic() + timeout_ms / 1000  # polled from here: the page's policy forbids eval in it
    while (count := int(page.evaluate(script, selector))) == 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"chart #{chart_id} drew no data within {timeout_ms / 1000:.0f} s")
        time.sleep(0.1)
    return count


def until(server: ServerProcess, path: str, done: Callable[[Any], bool], timeout_s: float = 60.0) -> Any:
    """GET ``path`` with the admin token until ``done(answer)`` holds; that answer (fails after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    with server.client() as http:
        while not done(answer := http.get(path).json()):
            assert time.monotonic() < deadline, f"{path}: still {answer}"
            time.sleep(0.2)
    return answer


def job_status(server: ServerProcess, job_id: str, status: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """Wait until job ``job_id`` has ``status``; the job."""
    found: dict[str, Any] = until(server, f"/api/v1/jobs/{job_id}", lambda j: j["status"] == status, timeout_s)
    return found
