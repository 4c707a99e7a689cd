"""The Jobs page in a real browser against a real server: submitting through the form (one job for a double click),
the job's status changing live, its timeline and log, cancelling with a confirming second click, and what members
and viewers may see and do; refused actions show the server's detail and change nothing."""

import contextlib
import re
from typing import Any

from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from e2e.e2e_support import ServerProcess, all_jobs
from web.conftest import Watch, drawn, login, shot

LIVE_MS = 20_000  # a poll is every 5 s (2 s for the selected job): a change shows well within this


def submit(server: ServerProcess, queue: str, name: str, command: str, gpus: int = 1) -> dict[str, Any]:
    """A job submitted through the API with the admin token."""
    with server.client() as http:
        answer = http.post("/api/v1/jobs", json={"name": name, "queue": queue, "gpus": gpus, "command": command})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def job(server: ServerProcess, job_id: str) -> dict[str, Any]:
    with server.client() as http:
        return dict(http.get(f"/api/v1/jobs/{job_id}").json())


def row(page: Page, job_id: str):  # type: ignore[no-untyped-def]
    """The list's row of ``job_id``."""
    return page.get_by_role("row").filter(has=page.get_by_role("link", name=job_id, exact=True))


def test_an_admin_submits_watches_reads_the_log_and_cancels(page: Page, web_server: ServerProcess) -> None:
    login(page, web_server, web_server.admin_token, to="jobs")
    page.locator("summary", has_text="Submit a job").click()  # the form is folded until asked for
    form = page.get_by_role("form", name="Submit a job")
    form.get_by_label("Name").fill("web-form-eval")
    form.get_by_label("Queue").select_option("eval-batch")
    expect(form.get_by_label("Priority class").locator("option")).to_have_text(["the queue's default (batch)", "batch"])
    form.get_by_label("GPUs", exact=True).fill("2")
    form.get_by_label("GPU models (none selected: any)").select_option(["H100-SXM"])
    form.get_by_label("Command").fill(
        'echo "hello from the web form on $STARGATE_CLUSTER"\nsleep 3\necho "web form done"'
    )
    form.get_by_label("Estimated duration, s (optional)").fill("4")
    form.get_by_role("button", name="Submit job").dblclick()
    expect(form.get_by_role("status")).to_contain_text("Submitted j-")
    mine = [j for j in all_jobs(web_server) if j["name"] == "web-form-eval"]
    assert len(mine) == 1, mine  # the double click made one job
    submitted = mine[0]
    assert submitted["gpus"] == 2 and submitted["gpu_models"] == ["H100-SXM"]
    assert submitted["spec"]["estimated_duration_s"] == 4
    assert submitted["spec"]["command"].splitlines()[1] == "sleep 3"
    job_id = submitted["id"]

    # The new job is selected: its id in the address, listed, its status changing live, its log and timeline.
    expect(page).to_have_url(re.compile(f"#/jobs/{job_id}$"))
    listed = row(page, job_id)
    expect(listed).to_contain_text("eval-batch")
    expect(listed).to_contain_text("2 GPUs")
    expect(listed).to_contain_text("H100-SXM")
    expect(listed.locator(".badge")).to_have_text("succeeded", timeout=LIVE_MS)  # no reload: the poll redraws it
    expect(listed).to_contain_text("exited with code 0")
    detail = page.get_by_role("region", name=f"Job {job_id}")
    logs = detail.get_by_label("Log output")
    expect(logs).to_contain_text("hello from the web form on ", timeout=LIVE_MS)
    expect(logs).to_contain_text("web form done")
    expect(detail.get_by_role("status").filter(has_text="Complete")).to_be_visible()
    events = detail.get_by_role("table")
    expect(events.get_by_role("row")).to_have_count(5)  # header + pending, placed, running, succeeded
    expect(events).to_contain_text("on azure-us-h100")
    assert drawn(page, "chart-jobs-timeline") > 0

    # Cancel a running job: the first click asks, the second cancels; the server says cancelled.
    long = submit(web_server, "research-training", "web-long-train", "echo training; sleep 120")
    listed = row(page, long["id"])
    expect(listed.locator(".badge")).to_have_text("running", timeout=LIVE_MS)
    shot(page, "jobs")
    listed.get_by_role("button", name=f"Cancel job {long['id']}").click()
    assert job(web_server, long["id"])["status"] == "running"  # one click only asks
    listed.get_by_role("button", name=f"Confirm: cancel job {long['id']}").click()
    expect(listed.locator(".badge")).to_have_text("cancelled", timeout=LIVE_MS)
    after = job(web_server, long["id"])
    assert after["status"] == "cancelled" and after["detail"] == "by token:admin"
    expect(listed.get_by_role("button")).to_have_count(0)

    # Filters: by status, then by name.
    page.get_by_role("search").get_by_label("Status").select_option("cancelled")
    expect(row(page, long["id"])).to_be_visible()
    expect(row(page, job_id)).to_have_count(0)
    page.get_by_role("search").get_by_label("Status").select_option("")
    page.get_by_role("search").get_by_label("Name contains").fill("web-form")
    expect(row(page, job_id)).to_be_visible()
    expect(row(page, long["id"])).to_have_count(0)

    # The address selects a job when the page opens (a bookmark).
    page.goto(f"{web_server.url}/ui#/jobs/{long['id']}")
    expect(page.get_by_role("region", name=f"Job {long['id']}").get_by_label("Log output")).to_contain_text("training")


