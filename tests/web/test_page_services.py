"""The Services page in a real browser against a real server: a small service of the example (examples/services/
local.yaml, the local executor runs its replica program) seen going ready live, its replicas chart drawn from its
scale decisions, its traffic and latency sampled while requests go through the proxy; Delete only for those who may
act on its team, confirmed first, and the server's state after it."""

import contextlib
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import Page, expect

from e2e.e2e_support import ServerProcess
from web.conftest import Watch, drawn, login, shot

LOCAL = Path(__file__).resolve().parents[2] / "examples" / "services" / "local.yaml"
NAME = "local-chat"


def _service(server: ServerProcess) -> dict[str, Any]:
    with server.client() as http:
        answer = http.get(f"/api/v1/services/{NAME}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


@pytest.fixture(scope="module")
def service(web_server: ServerProcess) -> Iterator[dict[str, Any]]:
    """The example service, created through the API (1 to 3 replicas of 1 H100-SXM GPU, team product)."""
    spec = yaml.safe_load(LOCAL.read_text())
    with web_server.client() as http:
        answer = http.post("/api/v1/services", json=spec)
    assert answer.status_code == 201, answer.text
    yield answer.json()


def _traffic(server: ServerProcess, stop: threading.Event) -> None:
    """A few completion requests a second through the proxy until ``stop``."""
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.admin_token}"}, timeout=30) as c:
        while not stop.wait(0.3):
            with contextlib.suppress(httpx.HTTPError):  # a request cut off is the page's to show, not ours
                c.post(f"/services/{NAME}/v1/completions", json={"prompt_tokens": 50, "max_tokens": 5})


def test_a_new_service_goes_ready_live_and_its_charts_draw(
    page: Page, web_server: ServerProcess, service: dict[str, Any]
) -> None:
    login(page, web_server, web_server.admin_token, to="services")
    page.goto(f"{web_server.url}/ui#/services/{NAME}")
    replicas = page.get_by_role("region", name="Replicas", exact=True)
    expect(replicas.locator("tbody tr").first).to_contain_text("ready", timeout=30_000)  # live: no reload
    api = _service(web_server)
    [replica] = [r for r in api["replicas"] if r["state"] == "ready"]
    expect(replicas).to_contain_text(replica["job"])
    expect(replicas).to_contain_text(replica["cluster"])
    assert drawn(page, "chart-services-replicas") > 0
    events = page.get_by_role("region", name="Scale events")
    expect(events).to_contain_text("created: min_replicas 1")

    stop = threading.Event()
    load = threading.Thread(target=_traffic, args=(web_server, stop), daemon=True)
    load.start()
    try:
        assert drawn(page, "chart-services-latency") > 0
        listed = page.get_by_role("region", name="Services", exact=True)
        row = listed.locator("tbody tr", has_text=NAME)
        expect(row).to_contain_text("1 replica ready of 1 desired")
        expect(row).to_contain_text("(objective ≤ 2.00 s)")  # the spec's e2e_s
        figures = page.get_by_label(f"Figures of service {NAME}")
        measured = re.compile(r"^End-to-end p99\s*\d")  # a latency, not "—"
        expect(figures.locator(".kpi", has_text="End-to-end p99")).to_have_text(measured, timeout=20_000)
        busy = re.compile(r"^Requests/s\s*(0\.\d*[1-9]|[1-9])")  # the load is seen, live
        expect(figures.locator(".kpi", has_text="Requests/s")).to_have_text(busy, timeout=20_000)
        expect(page.get_by_text("since you opened this page").first).to_be_visible()
        traffic = _service(web_server)["traffic"]
        assert traffic["completed"] > 0 and traffic["e2e_p99_s"] is not None
        several = re.compile(r"^([4-9]|\d{2,}) samples since you opened this page")
        expect(page.get_by_text(several)).to_be_visible(timeout=20_000)
        shot(page, "services")
    finally:
        stop.set()
        load.join(timeout=30)


def test_a_viewer_and_a_member_of_another_team_see_no_delete(
    page: Page, web_server: ServerProcess, service: dict[str, Any]
) -> None:
    viewer = web_server.create_token("product", "viewer", "product-viewer")
    login(page, web_server, viewer, to="services")
    page.goto(f"{web_server.url}/ui#/services/{NAME}")
    expect(page.get_by_role("region", name="Replicas", exact=True)).to_contain_text("j-")
    expect(page.get_by_role("button", name=f"Delete {NAME}")).to_have_count(0)

    page.get_by_role("button", name="Log out").click()
    other = web_server.create_token("research", "member", "research-member")
    login(page, web_server, other, to="services")
    page.goto(f"{web_server.url}/ui#/services/{NAME}")
    expect(page.get_by_text(f"No service '{NAME}' is visible to you")).to_be_visible()
    expect(page.get_by_role("button", name=f"Delete {NAME}")).to_have_count(0)
    expect(page.get_by_role("region", name="Services", exact=True)).to_contain_text("No service yet")


def test_a_member_of_its_team_deletes_it_after_confirming(
    page: Page, web_server: ServerProcess, service: dict[str, Any], watch: Watch
) -> None:
    member = web_server.create_token("product", "member", "product-member")
    login(page, web_server, member, to="services")
    page.goto(f"{web_server.url}/ui#/services/{NAME}")
    delete = page.get_by_role("button", name=f"Delete {NAME}")
    page.once("dialog", lambda d: d.dismiss())  # a refused confirmation changes nothing
    delete.click()
    expect(delete).to_be_enabled()
    assert _service(web_server)["state"] == "active"
    page.once("dialog", lambda d: d.accept())
    delete.click()
    gone = re.compile(f"deleting|No service '{NAME}' is visible to you")
    expect(page.locator("main")).to_contain_text(gone, timeout=10_000)
    with web_server.client() as http:
        answer = http.get(f"/api/v1/services/{NAME}")
    assert answer.status_code == 404 or answer.json()["state"] == "deleting"
