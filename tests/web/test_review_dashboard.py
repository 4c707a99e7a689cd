"""A reviewer's attack on the dashboard in a real browser: data that looks like HTML, tokens refused mid-session, a
server that does not answer while a page loads, a long list of jobs, long names, and the 1280×800 layout.

Each defect the review found began as an ``xfail(strict=True)`` test failing for the reason it named; all are fixed
and the marks are gone.
"""

import re

from playwright.sync_api import Page, Route, expect

from e2e.e2e_support import ServerProcess, all_jobs
from web.conftest import Watch, login, until

HOSTILE = "<img src=x onerror=\"document.title='PWNED'\"></script><script>document.title='PWNED2'</script>"
"""A name that would run script if any page put it into the DOM as HTML."""


def test_data_that_looks_like_html_is_shown_as_text_on_every_page_it_reaches(
    page: Page, web_server: ServerProcess, watch: Watch
) -> None:
    """Job names and logs, simulation names, plan scenario names and token names are drawn as text: no element, no
    script, no dialog, whoever wrote them."""
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    member = web_server.create_token("eval", "member", HOSTILE)
    with web_server.client(member) as http:
        job = http.post(
            "/api/v1/jobs",
            json={"name": HOSTILE, "queue": "eval-batch", "gpus": 1, "command": f"echo '{HOSTILE}'"},
        ).json()
        sim = http.post(
            "/api/v1/simulations",
            json={"name": HOSTILE, "trace": "examples/stargate-2025/workload.csv", "fleet": "current", "max_jobs": 5},
        )
        assert sim.status_code == 201, sim.text
    until(web_server, f"/api/v1/jobs/{job['id']}", lambda j: j["status"] == "succeeded")
    login(page, web_server, web_server.admin_token, to="jobs")
    page.goto(f"{web_server.url}/ui#/jobs/{job['id']}")
    expect(page.locator("pre.logs")).to_contain_text("<img src=x", timeout=10_000)
    expect(page.get_by_role("region", name="Jobs, newest first")).to_contain_text("</script>")
    for name in ("simulation", "tokens"):
        page.get_by_role("link", name=name.capitalize()).click()
        expect(page.locator(f"main[data-ready='{name}']")).to_be_attached()
        expect(page.locator("main")).to_contain_text("<img src=x", timeout=10_000)
    assert page.locator("main img, main script").count() == 0
    assert "PWNED" not in page.title() and dialogs == []


def test_a_member_of_another_team_never_sees_a_teams_job_names(
    page: Page, web_server: ServerProcess, watch: Watch
) -> None:
    watch.expected.append("404")  # another team's job is not found, as the API says
    with web_server.client() as http:
        secret = http.post(
            "/api/v1/jobs",
            json={"name": "research-secret-run", "queue": "research-training", "gpus": 1, "command": "true"},
        ).json()
    login(page, web_server, web_server.create_token("eval", "member", "review-eval"), to="jobs")
    expect(page.locator("main")).to_contain_text("Jobs, newest first")
    page.goto(f"{web_server.url}/ui#/queues")
    expect(page.locator("main[data-ready='queues']")).to_be_attached()
    page.goto(f"{web_server.url}/ui#/jobs/{secret['id']}")  # the address of another team's job
    expect(page.locator("#status")).to_contain_text("404", timeout=10_000)
    assert "research-secret-run" not in page.locator("body").inner_text()


def _abort(route: Route) -> None:
    route.abort("connectionrefused")


def test_a_page_whose_first_load_failed_shows_its_data_once_the_server_answers_again(
    page: Page, web_server: ServerProcess, watch: Watch
) -> None:
    """The server restarts while the user opens a page: the page says so, then fills itself once it answers."""
    watch.expected.append("net::ERR_CONNECTION_REFUSED")
    login(page, web_server, web_server.admin_token)
    page.route("**/api/v1/teams", _abort)  # the Jobs page's first call cannot reach the server
    page.get_by_role("link", name="Jobs").click()
    expect(page.locator("#status")).to_contain_text("the server cannot be reached")
    page.unroute("**/api/v1/teams")  # the server is back
    expect(page.locator("main h1")).to_have_text("Jobs", timeout=15_000)


