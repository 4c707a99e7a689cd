"""The plan report: one self-contained HTML file (offline: plotly.js embedded once) and a PNG of the charts.

Four charts: supply against demand by source over time, the Monte Carlo shortfall band (P10–P90 with P50), cumulative
spend against the budget envelope, and the build-out timeline of the plan's actions. A header gives the headline
figures, the spend by year against the budget and the actions table. Every text that comes from the scenario or the
fleet is escaped; numbers carry their units, months are written YYYY-MM. Actions are numbered from 0, as in the
plan's JSON ``actions`` and ``stargate plan apply --action N``.

The report stays within :data:`MAX_BYTES` whatever the plan: plotly.js alone is about 4.8 MB, so the timeline draws at
most :data:`MAX_TIMELINE` actions (the largest by cost) and the actions table is written compactly (one short row per
action); should a plan have so many actions that even that table does not fit, the table keeps the largest by cost
that fit and says how many are left out (``stargate plan --json`` lists them all).
"""

from __future__ import annotations

import html
import os
import shutil
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from stargate.engine.plan_types import SOURCE_KINDS, Action
from stargate.planning.run import PlanRun, headline, spend_by_year, usd_text

TITLES = {
    "supply": "Supply vs demand by source (GPUs, all models)",
    "band": "Shortfall risk: P10–P90 band and P50 (GPUs)",
    "spend": "Cumulative spend vs the budget envelope (B USD)",
    "timeline": "Build-out timeline: signings and buildings",
}
"""The four charts' titles (the tests look for them)."""
MAX_BYTES = 5_000_000
"""The most bytes a report takes."""
MAX_TIMELINE = 60
"""The most actions the build-out timeline draws (the largest by cost; the table lists every one)."""

_KIND_LABEL = {
    "owned": "owned",
    "reserved": "reserved",
    "commitment": "commitment",
    "on_demand": "on demand",
    "market": "market (signed by the plan)",
    "build": "build (new buildings)",
}
_KIND_COLOUR = {
    "owned": "#1f4e79",
    "reserved": "#2e86c1",
    "commitment": "#76b7e5",
    "on_demand": "#a569bd",
    "market": "#f39c12",
    "build": "#27ae60",
}
_WIDTH, _HEIGHT = 1100, 460
# a small inline style instead of a Plotly template: a template is ~7 KB of JSON in every chart of the report
_STYLE: dict[str, Any] = {
    "template": "none", "plot_bgcolor": "white", "paper_bgcolor": "white",
    "font": {"family": "system-ui, sans-serif", "size": 12, "color": "#2a3f5f"},
}  # fmt: skip
_GRID: dict[str, Any] = {"gridcolor": "#ebf0f8", "zerolinecolor": "#ebf0f8", "linecolor": "#ccc"}
_CHROME_HELP = (
    "PNG export needs Chrome or Chromium: install it (e.g. `apt-get install chromium`) or point the environment "
    "variable BROWSER_PATH at a Chrome executable"
)


class ReportError(RuntimeError):
    """The report could not be written (e.g. no Chrome for the PNG); the message says what to do."""


def _ym(day: date) -> str:
    return day.strftime("%Y-%m")


def _add_months(day: date, n: int) -> date:
    index = day.year * 12 + day.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def _r(value: float, digits: int = 1) -> float:
    return round(value, digits)


Add = Callable[[Any], None]


def _supply_traces(run: PlanRun, add: Add, legend: str = "legend") -> None:
    rows = run.plan.rows
    x = [_ym(r.month) for r in rows]
    for kind in SOURCE_KINDS:
        y = [_r(r.supply_gpus.get(kind, 0.0)) for r in rows]
        if any(y):
            add(
                go.Scatter(
                    x=x, y=y, name=_KIND_LABEL[kind], stackgroup="supply", mode="lines", legend=legend,
                    line={"width": 0.5, "color": _KIND_COLOUR[kind]}, hovertemplate="%{y:,.0f} GPUs",
                )
            )  # fmt: skip
    add(
        go.Scatter(
            x=x, y=[_r(sum(r.demand_gpus.values())) for r in rows], name="demand", mode="lines", legend=legend,
            line={"color": "black", "width": 2.5}, hovertemplate="%{y:,.0f} GPUs",
        )
    )  # fmt: skip
    add(
        go.Scatter(
            x=x, y=[_r(sum(r.shortfall_gpus.values())) for r in rows], name="shortfall (plan)", mode="lines",
            legend=legend, line={"color": "#c0392b", "width": 2, "dash": "dash"}, hovertemplate="%{y:,.0f} GPUs",
        )
    )  # fmt: skip


