"""The Tokens page in a real browser: admins only; a token made there is shown once and works; revoking it there
logs its holder out at their next request; a viewer neither sees the page nor reaches it by address."""

import re

from playwright.sync_api import Browser, Page, expect

from e2e.e2e_support import ServerProcess
from web.conftest import VIEWPORT, Watch, login, shot


def test_an_admin_makes_a_viewer_token_which_works_once_shown_and_stops_when_revoked(
    page: Page, browser: Browser, web_server: ServerProcess, watch: Watch
) -> None:
    login(page, web_server, web_server.admin_token, to="tokens")
    page.get_by_label("Name").fill("web viewer")
    page.get_by_label("Role").select_option("viewer")
    page.get_by_label("Team (member, viewer)").select_option("research")
    page.get_by_role("button", name="Create token").click()
    secret_box = page.get_by_label("The new token's secret")
    expect(secret_box).to_have_value(re.compile(r"^sgt_t-[0-9a-f]{16}_"))
    secret = secret_box.input_value()
    assert secret.startswith("sgt_t-")
    listed = page.get_by_role("row").filter(has_text="web viewer")
    expect(listed).to_contain_text("viewer")
    expect(listed).to_contain_text("research")
    assert secret.split("_")[-1] not in page.get_by_role("table").inner_text()  # the list never shows a secret
    shot(page, "tokens")

    other = browser.new_context(viewport=VIEWPORT)  # the viewer, in a browser of their own
    try:
        viewer = other.new_page()
        login(viewer, web_server, secret)
        expect(viewer.locator("#who")).to_contain_text("web viewer · viewer · team research")
        expect(viewer.get_by_role("link", name="Tokens")).to_be_hidden()
        viewer.goto(f"{web_server.url}/ui#/tokens")
        expect(viewer).to_have_title("Stargate · Fleet")  # sent to a page it may see

        watch.expected.append("401")
        page.once("dialog", lambda d: d.accept())
        listed.get_by_role("button", name="Revoke web viewer").click()
        expect(listed).to_contain_text("revoked")
        viewer.get_by_role("link", name="Jobs").click()  # the viewer's next request is refused
        expect(viewer.get_by_label("API token")).to_be_visible()
        expect(viewer.get_by_role("alert")).to_contain_text("log in again")
    finally:
        other.close()
    with web_server.client() as http:
        states = {t["name"]: t["state"] for t in http.get("/api/v1/tokens").json()}
    assert states["web viewer"] == "revoked"


def test_a_refused_token_creation_shows_the_servers_reason_and_makes_nothing(
    page: Page, web_server: ServerProcess, watch: Watch
) -> None:
    watch.expected.append("422")
    login(page, web_server, web_server.admin_token, to="tokens")
    with web_server.client() as http:
        before = len(http.get("/api/v1/tokens").json())
    page.get_by_label("Name").fill("no team")
    page.get_by_label("Role").select_option("member")  # a member needs a team
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("alert")).to_contain_text("422: ")
    expect(page.get_by_label("The new token's secret")).to_have_count(0)
    with web_server.client() as http:
        assert len(http.get("/api/v1/tokens").json()) == before


def test_times_are_shown_on_the_viewers_clock_in_iso_8601_with_utc_on_hover(
    page: Page, web_server: ServerProcess
) -> None:
    login(page, web_server, web_server.admin_token, to="tokens")  # the browser's zone: Europe/Paris (conftest)
    shown = page.locator("main time").first
    expect(shown).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (CET|GMT\+1)$"))
    utc = shown.get_attribute("title") or ""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(UTC\)", utc), utc
    local_hour, utc_hour = int(shown.inner_text()[11:13]), int(utc[11:13])
    assert (local_hour - utc_hour) % 24 == 1  # Paris in December: UTC+1