def test_a_member_acts_on_its_team_only_and_a_refused_submission_changes_nothing(
    page: Page, web_server: ServerProcess, watch: Watch
) -> None:
    watch.expected.append("422")
    theirs = submit(web_server, "research-training", "web-research-only", "sleep 120")
    ours = submit(web_server, "eval-batch", "web-eval-long", "echo eval; sleep 120")
    token = web_server.create_token("eval", "member", "web-eval-member")
    login(page, web_server, token, to="jobs")
    expect(row(page, ours["id"]).get_by_role("button", name=f"Cancel job {ours['id']}")).to_be_visible()
    expect(row(page, theirs["id"])).to_have_count(0)  # another team's job is not even listed
    expect(page.get_by_role("search").get_by_label("Team")).to_have_count(0)
    page.locator("summary", has_text="Submit a job").click()  # the form is folded until asked for
    form = page.get_by_role("form", name="Submit a job")
    expect(form.get_by_label("Queue").locator("option")).to_have_text(["eval-batch (team eval)"])

    before = len(all_jobs(web_server))
    form.get_by_label("Name").fill("web-too-big")
    form.get_by_label("GPUs", exact=True).fill("2000000")
    form.get_by_label("Command").fill("echo never")
    form.get_by_role("button", name="Submit job").click()
    expect(page.get_by_role("alert")).to_have_text(
        "422: body.gpus: found 2000000, expected less than or equal to 1000000"
    )
    form.get_by_label("GPUs", exact=True).fill("1")
    form.get_by_label("Command").fill("")
    form.get_by_role("button", name="Submit job").click()
    expect(page.get_by_role("alert")).to_contain_text("422: body: found neither 'command' nor 'image'")
    assert len(all_jobs(web_server)) == before
    expect(form.get_by_label("Name")).to_have_value("web-too-big")  # the draft is kept to fix
    for found in (theirs, ours):
        assert job(web_server, found["id"])["status"] == "running"


def test_a_viewer_sees_jobs_but_no_form_and_no_cancel(page: Page, web_server: ServerProcess) -> None:
    ours = submit(web_server, "eval-batch", "web-eval-viewed", "echo viewed; sleep 120")
    token = web_server.create_token("eval", "viewer", "web-eval-viewer")
    login(page, web_server, token, to="jobs")
    listed = row(page, ours["id"])
    expect(listed.locator(".badge")).to_have_text("running", timeout=LIVE_MS)
    expect(page.get_by_role("form", name="Submit a job")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^Cancel job"))).to_have_count(0)
    listed.get_by_role("link", name=ours["id"]).click()
    expect(page).to_have_url(re.compile(f"#/jobs/{ours['id']}$"))
    expect(page.get_by_label("Log output")).to_contain_text("viewed", timeout=LIVE_MS)


def test_a_token_revoked_mid_session_goes_back_to_login_and_cancels_nothing(
    page: Page, web_server: ServerProcess, watch: Watch
) -> None:
    watch.expected.append("401")
    ours = submit(web_server, "eval-batch", "web-eval-revoked", "sleep 120")
    token = web_server.create_token("eval", "member", "web-eval-revoked")
    login(page, web_server, token, to="jobs")
    listed = row(page, ours["id"])
    listed.get_by_role("button", name=f"Cancel job {ours['id']}").click()
    with web_server.client() as http:
        assert http.post(f"/api/v1/tokens/{token.split('_')[1]}/revoke").status_code == 200
    with contextlib.suppress(PlaywrightTimeout):  # the page's own poll may meet the 401 first
        listed.get_by_role("button", name=f"Confirm: cancel job {ours['id']}").click(timeout=3000)
    expect(page.get_by_role("alert")).to_contain_text("Your token was refused (revoked or expired): log in again.")
    expect(page.get_by_label("API token")).to_be_visible()
    assert job(web_server, ours["id"])["status"] == "running"