def _band_traces(run: PlanRun, add: Add, legend: str = "legend") -> None:
    assert run.risk is not None
    x = [_ym(m) for m in run.inputs.months]
    band = run.risk.monthly_shortfall_gpus
    common: dict[str, Any] = {"x": x, "mode": "lines", "legend": legend, "hovertemplate": "%{y:,.0f} GPUs"}
    add(go.Scatter(y=[_r(p.p10) for p in band], name="P10", line={"color": "#e6b0aa", "width": 1}, **common))
    add(
        go.Scatter(
            y=[_r(p.p90) for p in band], name="P90 (band P10–P90)", fill="tonexty",
            fillcolor="rgba(192,57,43,0.25)", line={"color": "#e6b0aa", "width": 1}, **common,
        )
    )  # fmt: skip
    add(go.Scatter(y=[_r(p.p50) for p in band], name="P50", line={"color": "#c0392b", "width": 2.5}, **common))
    plan = [_r(sum(r.shortfall_gpus.values())) for r in run.plan.rows]
    add(go.Scatter(y=plan, name="plan (no risk)", line={"color": "#555", "width": 1.5, "dash": "dot"}, **common))


def _spend_traces(run: PlanRun, add: Add, legend: str = "legend") -> None:
    rows = run.plan.rows
    x = [_ym(r.month) for r in rows]
    add(
        go.Scatter(
            x=x, y=[_r(r.cumulative_spend_usd / 1e9, 3) for r in rows], name="cumulative spend", mode="lines",
            legend=legend, line={"color": "#1f4e79", "width": 2.5}, hovertemplate="%{y:,.1f} B USD",
        )
    )  # fmt: skip
    envelope = [None if r.envelope_usd is None else _r(r.envelope_usd / 1e9, 3) for r in rows]
    if any(v is not None for v in envelope):
        add(
            go.Scatter(
                x=x, y=envelope, name="budget envelope", mode="lines", legend=legend, connectgaps=False,
                line={"color": "#c0392b", "width": 2, "dash": "dash"}, hovertemplate="%{y:,.1f} B USD",
            )
        )  # fmt: skip
    add(
        go.Bar(
            x=x, y=[_r(r.spend_usd / 1e9, 3) for r in rows], name="spend in the month", legend=legend,
            marker={"color": "rgba(31,78,121,0.25)"}, hovertemplate="%{y:,.2f} B USD",
        )
    )  # fmt: skip


def action_label(action: Action) -> str:
    """One line naming an action: ``sign coreweave GB200 428,630 GPUs`` or ``build milam 12× GB200 ...``."""
    if action.kind == "build":
        return f"build {action.site or action.provider}: {action.buildings}× ({action.gpus:,} GPUs {action.gpu_model})"
    return f"sign {action.provider}: {action.gpus:,} GPUs {action.gpu_model}"


def largest(actions: Sequence[Action], count: int) -> list[int]:
    """The indices of the ``count`` actions of largest cost (ties: the earlier first), in index order."""
    ranked = sorted(range(len(actions)), key=lambda i: (-actions[i].cost_usd, i))
    return sorted(ranked[:count])


def _timeline_traces(run: PlanRun, add: Add, legend: str = "legend", short: bool = False) -> list[str]:
    """The largest actions as bars (lead time, then online), one trace per part and kind; their labels, in order."""
    start, n = run.inputs.months[0], len(run.inputs.months)
    labels: list[str] = []
    bars: dict[tuple[str, str], tuple[list[str | None], list[str | None], list[str | None]]] = {}
    actions = run.plan.actions
    for i in largest(actions, MAX_TIMELINE):
        a = actions[i]
        label = f"{i}. {a.kind} {a.gpu_model}" if short else f"{i}. {action_label(a)}"
        labels.append(label)
        end = a.online_month + a.term_months if a.term_months is not None else n
        for part, first, last in (("lead", a.month, a.online_month), ("on", a.online_month, end)):
            if last > first:
                x, y, text = bars.setdefault((part, "sign" if a.kind == "sign" else "build"), ([], [], []))
                since, until = _ym(_add_months(start, first)), _ym(_add_months(start, last - 1))
                words = f"{_TIMELINE_PART[part]}: {since} to {until}"
                x += [since, _ym(_add_months(start, last)), None]
                y += [label, label, None]
                text += [words, words, None]
    shown = set()
    for (part, kind), (x, y, text) in sorted(bars.items()):
        add(
            go.Scatter(
                x=x, y=y, text=text, mode="lines", line={"color": _TIMELINE_COLOUR[part, kind], "width": 14},
                name=_TIMELINE_PART[part], legend=legend, legendgroup=part, showlegend=part not in shown,
                connectgaps=False, hovertemplate="%{text}<extra></extra>",
            )
        )  # fmt: skip
        shown.add(part)
    return labels