def test_a_token_refused_on_changing_page_leads_to_a_login_page_that_says_so(
    page: Page, web_server: ServerProcess, watch: Watch
) -> None:
    watch.expected.append("401")
    token = web_server.create_token("eval", "member", "review-revoked-on-navigation")
    login(page, web_server, token, to="plan")
    with web_server.client() as http:
        mine = next(t for t in http.get("/api/v1/tokens").json() if t["name"] == "review-revoked-on-navigation")
        assert http.post(f"/api/v1/tokens/{mine['id']}/revoke").status_code == 200
    page.get_by_role("link", name="Queues").click()
    expect(page.get_by_label("API token")).to_be_visible()
    assert page.evaluate("() => sessionStorage.length") == 0  # the token is forgotten (this works)
    expect(page.locator("#status")).to_contain_text("log in again")
    expect(page).to_have_title("Stargate · Log in")


def test_the_fleet_page_counts_one_site_in_the_singular(page: Page, web_server: ServerProcess) -> None:
    login(page, web_server, web_server.admin_token)
    azure = page.locator("summary", has_text="Microsoft Azure")
    expect(azure).to_contain_text("1 site")
    assert "1 sites" not in azure.inner_text()


def test_the_revoke_buttons_of_the_tokens_page_are_in_view_at_1280_by_800(
    page: Page, web_server: ServerProcess
) -> None:
    web_server.create_token("eval", "viewer", "review-revocable")
    login(page, web_server, web_server.admin_token, to="tokens")
    button = page.get_by_role("button", name="Revoke review-revocable")
    expect(button).to_be_visible()
    inside = button.evaluate(
        "b => b.getBoundingClientRect().right <= b.closest('.table-wrap').getBoundingClientRect().right"
    )
    assert inside, "the Revoke button is scrolled out of the table's visible part"


def test_a_long_simulation_name_does_not_widen_the_page(page: Page, web_server: ServerProcess) -> None:
    ids = []
    with web_server.client() as http:
        for name in ("W" * 200, "short"):
            body = {"name": name, "trace": "examples/stargate-2025/workload.csv", "fleet": "current", "max_jobs": 5}
            answer = http.post("/api/v1/simulations", json=body)
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["id"])
    for sim_id in ids:
        until(web_server, f"/api/v1/simulations/{sim_id}", lambda s: s["status"] == "succeeded")
    login(page, web_server, web_server.admin_token, to="simulation")
    expect(page.locator("#sim-compare-a option").first).to_be_attached()
    widths = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide in a {widths[1]} px window"


def test_the_jobs_figures_agree_with_the_api_when_more_than_a_page_of_jobs_exists(
    page: Page, web_server: ServerProcess
) -> None:
    """Last in this module: it leaves a job running for 300 s on the server."""
    with web_server.client() as http:
        running = http.post(
            "/api/v1/jobs", json={"name": "review-long-run", "queue": "eval-batch", "gpus": 1, "command": "sleep 300"}
        ).json()
        until(web_server, f"/api/v1/jobs/{running['id']}", lambda j: j["status"] == "running")
        for i in range(101):  # newer jobs that end at once: the newest 100 hold no running job
            body = {"name": f"review-quick-{i}", "queue": "eval-batch", "gpus": 1, "command": "true"}
            assert http.post("/api/v1/jobs", json=body).status_code == 201
    until(web_server, "/api/v1/jobs?status=pending&limit=1", lambda a: a["items"] == [], timeout_s=120)
    until(web_server, "/api/v1/jobs?status=placed&limit=1", lambda a: a["items"] == [], timeout_s=120)
    login(page, web_server, web_server.admin_token, to="jobs")
    running_now = sum(1 for j in all_jobs(web_server) if j["status"] == "running")  # each runs 300 s: they stay
    assert running_now >= 1
    figure = page.locator(".kpi", has_text="Pending / placed or running").locator(".value")
    expect(figure).to_have_text(re.compile(rf"/ {running_now}$"))
