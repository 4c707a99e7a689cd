"""The dashboard's shell in a real browser: the login page, a refused token, the token kept out of every URL,
navigation by keyboard, logging out, and the files it is made of (no CDN, size budget)."""

import httpx
from playwright.sync_api import Page, expect

from e2e.e2e_support import ServerProcess
from web.conftest import Watch, login


def test_a_wrong_token_is_refused_with_the_servers_reason_and_nothing_else_shows(
    page: Page, web_server: ServerProcess, watch: Watch
) -> None:
    watch.expected.append("401")
    page.goto(f"{web_server.url}/ui")
    expect(page).to_have_title("Stargate · Log in")
    page.get_by_label("API token").fill("sgt_t-0000000000000000_notasecretnotasecretnotasecretnotasecre")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("401: unknown, revoked or expired token")
    expect(page.locator("#nav")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0  # a refused token is not kept


def test_logging_in_keeps_the_token_out_of_every_url_and_logging_out_forgets_it(
    page: Page, web_server: ServerProcess, watch: Watch
) -> None:
    token = web_server.admin_token
    login(page, web_server, token)
    expect(page.locator("#who")).to_contain_text("admin · admin")
    for name in ("Queues", "Jobs", "Fleet"):
        page.get_by_role("link", name=name).click()
        expect(page).to_have_title(f"Stargate · {name}")
        expect(page.get_by_role("link", name=name)).to_have_attribute("aria-current", "page")
    secret = token.split("_")[-1]
    assert not [u for u in watch.requests if secret in u]
    assert secret not in page.url
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_title("Stargate · Log in")
    assert page.evaluate("sessionStorage.length") == 0
    page.goto(f"{web_server.url}/ui#/jobs")  # a bookmarked page asks to log in again
    expect(page.get_by_label("API token")).to_be_visible()


def test_the_pages_can_be_reached_with_the_keyboard_alone(page: Page, web_server: ServerProcess) -> None:
    login(page, web_server, web_server.admin_token)
    page.reload()  # the token stays with the tab: the page comes back, and the keyboard starts from its top
    expect(page.locator("main[data-ready='fleet']")).to_be_attached()
    page.keyboard.press("Tab")  # the skip link first
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    for _ in range(3):  # Fleet, Queues, Jobs
        page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Jobs")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_title("Stargate · Jobs")
    page.reload()
    expect(page.locator("main[data-ready='jobs']")).to_be_attached()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # skip to content: the focus moves to the page, which stays the one shown
    expect(page.locator("main")).to_be_focused()
    expect(page).to_have_title("Stargate · Jobs")
    assert page.url.endswith("#/jobs")


def test_the_page_loads_only_from_the_server_with_a_strict_policy_and_within_its_size_budget(
    web_server: ServerProcess,
) -> None:
    with httpx.Client(base_url=web_server.url, headers={"Accept-Encoding": "gzip"}) as http:
        page = http.get("/ui")
        assert page.status_code == 200
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "connect-src 'self'" in policy and "script-src 'self'" in policy
        assert "http" not in policy  # no other origin is allowed
        html = page.text
        assert "https://" not in html and "http://" not in html
        scripts = [s.split('"')[0] for s in html.split('src="')[1:]]
        scripts += [s.split('"')[0] for s in html.split('content="/ui/vendor/')[1:]]  # loaded on first chart
        scripts = [s if s.startswith("/") else "/ui/vendor/" + s for s in scripts]
        assert any(s.startswith("/ui/vendor/plotly-") for s in scripts), scripts
        shipped = len(page.content)
        for path in [*scripts, "/ui/static/style.css", "/ui/static/lib.js"]:
            answer = http.get(path)
            assert answer.status_code == 200, path
            assert answer.headers.get("content-encoding") == "gzip", path
            shipped += int(answer.headers["content-length"])
        assert shipped <= 2 * 1024 * 1024, f"{shipped:,} bytes"
        plotly = http.get(next(s for s in scripts if "plotly" in s))
        assert "immutable" in plotly.headers["cache-control"]
        again = http.get("/ui/static/lib.js", headers={"If-None-Match": http.get("/ui/static/lib.js").headers["etag"]})
        assert again.status_code == 304
        missing = http.get("/ui/static/../app.py")
        assert missing.status_code == 404
        assert http.get("/ui/static/nope.js").json()["detail"].startswith("path: found '/ui/static/nope.js'")
        assert http.get("/", follow_redirects=False).headers["location"] == "/ui"