_TIMELINE_PART = {"lead": "lead time / construction", "on": "online (term or to the end)"}
_TIMELINE_COLOUR = {
    ("lead", "sign"): "#f5cba7", ("lead", "build"): "#abebc6", ("on", "sign"): "#f39c12", ("on", "build"): "#27ae60",
}  # fmt: skip


def _layout(fig: go.Figure, title: str, y_title: str, height: int = _HEIGHT) -> go.Figure:
    fig.update_layout(
        title={"text": title}, height=height, width=None, margin={"l": 70, "r": 20, "t": 50, "b": 40},
        hovermode="x unified", **_STYLE,
    )  # fmt: skip
    fig.update_xaxes(type="date", tickformat="%Y-%m", hoverformat="%Y-%m", **_GRID)
    fig.update_yaxes(title_text=y_title, rangemode="tozero", **_GRID)
    return fig


def figures(run: PlanRun) -> dict[str, go.Figure]:
    """The report's charts by key (``supply``, ``band`` when scenarios ran, ``spend``, ``timeline``)."""
    out: dict[str, go.Figure] = {}
    fig = go.Figure()
    _supply_traces(run, fig.add_trace)
    out["supply"] = _layout(fig, TITLES["supply"], "GPUs")
    if run.risk is not None:
        fig = go.Figure()
        _band_traces(run, fig.add_trace)
        title = f"{TITLES['band']}, {run.risk.scenarios:,} scenarios"
        out["band"] = _layout(fig, title, "shortfall, GPUs")
    fig = go.Figure()
    _spend_traces(run, fig.add_trace)
    out["spend"] = _layout(fig, TITLES["spend"], "B USD")
    fig = go.Figure()
    labels = _timeline_traces(run, fig.add_trace)
    height = max(220, 110 + 26 * len(labels))
    out["timeline"] = _layout(fig, TITLES["timeline"], "", height)
    fig.update_yaxes(autorange="reversed", categoryorder="array", categoryarray=labels, rangemode=None)
    fig.update_layout(hovermode="closest")
    return out


