// Budget: the investment envelope (initial, ceiling), what contracts, buildings and awards draw on it over time, its
// conflicts, and what runs have cost by team, provider and day. Admins also see the requests over budget and may
// override the budget for one, with a reason.
import { ApiError, badge, card, chart, day, fill, h, kpi, labelled, message, num, table, usd, when } from "../lib.js";

const money = (text) => (text === null || text === undefined ? null : Number(text));
/** A run's cost: cents, and every micro-dollar below 1 USD. */
const cost = (n) => (n !== null && n > 0 && n < 1 ? num(n, "USD", 6) : num(n, "USD", 2));

/** GET `path`, or null when the token may not read it (403): that part of the page is then left out. */
async function optional(ctx, path, query = null) {
  try {
    return await ctx.api(path, { query });
  } catch (err) {
    if (err instanceof ApiError && err.status === 403) return null;
    throw err;
  }
}

function drawDrawn(el, budget, today) {
  const draws = [...budget.draws].sort((a, b) => (a.day < b.day ? -1 : 1));
  const x = [];
  const y = [];
  let total = 0;
  for (const d of draws) {
    total += money(d.amount_usd);
    if (x.length && x[x.length - 1] === d.day) y[y.length - 1] = total;
    else { x.push(d.day); y.push(total); }
  }
  const first = [budget.start, ...x].sort()[0];
  const last = [budget.end, ...x, today].sort().pop();
  const span = [first, last];
  const initial = money(budget.initial_usd);
  const ceiling = money(budget.ceiling_usd);
  return chart(el, `Cumulative drawn over time: ${usd(money(budget.drawn_usd))} drawn against an initial envelope of ${usd(initial)} and a ceiling of ${usd(ceiling)}`, [
    { x: [first, ...x, last], y: [0, ...y, total], name: "drawn (cumulative)", type: "scatter", mode: "lines",
      line: { shape: "hv", color: "#1f77b4" }, fill: "tozeroy", hovertemplate: "%{y:,.0f} USD drawn<extra></extra>" },
    { x: span, y: [initial, initial], name: `initial envelope (${usd(initial)})`, type: "scatter", mode: "lines",
      line: { dash: "dash", color: "#2ca02c" }, hoverinfo: "skip" },
    { x: span, y: [ceiling, ceiling], name: `ceiling (${usd(ceiling)})`, type: "scatter", mode: "lines",
      line: { dash: "dash", color: "#d62728" }, hoverinfo: "skip" },
  ], {
    yaxis: { title: { text: "USD" }, rangemode: "tozero" },
    shapes: [
      { type: "rect", x0: budget.start, x1: budget.end, yref: "paper", y0: 0, y1: 1, fillcolor: "#888", opacity: 0.07, line: { width: 0 } },
      { type: "line", x0: today, x1: today, yref: "paper", y0: 0, y1: 1, line: { dash: "dot", color: "#888" } },
    ],
  });
}

/** Make `el` ready for a chart: a "nothing yet" message drawn in it earlier is removed. */
function clearMessage(el) {
  if (!el.classList.contains("js-plotly-plot")) fill(el);
}

function drawBars(el, what, rows) {
  clearMessage(el);
  const sorted = [...rows].sort((a, b) => money(b.cost_usd) - money(a.cost_usd));
  return chart(el, `Cost of runs by ${what}: ${sorted.map((r) => `${r.key} ${cost(money(r.cost_usd))}`).join(", ")}`, [{
    type: "bar", x: sorted.map((r) => r.key), y: sorted.map((r) => money(r.cost_usd)), name: "cost (USD)",
    customdata: sorted.map((r) => num(money(r.gpu_hours), "GPU-hours", 4)),
    hovertemplate: "%{x}: %{y:,.6f} USD, %{customdata}<extra></extra>", marker: { color: "#4c78a8" },
  }], { yaxis: { title: { text: "USD" }, rangemode: "tozero" }, hovermode: "closest", showlegend: false });
}

function drawDaily(el, rows) {
  clearMessage(el);
  const sorted = [...rows].sort((a, b) => (a.key < b.key ? -1 : 1));
  return chart(el, `Daily cost of runs (UTC days): ${sorted.map((r) => `${r.key} ${cost(money(r.cost_usd))}`).join(", ")}`, [{
    type: "bar", x: sorted.map((r) => r.key), y: sorted.map((r) => money(r.cost_usd)), name: "cost (USD)",
    customdata: sorted.map((r) => r.key), hovertemplate: "%{customdata} (UTC day): %{y:,.6f} USD<extra></extra>",
    marker: { color: "#72b7b2" },
  }], { xaxis: { type: "category" }, yaxis: { title: { text: "USD" }, rangemode: "tozero" }, hovermode: "closest", showlegend: false });
}

