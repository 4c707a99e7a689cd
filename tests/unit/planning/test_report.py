"""The plan report: one offline HTML file (plotly.js embedded once, nothing fetched), the four charts, the headline
figures, the scenario's text escaped, at most 5 MB for the bundled scenario; the PNG's Chrome lookup."""

import dataclasses
import json
import re
from pathlib import Path

import pytest
from plotly.offline import get_plotlyjs

from stargate.planning.report import TITLES, ReportError, find_chrome, write_html, write_png
from stargate.planning.run import PlanRun, compute, headline, run_to_dict, spend_by_year
from stargate.planning.scenario_file import load_scenario

BUNDLED = Path(__file__).parents[3] / "examples" / "stargate-2025" / "plan.yaml"
MAX_BYTES = 5_000_000
PLOTLY_BANNER = get_plotlyjs()[:40]
"""The first line of plotly.js (its licence banner with the version): present once when embedded once."""


@pytest.fixture(scope="module")
def run() -> PlanRun:
    loaded = load_scenario(BUNDLED)
    return compute(loaded.scenario, loaded.fleet, loaded.history, scenarios=200, seed=7, workers=0)


@pytest.fixture(scope="module")
def page(run: PlanRun, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("report") / "plan.html"
    size = write_html(run, path)
    assert size == path.stat().st_size
    return path.read_text(encoding="utf-8")


def _in_page(text: str, page: str) -> bool:
    """Whether ``text`` is in the page as HTML text or inside a chart's JSON (which escapes non-ASCII)."""
    return text in page or json.dumps(text)[1:-1] in page


def test_report_is_self_contained(page: str) -> None:
    scripts = re.findall(r"<script\b[^>]*>", page, flags=re.IGNORECASE)
    assert scripts, "no chart scripts"
    assert not [s for s in scripts if re.search(r"\bsrc\s*=", s, flags=re.IGNORECASE)], scripts
    assert not re.search(r"<link\b[^>]*href\s*=\s*[\"']?https?:", page, flags=re.IGNORECASE)
    assert page.count(PLOTLY_BANNER) == 1
    assert page.count("Plotly.newPlot(") == 4


def test_report_of_the_bundled_scenario_with_200_scenarios_is_at_most_5_mb(page: str) -> None:
    assert len(page.encode("utf-8")) <= MAX_BYTES


def test_report_has_the_four_charts(page: str, run: PlanRun) -> None:
    for title in TITLES.values():
        assert _in_page(title, page), title
    assert run.risk is not None
    assert _in_page(f"{run.risk.scenarios:,} scenarios", page)


def test_report_has_the_headline_figures_with_units(page: str, run: PlanRun) -> None:
    plan, risk = run.plan, run.risk
    assert risk is not None
    first = plan.first_shortfall_month
    assert first is not None  # the bundled scenario runs short from its first month
    assert f"<dd>{first:%Y-%m}</dd>" in page
    assert f"{plan.unmet_gpu_hours:,.0f} GPU-hours" in page
    assert f"{risk.shortfall_gpu_hours.p90:,.0f} GPU-hours" in page
    assert f"{risk.budget_breach_probability * 100:.1f} % of 200 scenarios (seed 7)" in page
    for year in spend_by_year(plan):
        assert f"<td>{year.year}</td>" in page
    for label, text in headline(run):
        assert f"<dt>{label}</dt>" in page
        assert text.replace("&", "&amp;") in page


def test_report_lists_every_action(page: str, run: PlanRun) -> None:
    assert run.plan.actions
    table = page.split("<h2>Actions</h2>", 1)[1].split("<h2>", 1)[0]
    assert table.count("<tr>") == len(run.plan.actions) + 1  # the header row and one per action
    for action in run.plan.actions:
        assert f"{action.gpus:,} GPUs" in table


def test_scenario_text_is_escaped(run: PlanRun, tmp_path: Path) -> None:
    name = "<img src=x onerror=alert(1)>"
    evil = dataclasses.replace(
        run, inputs=dataclasses.replace(run.inputs, scenario=name), description="<script>alert('d')</script> & co"
    )
    write_html(evil, tmp_path / "evil.html")
    page = (tmp_path / "evil.html").read_text(encoding="utf-8")
    assert name not in page
    assert "<script>alert(" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;script&gt;alert(&#x27;d&#x27;)&lt;/script&gt; &amp; co" in page


def test_report_without_scenarios_says_why_the_band_is_missing(run: PlanRun, tmp_path: Path) -> None:
    bare = dataclasses.replace(run, risk=None)
    write_html(bare, tmp_path / "bare.html")
    page = (tmp_path / "bare.html").read_text(encoding="utf-8")
    assert "No Monte Carlo scenarios ran" in page
    assert page.count("Plotly.newPlot(") == 3
    assert page.count(PLOTLY_BANNER) == 1
    assert "not run (0 Monte Carlo scenarios)" in page
    assert run_to_dict(bare)["risk"] is None


def test_spend_by_year_adds_up_to_the_plans_spend(run: PlanRun) -> None:
    years = spend_by_year(run.plan)
    assert sum(y.months for y in years) == len(run.plan.rows)
    assert sum(y.spend_usd for y in years) == pytest.approx(run.plan.spend_usd, rel=1e-9)
    assert years[-1].cumulative_usd == pytest.approx(run.plan.rows[-1].cumulative_spend_usd)
    assert [y.year for y in years] == sorted({r.month.year for r in run.plan.rows})


def test_run_to_dict_has_the_plan_and_its_risk(run: PlanRun) -> None:
    doc = json.loads(json.dumps(run_to_dict(run)))
    assert doc["scenario"] == "stargate-2025"
    assert len(doc["plan"]["months"]) == 48
    assert set(doc["risk"]["shortfall_gpu_hours"]) == {"p10", "p50", "p90"}
    assert len(doc["risk"]["monthly_shortfall_gpus"]) == 48


def test_png_without_chrome_names_what_to_install(
    run: PlanRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chrome"))
    assert find_chrome() is None
    with pytest.raises(ReportError, match=r"BROWSER_PATH.*install it"):
        write_png(run, tmp_path / "plan.png")
    assert not (tmp_path / "plan.png").exists()


def test_chrome_is_found_from_browser_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chrome = tmp_path / "chrome"
    chrome.write_text("#!/bin/sh\n")
    monkeypatch.setenv("BROWSER_PATH", str(chrome))
    assert find_chrome() == str(chrome)


def test_report_stays_within_5_mb_with_thousands_of_actions(run: PlanRun, tmp_path: Path) -> None:
    actions = run.plan.actions
    some = dataclasses.replace(run, plan=dataclasses.replace(run.plan, actions=actions * (300 // len(actions) + 1)))
    many = dataclasses.replace(run, plan=dataclasses.replace(run.plan, actions=actions * (20_000 // len(actions))))
    for case, complete in ((some, True), (many, False)):
        size = write_html(case, tmp_path / "plan.html")
        page = (tmp_path / "plan.html").read_text(encoding="utf-8")
        assert size <= MAX_BYTES
        table = page.split("<h2>Actions</h2>", 1)[1].split("<h2>", 1)[0]
        rows = table.count("<tr>") - 1
        n = len(case.plan.actions)
        assert f"{n - 60:,} more are in the actions table" in page  # the timeline draws the 60 largest
        assert (rows == n) is complete and rows >= 300
        assert ("are left out of this table" in table) is not complete
        assert "<tr><td>0<td>" in table or not complete  # numbered from 0, as the JSON and `plan apply`