def combined(run: PlanRun) -> go.Figure:
    """The four charts as one 2×2 figure (the PNG), each with its own legend."""
    titles = [TITLES["supply"], TITLES["band"] if run.risk else "Shortfall risk: no scenarios ran"]
    titles += [TITLES["spend"], TITLES["timeline"]]
    fig = make_subplots(rows=2, cols=2, subplot_titles=titles, horizontal_spacing=0.1, vertical_spacing=0.12)
    places = {"legend": (1, 1), "legend2": (1, 2), "legend3": (2, 1), "legend4": (2, 2)}

    def adder(legend: str) -> Add:
        row, col = places[legend]
        return lambda trace: fig.add_trace(trace, row=row, col=col)

    _supply_traces(run, adder("legend"), "legend")
    if run.risk is not None:
        _band_traces(run, adder("legend2"), "legend2")
    _spend_traces(run, adder("legend3"), "legend3")
    labels = _timeline_traces(run, adder("legend4"), "legend4", short=True)
    legend = {"font": {"size": 10}, "bgcolor": "rgba(255,255,255,0.7)", "xanchor": "left", "yanchor": "top"}
    fig.update_layout(
        width=1600, height=1000, margin={"l": 60, "r": 20, "t": 60, "b": 40}, **_STYLE,
        legend={**legend, "x": 0.01, "y": 0.99}, legend2={**legend, "x": 0.56, "y": 0.99},
        legend3={**legend, "x": 0.01, "y": 0.43}, legend4={**legend, "x": 0.56, "y": 0.01, "yanchor": "bottom"},
        title={"text": f"Capacity plan: {run.inputs.scenario}"}, barmode="overlay",
    )  # fmt: skip
    fig.update_xaxes(type="date", tickformat="%Y-%m", **_GRID)
    fig.update_yaxes(**_GRID)
    fig.update_yaxes(title_text="GPUs", row=1, col=1)
    fig.update_yaxes(title_text="shortfall, GPUs", row=1, col=2)
    fig.update_yaxes(title_text="B USD", row=2, col=1)
    fig.update_yaxes(autorange="reversed", categoryorder="array", categoryarray=labels, row=2, col=2)  # fmt: skip
    return fig


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;color:#222}
h1{margin-bottom:4px}h2{margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
.desc{color:#555;margin-top:0}.note{color:#777;font-style:italic}
table{border-collapse:collapse;margin:8px 0;font-size:14px}th,td{border:1px solid #ddd;padding:4px 8px}
th{background:#f4f6f8;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
dl.head{display:grid;grid-template-columns:max-content auto;gap:4px 16px}dl.head dt{font-weight:600}
dl.head dd{margin:0}
table.acts td:nth-child(1),table.acts td:nth-child(n+8){text-align:right;font-variant-numeric:tabular-nums}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _table(headers: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td{' class=n' if i in numeric else ''}>{_e(v)}</td>" for i, v in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _month_of(run: PlanRun, index: int) -> str:
    return _ym(_add_months(run.inputs.months[0], index))


_ACTION_HEADERS = ["#", "action", "option", "provider / site", "GPU model", "from", "online", "GPUs"]
_ACTION_HEADERS += ["term, months", "price, USD/GPU-hour", "cost, USD"]


def _action_row(run: PlanRun, i: int, a: Action) -> str:
    """One compact row of the actions table (end tags left out, as HTML allows; units in the header but GPUs)."""
    cells = [
        str(i), f"build {a.buildings}×" if a.kind == "build" else a.kind, a.option,
        f"{a.provider} / {a.site}" if a.site else a.provider, a.gpu_model, _month_of(run, a.month),
        _month_of(run, a.online_month), f"{a.gpus:,} GPUs",
        f"{a.term_months}" if a.term_months is not None else "owned",
        f"{a.price_usd_per_gpu_hour:,.2f}" if a.price_usd_per_gpu_hour is not None else "-",
        usd_text(a.cost_usd).removesuffix(" USD"),
    ]  # fmt: skip
    return "<tr>" + "".join(f"<td>{_e(c)}" for c in cells)


def actions_table(run: PlanRun, max_bytes: int | None = None) -> str:
    """The plan's actions as a compact HTML table, numbered from 0; within ``max_bytes`` (None: no limit) by
    keeping the largest actions by cost and saying how many are left out."""
    actions = run.plan.actions
    if not actions:
        return "<p class=note>The plan takes no action: the fleet as it is serves the demand it can.</p>"
    rows = [_action_row(run, i, a) for i, a in enumerate(actions)]
    note = ""
    if max_bytes is not None and sum(len(r.encode()) for r in rows) > max_bytes:
        kept: list[int] = []
        room = max_bytes
        for i in sorted(range(len(actions)), key=lambda i: (-actions[i].cost_usd, i)):
            size = len(rows[i].encode())
            if size > room:
                break
            kept.append(i)
            room -= size
        left = len(actions) - len(kept)
        note = (
            f"<p class=note>{left:,} of the {len(actions):,} actions (the smallest by cost) are left out of this "
            f"table to keep the report within {MAX_BYTES / 1e6:.0f} MB; <code>stargate plan --json</code> lists "
            "them all.</p>"
        )
        rows = [rows[i] for i in sorted(kept)]
    head = "".join(f"<th>{_e(h)}" for h in _ACTION_HEADERS)
    return f"{note}<table class=acts><thead><tr>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _year_table(run: PlanRun) -> str:
    rows = []
    for y in spend_by_year(run.plan):
        envelope = usd_text(y.envelope_usd) if y.envelope_usd is not None else "no budget"
        room = usd_text(y.envelope_usd - y.cumulative_usd) if y.envelope_usd is not None else "-"
        rows.append([str(y.year), f"{y.months}", usd_text(y.spend_usd), usd_text(y.cumulative_usd), envelope, room])
    headers = ["year", "months in horizon", "spend", "cumulative spend at year end", "budget envelope", "headroom"]
    return _table(headers, rows, {1, 2, 3, 4, 5})


def render_html(run: PlanRun) -> str:
    """The report as one HTML document (plotly.js embedded once, no network needed to view it)."""
    figs = figures(run)
    first = True
    charts: dict[str, str] = {}
    for key, fig in figs.items():
        charts[key] = fig.to_html(
            full_html=False, include_plotlyjs=first, include_mathjax=False, config={"displaylogo": False},
            default_width="100%",
        )  # fmt: skip
        first = False
    plan = run.plan
    head = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in headline(run))
    band = charts.get("band") or (
        f"<h3>{_e(TITLES['band'])}</h3><p class=note>No Monte Carlo scenarios ran (0 scenarios), so there is no "
        "shortfall band; run with --scenarios N to draw it.</p>"
    )
    notes = "".join(f"<li>{_e(note)}</li>" for note in plan.notes)
    more = len(plan.actions) - MAX_TIMELINE
    timeline = charts["timeline"]
    if more > 0:
        timeline = (
            f"<p class=note>The build-out timeline draws the {MAX_TIMELINE} largest actions by cost (numbered as in "
            f"the table); {more:,} more are in the actions table.</p>\n{timeline}"
        )
    page = _page(run, head, notes, TABLE, charts["supply"], band, charts["spend"], timeline)
    room = MAX_BYTES - len(page.encode("utf-8")) + len(TABLE) - _TABLE_NOTE_BYTES
    return page.replace(TABLE, actions_table(run, room), 1)


TABLE = "\x00actions-table\x00"
"""Where the actions table goes in the page (filled in last, within the bytes left)."""
_TABLE_NOTE_BYTES = 400
"""Room kept for the note of a table that leaves actions out, bytes."""


def _page(run: PlanRun, head: str, notes: str, table: str, supply: str, band: str, spend: str, timeline: str) -> str:
    plan, inputs = run.plan, run.inputs
    n = len(inputs.months)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Capacity plan: {_e(inputs.scenario)}</title><style>{_CSS}</style></head>
<body>
<h1>Capacity plan: {_e(inputs.scenario)}</h1>
<p class=desc>{_e(run.description)}</p>
<p>Horizon {_ym(inputs.months[0])} to {_ym(inputs.months[-1])} ({n} months); solver status {_e(plan.status)},
solved in {plan.solve_seconds:.2f} s; objective {_e(usd_text(plan.objective_usd))} (spend plus penalties).</p>
<h2>Headline figures</h2>
<dl class=head>{head}</dl>
{f"<ul>{notes}</ul>" if notes else ""}
<h2>Spend by year against the budget</h2>
{_year_table(run)}
<h2>Actions</h2>
{table}
<h2>Charts</h2>
{supply}
{band}
{spend}
{timeline}
<p class=note>Months are calendar months (YYYY-MM); GPUs are monthly averages summed over GPU models; money in USD
(B USD = 10<sup>9</sup> USD).</p>
</body></html>
"""


def write_html(run: PlanRun, path: Path) -> int:
    """Write the report to ``path`` (one self-contained HTML file); returns its size in bytes."""
    text = render_html(run)
    data = text.encode("utf-8")
    Path(path).write_bytes(data)
    return len(data)


def find_chrome() -> str | None:
    """The Chrome kaleido should drive: BROWSER_PATH, else /usr/bin/chromium, else chromium (or chrome) on PATH."""
    given = os.environ.get("BROWSER_PATH")
    if given:
        return given if Path(given).is_file() else None
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def write_png(run: PlanRun, path: Path) -> None:
    """Write the four charts as one 2×2 PNG with kaleido (needs Chrome; raises :class:`ReportError` without one)."""
    chrome = find_chrome()
    if chrome is None:
        given = os.environ.get("BROWSER_PATH")
        where = f"BROWSER_PATH={given!r} is not a file; " if given else "no Chrome found (BROWSER_PATH unset, "
        where += "" if given else "no /usr/bin/chromium, no chromium on PATH); "
        raise ReportError(where + _CHROME_HELP)
    os.environ["BROWSER_PATH"] = chrome  # kaleido (choreographer) reads it
    fig = combined(run)
    try:
        fig.write_image(str(path), format="png", width=1600, height=1000, scale=1)
    except Exception as exc:  # kaleido's errors vary by version; say what failed and what to check
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ReportError(f"PNG export with Chrome at {chrome} failed: {first}; {_CHROME_HELP}") from exc