/** The admin's part: requests over budget (with why), the override form of each, and the overrides made. */
function overrides(ctx, requests, reasons, refresh) {
  const waiting = requests.filter((r) => r.state === "over_budget");
  const done = requests.filter((r) => r.award && r.award.override_reason);
  const form = (r) => {
    const input = h("input", { type: "text", required: true, id: `override-${r.id}`, placeholder: "e.g. board approved the overrun" });
    const button = h("button", { class: "danger", type: "submit" }, `Override the budget for ${r.id}`);
    const f = h("form", { class: "toolbar", "aria-label": `Override the budget for ${r.id}` },
      labelled(`Reason for ${r.id}`, input), button);
    f.addEventListener("submit", async (event) => {
      event.preventDefault();
      const reason = input.value.trim();
      if (!reason) { ctx.report(`body.reason: found nothing, expected why the budget is overridden for ${r.id}`); return; }
      if (!window.confirm(`Award ${r.id} over the budget? The reason is recorded with your name.`)) return;
      button.disabled = true;
      try {
        await ctx.api(`/procurement/requests/${encodeURIComponent(r.id)}/override`, { method: "POST", body: { reason } });
        ctx.report("");
        await refresh();
      } catch (err) {
        ctx.report(message(err));
        button.disabled = false;
      }
    });
    return f;
  };
  return [
    table([
      { label: "Request", value: (r) => r.id },
      { label: "Asked", value: (r) => r.gpus, render: (r) => `${num(r.gpus, "GPUs")} ${r.gpu_model} from ${r.start} for ${num(r.term_days, "days")}` },
      { label: "Raised", value: (r) => r.at, render: (r) => h("span", {}, when(r.at), ` by ${r.actor}`) },
      { label: "Why over budget", value: (r) => reasons[r.id] ?? "", render: (r) => reasons[r.id] ?? h("span", { class: "muted" }, "—") },
    ], waiting, { empty: "No request is over budget." }),
    waiting.map(form),
    h("h3", {}, "Overrides made"),
    table([
      { label: "Request", value: (r) => r.id },
      { label: "Award", value: (r) => money(r.award.cost_usd), render: (r) => `${r.award.provider}, ${usd(money(r.award.cost_usd))}, ${r.award.start} → ${r.award.end}` },
      { label: "By", value: (r) => r.award.override_by },
      { label: "At", value: (r) => r.award.at, render: (r) => when(r.award.at) },
      { label: "Reason", value: (r) => r.award.override_reason },
    ], done, { empty: "No budget override yet." }),
  ];
}

