"""The Simulation page in a real browser against a real server: a tiny native trace uploaded from a file (read in the
browser, sent as text) run twice under two policies, its progress bar seen reaching done, the result's figures and
chart, the two runs compared side by side with the API's figures, and a viewer who may look but not run."""

import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from e2e.e2e_support import ServerProcess
from web.conftest import drawn, login, shot

# 30 GB200 jobs of 20,000 to 60,000 GPUs, 5 minutes apart: they queue on the demo fleet, so policies differ
SIZES, HOURS = (20_000, 40_000, 60_000), (0.5, 1, 2, 4, 8)
TRACE = "id,submit_s,duration_s,gpus,queue,gpu_models\n" + "".join(
    f"j{i},{i * 300},{int(HOURS[i * 7 % 5] * 3600)},{SIZES[i * 5 % 3]},research-training,GB200\n" for i in range(30)
)


def shown(value: float | None, unit: str) -> str:
    """A figure as the page writes it in en-GB: grouped digits, at most 2 decimals, its unit."""
    if value is None:
        return "n/a"
    if unit == "USD":
        return f"{round(value):,} USD"
    text = f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{'0' if text == '-0' else text} {unit}"


def run_from_page(page: Page, web_server: ServerProcess, policy: str, trace: Path) -> dict[str, Any]:
    """Fill the form with the uploaded trace and ``policy``, run, watch its bar reach done; the run from the API."""
    form = page.get_by_role("form", name="Run a simulation")
    form.get_by_label("Trace", exact=True).select_option(label="Upload a trace file…")
    form.get_by_label("Trace file (sent as text)").set_input_files(trace)
    form.get_by_label("Trace format").select_option("native")
    form.get_by_label("Policy").select_option(policy)
    form.get_by_label("Name (optional)").fill(f"{policy} run")
    with page.expect_response(lambda r: r.url.endswith("/api/v1/simulations") and r.request.method == "POST") as posted:
        form.get_by_role("button", name="Run simulation").click()
    assert posted.value.status == 201
    run_id = posted.value.json()["id"]
    card = page.get_by_role("region", name="Run a simulation")
    bar = card.get_by_role("progressbar", name=f"Progress of simulation {run_id}")
    expect(bar).to_have_attribute("value", "1", timeout=60_000)
    expect(card).to_contain_text(f"Simulation {run_id} ({policy} run): 100 % succeeded")
    with web_server.client() as api:
        run: dict[str, Any] = api.get(f"/api/v1/simulations/{run_id}").json()
    assert run["status"] == "succeeded" and run["progress"] == 1
    assert run["request"]["trace"]["uploaded"]["bytes"] == len(TRACE) and run["request"]["policy"] == policy
    return run


def test_two_uploaded_runs_show_progress_and_figures_and_compare_side_by_side(
    page: Page, web_server: ServerProcess, tmp_path: Path
) -> None:
    trace = tmp_path / "tiny.csv"
    trace.write_text(TRACE)
    login(page, web_server, web_server.admin_token, to="simulation")
    fifo = run_from_page(page, web_server, "fifo", trace)
    result = page.get_by_role("region", name="Result")
    expect(result).to_contain_text(f"Simulation {fifo['id']} (fifo run)")
    assert drawn(page, "chart-simulation-result") > 0
    figures = result.get_by_label("Simulation figures")
    expect(figures).to_contain_text(shown(fifo["result"]["avg_jct_s"], "s"))
    expect(figures).to_contain_text(shown(fifo["result"]["cost_usd"], "USD"))

    srtf = run_from_page(page, web_server, "srtf", trace)
    expect(result).to_contain_text(f"Simulation {srtf['id']} (srtf run)")
    a, b = fifo["result"], srtf["result"]
    assert a["avg_jct_s"] != b["avg_jct_s"]  # the trace queues: the policies differ

    compare = page.get_by_role("region", name="Compare two runs")
    compare.get_by_label("Run A").select_option(fifo["id"])
    compare.get_by_label("Run B").select_option(srtf["id"])
    expect(compare.locator("thead")).to_contain_text(f"A: {fifo['id']}")
    expect(compare.locator("thead")).to_contain_text(f"B: {srtf['id']}")
    assert drawn(page, "chart-simulation-compare") > 0
    compared = [("avg_jct_s", "Mean JCT", "s"), ("p99_jct_s", "P99 JCT", "s"), ("cost_usd", "Cost", "USD")]
    for key, label, unit in compared:
        row = compare.locator("tbody tr", has=page.get_by_role("cell", name=label, exact=True))
        cells = row.locator("td")
        expect(cells.nth(1)).to_have_text(shown(a[key], unit))
        expect(cells.nth(2)).to_have_text(shown(b[key], unit))
        expect(cells.nth(3)).to_have_text(shown(b[key] - a[key], unit))
        expect(cells.nth(4)).to_have_text("×" + f"{b[key] / a[key]:.3f}")
    utilisation = compare.locator("tbody tr", has=page.get_by_role("cell", name="GPU utilisation", exact=True))
    expect(utilisation.locator("td").nth(1)).to_have_text(shown(a["gpu_utilization"] * 100, "%"))
    runs = page.get_by_role("region", name="Runs (newest first)")
    expect(runs.locator("tbody tr").first).to_contain_text(srtf["id"])
    shot(page, "simulation")


@pytest.fixture
def finished_run(web_server: ServerProcess) -> str:
    """A small run of the bundled trace (10 jobs) through the API, finished."""
    with web_server.client() as api:
        asked = api.post("/api/v1/simulations", json={"trace": "examples/stargate-2025/workload.csv", "max_jobs": 10})
        assert asked.status_code == 201, asked.text
        run_id: str = asked.json()["id"]
        for _ in range(600):
            if api.get(f"/api/v1/simulations/{run_id}").json()["status"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.1)
        return run_id


def test_a_viewer_sees_the_runs_but_cannot_start_one(page: Page, web_server: ServerProcess, finished_run: str) -> None:
    token = web_server.create_token("research", "viewer", "sim-viewer")
    login(page, web_server, token, to="simulation")
    expect(page.get_by_role("region", name="Runs (newest first)")).to_contain_text(finished_run)
    expect(page.get_by_text(re.compile("Running a simulation needs the admin or member role"))).to_be_visible()
    expect(page.get_by_role("form", name="Run a simulation")).to_have_count(0)
    expect(page.get_by_role("button", name="Run simulation")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^Cancel"))).to_have_count(0)
    page.get_by_role("button", name=f"Show {finished_run}").click()
    expect(page.get_by_role("region", name="Result")).to_contain_text(f"Simulation {finished_run}")
    assert drawn(page, "chart-simulation-result") > 0
    with web_server.client(token) as api:  # and the server refuses it anyway
        refused = api.post("/api/v1/simulations", json={"trace": "examples/stargate-2025/workload.csv", "max_jobs": 1})
        assert refused.status_code == 403
