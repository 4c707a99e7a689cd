"""The Queues page in a real browser against a real server: GPUs held against each quota and borrowing (the chart and
the table), the pending jobs with why they wait, and what a member is shown of other teams."""

from typing import Any

from playwright.sync_api import Page, expect

from e2e.e2e_support import ServerProcess
from web.conftest import drawn, job_status, login, shot

LIVE_MS = 20_000


def submit(server: ServerProcess, spec: dict[str, Any]) -> dict[str, Any]:
    with server.client() as http:
        answer = http.post("/api/v1/jobs", json=spec)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_quota_borrowing_and_why_pending_jobs_wait(page: Page, web_server: ServerProcess) -> None:
    # 21,000 H100 GPUs for eval-batch: 1,000 above its nominal 20,000 (within its 20,000 borrowing limit).
    borrower = submit(
        web_server,
        {
            "name": "web-borrow",
            "queue": "eval-batch",
            "gpus": 21_000,
            "gpu_models": ["H100-SXM"],
            "command": "echo borrowing; sleep 120",
        },
    )
    # 300,000 GB200 GPUs in one cluster: only the 2027 Oracle pool holds that many, so it waits.
    waiting = submit(
        web_server,
        {
            "name": "web-wait-2027",
            "queue": "research-training",
            "gpus": 300_000,
            "gpu_models": ["GB200"],
            "command": "sleep 1",
        },
    )
    job_status(web_server, borrower["id"], "running")
    login(page, web_server, web_server.admin_token, to="queues")

    assert drawn(page, "chart-queues-quota") > 0
    quota = page.get_by_role("region", name="Quota, held GPUs and borrowing")
    eval_h100 = quota.get_by_role("row").filter(has_text="eval-batch").filter(has_text="H100-SXM")
    expect(eval_h100.locator("td")).to_have_text(
        ["eval", "eval-batch", "H100-SXM", "21,000 GPUs", "20,000 GPUs", "20,000 GPUs", "1,000 GPUs", "105.00 %"]
    )
    research_gb200 = quota.get_by_role("row").filter(has_text="research-training").filter(has_text="GB200")
    expect(research_gb200.locator("td").nth(3)).to_have_text("0 GPUs")

    queues = page.get_by_role("region", name="Queues by team")
    research = queues.get_by_role("row").filter(has_text="research-training")
    expect(research.locator("td")).to_have_text(
        ["research", "research-training", "openai", "1", "300,000 GPUs", "0", "0 GPUs"]
    )
    reasons = page.get_by_role("region", name="Why jobs wait")
    expect(reasons.get_by_role("row").filter(has_text="offline").locator("td").nth(2)).to_have_text("1")

    pending = page.get_by_role("region", name="Pending jobs, oldest first")
    row = pending.get_by_role("row").filter(has=page.get_by_role("link", name=waiting["id"]))
    expect(row).to_contain_text("300,000 GPUs")
    expect(row).to_contain_text("offline")  # the engine's reason: the one cluster that large is not online yet
    expect(row).to_contain_text("oci-stargate-gb200 (online from 2027-01-01")
    with web_server.client() as http:  # the same judgement the API gives
        assert http.get(f"/api/v1/jobs/{waiting['id']}").json()["waiting"]["reason"] == "offline"
    expect(pending.get_by_role("link", name=borrower["id"])).to_have_count(0)  # running: not waiting
    expect(page.get_by_role("region", name="GPUs held against each quota")).to_contain_text("Borrowing")
    shot(page, "queues")

    # Live: once the borrower is cancelled the page shows it no longer holds GPUs, without a reload.
    with web_server.client() as http:
        assert http.post(f"/api/v1/jobs/{borrower['id']}/cancel").status_code == 200
    expect(eval_h100.locator("td").nth(3)).to_have_text("0 GPUs", timeout=LIVE_MS)
    row.get_by_role("link", name=waiting["id"]).click()
    expect(page).to_have_title("Stargate · Jobs")
    expect(page.get_by_role("region", name=f"Job {waiting['id']}")).to_contain_text("300,000 GPUs")


def test_a_member_sees_every_queues_figures_but_only_its_teams_jobs(page: Page, web_server: ServerProcess) -> None:
    theirs = submit(
        web_server,
        {
            "name": "web-research-pending",
            "queue": "research-training",
            "gpus": 310_000,
            "gpu_models": ["GB200"],
            "command": "sleep 1",
        },
    )
    running = submit(
        web_server,
        {
            "name": "web-research-running",
            "queue": "research-training",
            "gpus": 8,
            "gpu_models": ["GB200"],
            "command": "sleep 60",
        },
    )
    job_status(web_server, running["id"], "running")
    token = web_server.create_token("eval", "member", "web-queues-member")
    login(page, web_server, token, to="queues")
    assert drawn(page, "chart-queues-quota") > 0
    expect(page.get_by_role("region", name="Queues by team").get_by_role("row")).to_have_count(4)  # header + 3
    pending = page.get_by_role("region", name="Pending jobs, oldest first")
    expect(pending.get_by_role("link", name=theirs["id"])).to_have_count(0)  # another team's job is not listed
    expect(pending).to_contain_text("in team eval's queues")
    research_gb200 = (
        page.get_by_role("region", name="Quota, held GPUs and borrowing")
        .get_by_role("row")
        .filter(has_text="research-training")
        .filter(has_text="GB200")
    )
    expect(research_gb200.locator("td").nth(3)).to_have_text("8 GPUs")  # counts are every team's to see
    with web_server.client() as http:
        http.post(f"/api/v1/jobs/{running['id']}/cancel")