export default async function render(ctx) {
  if (ctx.me.role === "provider") {
    fill(ctx.main, h("h1", {}, "Budget"), h("p", { class: "muted" }, "The budget and costs are not shown to provider tokens."));
    return;
  }
  const kpis = h("div", { class: "kpis", "aria-label": "Budget figures" });
  const drawnChart = h("div", { id: "chart-budget-drawn" });
  const teamsChart = h("div", { id: "chart-budget-teams" });
  const providersChart = h("div", { id: "chart-budget-providers" });
  const dailyChart = h("div", { id: "chart-budget-daily" });
  const costsNote = h("p", { class: "muted" });
  const conflicts = h("div");
  const draws = h("div");
  const budgetPart = h("div", {},
    kpis,
    card("Drawn over time against the envelope and the ceiling (shaded: the budget period)", drawnChart),
    card("Conflicts", conflicts),
    card("Draws", draws));
  const costsPart = h("div", {},
    h("h2", {}, "Cost of runs"), costsNote,
    h("div", { class: "grid" },
      card("Cost by team", teamsChart),
      card("Cost by provider", providersChart)),
    card("Daily cost of runs (UTC days)", dailyChart));
  const overridePart = h("div");
  fill(ctx.main, h("h1", {}, "Budget"), budgetPart, costsPart, overridePart);

  // Two refreshes: the budget (one quick read) is drawn first; the costs of runs (three reads over the ledger,
  // the slower part with many runs) follow when they come.
  const refresh = async () => {
    const admin = ctx.isAdmin();
    const [budget, requests] = await Promise.all([
      optional(ctx, "/budget"),
      admin ? optional(ctx, "/procurement/requests") : null,
    ]);
    const today = new Date().toISOString().slice(0, 10);
    budgetPart.hidden = budget === null;
    if (budget) {
      const headroom = money(budget.headroom_usd);
      fill(kpis,
        kpi("Initial envelope", usd(money(budget.initial_usd))),
        kpi("Ceiling", usd(money(budget.ceiling_usd))),
        kpi("Drawn", usd(money(budget.drawn_usd))),
        kpi("Headroom (ceiling − drawn)", h("span", {}, usd(headroom), headroom < 0 ? [" ", badge("over the ceiling", "bad")] : null)),
        kpi("Beyond the initial envelope", usd(money(budget.beyond_initial_usd))),
        kpi("Budget period", h("span", {}, day(budget.start), " → ", day(budget.end))));
      drawDrawn(drawnChart, budget, today);
      fill(conflicts, table([
        { label: "Day", value: (c) => c.day, render: (c) => day(c.day) },
        { label: "Kind", value: (c) => c.kind, render: (c) => badge(c.kind.replace("_", " "), "bad") },
        { label: "Drawn by then", value: (c) => money(c.drawn_usd), render: (c) => usd(money(c.drawn_usd)), num: true },
        { label: "Over the ceiling", value: (c) => money(c.over_usd), render: (c) => usd(money(c.over_usd)), num: true },
        { label: "Draws", value: (c) => c.refs.join(", ") },
      ], budget.conflicts, { empty: "No conflict: every draw fits the ceiling and the budget period." }));
      fill(draws, table([
        { label: "Day", value: (d) => d.day, render: (d) => day(d.day) },
        { label: "Kind", value: (d) => d.kind },
        { label: "What", value: (d) => d.ref, render: (d) => `${d.ref} (${d.what})` },
        { label: "Amount", value: (d) => money(d.amount_usd), render: (d) => usd(money(d.amount_usd)), num: true },
      ], budget.draws, { empty: "Nothing draws on the budget." }));
    }

    if (!admin || requests === null) { fill(overridePart); return; }
    const over = requests.filter((r) => r.state === "over_budget");
    const reasons = {};
    await Promise.all(over.map(async (r) => {
      const page = await optional(ctx, "/procurement/events", { request_id: r.id, limit: 100 });
      const event = page?.items.filter((e) => e.kind === "over_budget").pop();
      if (event) reasons[r.id] = event.reason;
    }));
    if (!ctx.stillShown()) return;
    const focused = document.activeElement?.closest?.("form") && overridePart.contains(document.activeElement);
    if (focused) return; // do not replace a form being filled in
    fill(overridePart, card("Budget overrides (admins)", overrides(ctx, requests, reasons, refresh)));
  };

  const refreshCosts = async () => {
    const [byTeam, byProvider, byDay] = await Promise.all([
      optional(ctx, "/costs", { by: "team" }),
      optional(ctx, "/costs", { by: "provider" }),
      optional(ctx, "/costs", { by: "day" }),
    ]);
    if (!ctx.stillShown()) return;
    costsPart.hidden = byTeam === null && byProvider === null && byDay === null;
    const first = byTeam ?? byProvider ?? byDay;
    if (first) {
      fill(costsNote, `${first.team ? `Your team's runs only (team ${first.team})` : "Every team's runs"}: ${cost(money(first.total_usd))} for ${num(money(first.gpu_hours), "GPU-hours", 4)}, as of `, when(first.as_of),
        ". A run is charged from its start to its end (a running one up to now) at the price it was placed with.");
    }
    for (const [el, answer, what] of [[teamsChart, byTeam, "team"], [providersChart, byProvider, "provider"]]) {
      el.closest("section").hidden = answer === null;
      if (answer && answer.rows.length) drawBars(el, what, answer.rows);
      else if (answer) fill(el, h("p", { class: "empty" }, "No run has cost anything yet."));
    }
    dailyChart.closest("section").hidden = byDay === null;
    if (byDay && byDay.rows.length) drawDaily(dailyChart, byDay.rows);
    else if (byDay) fill(dailyChart, h("p", { class: "empty" }, "No run has cost anything yet."));
  };
  // Not awaited: the page counts as drawn once the budget is; a first failure is said, later reads go on.
  ctx.poll(refreshCosts).catch((err) => { if (ctx.stillShown()) ctx.report(message(err)); });
  await ctx.poll(refresh);
}
