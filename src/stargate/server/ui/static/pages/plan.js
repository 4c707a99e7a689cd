// Plan: a stored capacity plan (the latest, or one picked from the list): supply against demand by source, the
// Monte Carlo shortfall band, cumulative spend against the budget envelope, the headline figures and the
// recommended actions with their cost. Admins and members may compute a plan; admins may apply one (its 'sign'
// actions become capacity requests) after confirming. The charts are the ones of `stargate plan --report`.
import { badge, card, chart, fill, h, kpi, labelled, message, num, status, table, usd, when } from "../lib.js";

const KINDS = ["owned", "reserved", "commitment", "on_demand", "market", "build"];
const KIND_LABEL = {
  owned: "owned (buildings)", reserved: "reserved", commitment: "commitment", on_demand: "on demand",
  market: "market (signed by the plan)", build: "build (new buildings)",
};
const KIND_COLOUR = {
  owned: "#1f4e79", reserved: "#2e86c1", commitment: "#76b7e5", on_demand: "#a569bd", market: "#f39c12", build: "#27ae60",
};
const MONTH_AXIS = { type: "date", tickformat: "%Y-%m", hoverformat: "%Y-%m" };

const total = (byKey) => Object.values(byKey || {}).reduce((a, b) => a + b, 0);
const month = (ym) => (ym ? h("time", { datetime: ym, title: ym + " (calendar month)" }, ym) : h("span", { class: "muted" }, "—"));

/** A short local date-time for an option's text (options hold text only). */
function shortWhen(iso) {
  const d = new Date(/Z$|[+-]\d\d:\d\d$/.test(iso) ? iso : iso + "Z");
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

function drawSupply(el, plan) {
  const rows = plan.months;
  const x = rows.map((r) => r.month);
  const hover = "%{y:,.0f} GPUs<extra>%{fullData.name}</extra>";
  const traces = KINDS.filter((k) => rows.some((r) => (r.supply_gpus[k] ?? 0) > 0)).map((k) => ({
    x, y: rows.map((r) => r.supply_gpus[k] ?? 0), name: KIND_LABEL[k], type: "scatter", mode: "lines",
    stackgroup: "supply", line: { width: 0.5, color: KIND_COLOUR[k] }, hovertemplate: hover,
  }));
  traces.push({ x, y: rows.map((r) => total(r.demand_gpus)), name: "demand", type: "scatter", mode: "lines",
    line: { color: "black", width: 2.5 }, hovertemplate: hover });
  traces.push({ x, y: rows.map((r) => total(r.shortfall_gpus)), name: "shortfall (plan)", type: "scatter",
    mode: "lines", line: { color: "#c0392b", width: 2, dash: "dash" }, hovertemplate: hover });
  const last = rows[rows.length - 1];
  chart(el, `Supply by source against demand by month, GPUs of every model; in ${last.month} demand is ` +
    `${Math.round(total(last.demand_gpus))} GPUs and supply ${Math.round(total(last.supply_gpus))} GPUs`, traces,
  { xaxis: MONTH_AXIS, yaxis: { title: { text: "GPUs" }, rangemode: "tozero" } });
}

function drawRisk(el, plan, risk) {
  const x = plan.months.map((r) => r.month);
  const band = risk.monthly_shortfall_gpus;
  const hover = "%{y:,.0f} GPUs<extra>%{fullData.name}</extra>";
  const common = { x, type: "scatter", mode: "lines", hovertemplate: hover };
  chart(el, `Shortfall by month over ${risk.scenarios} Monte Carlo scenarios: the band from P10 to P90 and the P50 line, GPUs`, [
    { ...common, y: band.map((p) => p.p10), name: "P10", line: { color: "#e6b0aa", width: 1 } },
    { ...common, y: band.map((p) => p.p90), name: "P90 (band P10–P90)", fill: "tonexty", fillcolor: "rgba(192,57,43,0.25)", line: { color: "#e6b0aa", width: 1 } },
    { ...common, y: band.map((p) => p.p50), name: "P50", line: { color: "#c0392b", width: 2.5 } },
    { ...common, y: plan.months.map((r) => total(r.shortfall_gpus)), name: "plan (no risk)", line: { color: "#555", width: 1.5, dash: "dot" } },
  ], { xaxis: MONTH_AXIS, yaxis: { title: { text: "shortfall, GPUs" }, rangemode: "tozero" } });
}

function drawSpend(el, plan) {
  const rows = plan.months;
  const x = rows.map((r) => r.month);
  const b = (v) => (v === null || v === undefined ? null : v / 1e9);
  const traces = [
    { x, y: rows.map((r) => b(r.cumulative_spend_usd)), name: "cumulative spend", type: "scatter", mode: "lines",
      line: { color: "#1f4e79", width: 2.5 }, hovertemplate: "%{y:,.1f} B USD<extra>%{fullData.name}</extra>" },
  ];
  if (rows.some((r) => r.envelope_usd !== null)) {
    traces.push({ x, y: rows.map((r) => b(r.envelope_usd)), name: "budget envelope", type: "scatter", mode: "lines",
      connectgaps: false, line: { color: "#c0392b", width: 2, dash: "dash" }, hovertemplate: "%{y:,.1f} B USD<extra>%{fullData.name}</extra>" });
  }
  traces.push({ x, y: rows.map((r) => b(r.spend_usd)), name: "spend in the month", type: "bar",
    marker: { color: "rgba(31,78,121,0.25)" }, hovertemplate: "%{y:,.2f} B USD<extra>%{fullData.name}</extra>" });
  chart(el, `Cumulative spend against the budget envelope by month, billions of USD; ${usd(plan.spend_usd)} over the horizon`,
    traces, { xaxis: MONTH_AXIS, yaxis: { title: { text: "B USD (10⁹ USD)" }, rangemode: "tozero" }, barmode: "overlay" });
}

function headline(detail, kpis) {
  const plan = detail.result.plan;
  const risk = detail.result.risk;
  const actions = plan.actions;
  fill(kpis,
    kpi("First month of shortfall", detail.first_shortfall_month ? month(detail.first_shortfall_month) : "none: demand is met in every month"),
    kpi("Unmet demand (plan)", num(detail.unmet_gpu_hours, "GPU-hours", 0)),
    kpi("Spend over the horizon (plan)", usd(plan.spend_usd)),
    plan.over_budget_usd > 0 ? kpi("Most over the budget envelope", usd(plan.over_budget_usd)) : null,
    kpi("Recommended actions", `${actions.length} (${usd(actions.reduce((s, a) => s + a.cost_usd, 0))})`),
    risk ? kpi("P90 shortfall", num(risk.shortfall_gpu_hours.p90, "GPU-hours", 0)) : kpi("Risk", "not run (0 Monte Carlo scenarios)"),
    risk ? kpi("Probability of a budget breach", `${num(risk.budget_breach_probability * 100, "%", 1)} of ${risk.scenarios} scenarios`) : null,
    kpi("Status", status(detail.status)));
}

function about(detail) {
  const plan = detail.result.plan;
  const months = plan.months;
  return h("p", { class: "muted" },
    `Plan ${detail.id} of scenario ${detail.scenario}, computed `, when(detail.created_at), ` by ${detail.created_by} on fleet version `,
    h("span", { title: detail.fleet_version }, detail.fleet_version.slice(0, 12)),
    `; horizon ${months[0].month} to ${months[months.length - 1].month} (${months.length} months); solver ${plan.status}; `,
    detail.scenarios ? `${detail.scenarios} Monte Carlo scenarios (seed ${detail.seed})` : "no Monte Carlo scenarios",
    detail.applied ? [`; applied `, when(detail.applied_at), ` by ${detail.applied_by}`] : "", ".");
}

function actionsTable(detail) {
  const requests = detail.applied_requests || {};
  const rows = detail.result.plan.actions.map((a, i) => ({ ...a, i }));
  const columns = [
    { label: "#", value: (a) => a.i, num: true },
    { label: "Action", value: (a) => (a.kind === "build" ? `build ${a.buildings}×` : a.kind) },
    { label: "Option", value: (a) => a.option },
    { label: "Provider / site", value: (a) => (a.site ? `${a.provider} / ${a.site}` : a.provider) },
    { label: "GPU model", value: (a) => a.gpu_model },
    { label: "Signed / started", value: (a) => a.month ?? "", render: (a) => month(a.month) },
    { label: "Online", value: (a) => a.online_month ?? "", render: (a) => month(a.online_month) },
    { label: "GPUs", value: (a) => a.gpus, render: (a) => num(a.gpus, "GPUs"), num: true },
    { label: "Term", value: (a) => a.term_months ?? Infinity, render: (a) => (a.term_months === null ? "owned" : num(a.term_months, "months")), num: true },
    { label: "Price", value: (a) => a.price_usd_per_gpu_hour ?? -1, render: (a) => (a.price_usd_per_gpu_hour === null ? "—" : num(a.price_usd_per_gpu_hour, "USD per GPU-hour", 2)), num: true },
    { label: "Cost", value: (a) => a.cost_usd, render: (a) => usd(a.cost_usd), num: true },
  ];
  if (detail.applied) columns.push({ label: "Capacity request", value: (a) => requests[String(a.i)] ?? "", render: (a) => requests[String(a.i)] ?? h("span", { class: "muted" }, "not raised") });
  return table(columns, rows, { empty: "The plan takes no action: the fleet as it is serves the demand it can." });
}

/** The apply controls (admins, plan not applied yet): a button, then a confirmation naming what it will raise. */
function applyControls(ctx, detail, outcome, after) {
  const signs = detail.result.plan.actions.filter((a) => a.kind === "sign");
  const box = h("div", { class: "toolbar" });
  const ask = () => fill(box,
    h("button", { type: "button", class: "danger", onclick: confirm }, "Apply plan…"),
    h("span", { class: "muted" }, `Applying raises one capacity request per signing still ahead (${signs.length} sign actions in the plan); buildings are not applied.`));
  const confirm = () => {
    const yes = h("button", { type: "button", class: "primary", onclick: apply }, "Confirm: raise the capacity requests");
    fill(box,
      h("p", { role: "alert" }, `Apply plan ${detail.id}? Each sign action from this month on becomes a capacity request ` +
        `(${usd(signs.reduce((s, a) => s + a.cost_usd, 0))} of signings in the plan); first refusal applies; a plan is applied once.`),
      yes, h("button", { type: "button", onclick: ask }, "Cancel"));
    yes.focus();
  };
  const apply = async () => {
    for (const b of box.querySelectorAll("button")) b.disabled = true;
    try {
      const out = await ctx.api(`/plans/${encodeURIComponent(detail.id)}/apply`, { method: "POST", body: {} });
      ctx.report("");
      fill(box);
      fill(outcome,
        h("h3", {}, `Applied: ${out.requests.length} capacity requests raised`),
        out.warnings.map((w) => h("p", { class: "muted" }, w)),
        table([
          { label: "Action", value: (r) => r.action, num: true },
          { label: "Request", value: (r) => r.request.id },
          { label: "State", value: (r) => r.request.state, render: (r) => status(r.request.state) },
        ], out.requests, { empty: "No request was raised." }),
        out.not_applicable.length ? h("ul", {}, out.not_applicable.map((n) => h("li", {}, `Action ${n.action} (${n.kind}): ${n.reason}`))) : null);
      await after();
    } catch (err) {
      ctx.report(message(err));
      ask();
    }
  };
  ask();
  return box;
}

/** The form to compute a plan (admins and members): scenario YAML pasted, loaded from a file, or the shown plan's. */
function computeForm(ctx, shown, done) {
  const yaml = h("textarea", { id: "plan-yaml", rows: 10, spellcheck: "false", placeholder: "name: my-scenario\nstart: 2027-01\nmonths: 24\n..." });
  const reuse = h("input", { type: "checkbox", id: "plan-reuse" });
  const file = h("input", { type: "file", accept: ".yaml,.yml,text/yaml" });
  const scenarios = h("input", { type: "number", min: 0, max: 1000, step: 1, value: 0 });
  const seed = h("input", { type: "number", min: 0, step: 1, value: 0 });
  const submit = h("button", { class: "primary", type: "submit" }, "Compute plan");
  reuse.addEventListener("change", () => { yaml.disabled = reuse.checked; file.disabled = reuse.checked; });
  file.addEventListener("change", async () => { if (file.files[0]) yaml.value = await file.files[0].text(); });
  const form = h("form", { class: "stack", "aria-label": "Compute a plan" },
    labelled("Scenario YAML (as `stargate plan --scenario` reads; its fleet key is ignored: the server plans against its fleet in force)", yaml),
    labelled("…or load a scenario file", file),
    h("label", {}, reuse, " Use the scenario of the plan shown (the YAML the server stored with it)"),
    h("div", { class: "toolbar" },
      labelled("Monte Carlo scenarios (0 to 1,000)", scenarios),
      labelled("Seed", seed)),
    h("div", {}, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = reuse.checked ? shown()?.scenario_yaml : yaml.value;
    if (!text) {
      ctx.report(reuse.checked ? "No plan is shown to take the scenario from: paste a scenario." : "Scenario YAML: found nothing, expected a scenario's text.");
      return;
    }
    submit.disabled = true;
    fill(submit, "Computing…");
    try {
      const plan = await ctx.api("/plans", { method: "POST", body: { scenario_yaml: text, scenarios: Number(scenarios.value), seed: Number(seed.value) } });
      ctx.report("");
      await done(plan.id);
    } catch (err) {
      ctx.report(message(err));
    } finally {
      submit.disabled = false;
      fill(submit, "Compute plan");
    }
  });
  return form;
}

export default async function render(ctx) {
  const picker = h("select", { id: "plan-pick", "aria-label": "Plan (newest first)" });
  const kpis = h("div", { class: "kpis", "aria-label": "Plan figures" });
  const info = h("div");
  const supplyChart = h("div", { id: "chart-plan-supply" });
  const riskChart = h("div", { id: "chart-plan-risk" });
  const riskNote = h("p", { class: "muted", hidden: true });
  const spendChart = h("div", { id: "chart-plan-spend" });
  const actions = h("div");
  const outcome = h("div", { "aria-live": "polite" }); // what applying did (kept while the same plan is shown)
  const notes = h("div");
  const body = h("div", { hidden: true }, kpis, info,
    h("div", { class: "grid" },
      card("Supply vs demand by source (GPUs, all models)", supplyChart),
      card("Shortfall risk: P10–P90 band and P50 (GPUs)", riskNote, riskChart)),
    card("Cumulative spend vs the budget envelope (B USD)", spendChart),
    card("Recommended actions", actions, outcome),
    notes);
  const empty = h("p", { class: "empty" }, "No capacity plan has been computed on this server yet.");
  const mayCompute = ctx.me.role === "admin" || ctx.me.role === "member";
  let detail = null; // the plan shown (GET /plans/{id})
  let chosen = null; // the plan id picked; null: the latest

  const showPlan = async (id) => {
    const d = await ctx.api(`/plans/${encodeURIComponent(id)}`);
    if (!ctx.stillShown()) return;
    if (detail?.id !== d.id) fill(outcome);
    detail = d;
    body.hidden = false;
    empty.hidden = true;
    headline(d, kpis);
    fill(info, about(d));
    const plan = d.result.plan;
    drawSupply(supplyChart, plan);
    if (d.result.risk) {
      riskNote.hidden = true;
      riskChart.hidden = false;
      drawRisk(riskChart, plan, d.result.risk);
    } else {
      if (window.Plotly) window.Plotly.purge(riskChart);
      riskChart.hidden = true;
      riskNote.hidden = false;
      fill(riskNote, "No Monte Carlo scenarios ran for this plan (0 scenarios), so there is no shortfall band: compute one with scenarios to draw it.");
    }
    drawSpend(spendChart, plan);
    fill(actions,
      actionsTable(d),
      ctx.isAdmin() && !d.applied ? applyControls(ctx, d, outcome, () => refresh(true)) : null,
      d.applied ? h("p", { class: "muted" }, `Applied `, when(d.applied_at), ` by ${d.applied_by}: a plan is applied once.`) : null);
    fill(notes, plan.notes.length ? card("Notes", h("ul", {}, plan.notes.map((n) => h("li", {}, n)))) : null);
  };

  const refresh = async (force = false) => {
    const plans = await ctx.api("/plans", { query: { limit: 100 } });
    if (!ctx.stillShown()) return;
    const keep = chosen ?? plans[0]?.id ?? null;
    fill(picker, plans.map((p) => h("option", { value: p.id, selected: p.id === keep },
      `${p.id} · ${p.scenario} · ${shortWhen(p.created_at)} · ${p.status}${p.scenarios ? ` · ${p.scenarios} scenarios` : ""}`)));
    picker.disabled = plans.length === 0;
    if (!keep) {
      body.hidden = true;
      empty.hidden = false;
      return;
    }
    const listed = plans.find((p) => p.id === keep);
    if (force || !detail || detail.id !== keep || (listed && listed.status !== detail.status)) await showPlan(keep);
  };

  picker.addEventListener("change", async () => {
    chosen = picker.value;
    try { await showPlan(chosen); ctx.report(""); } catch (err) { ctx.report(message(err)); }
  });

  fill(ctx.main,
    h("h1", {}, "Capacity plan"),
    h("div", { class: "toolbar" }, labelled("Plan (newest first)", picker),
      ctx.isAdmin() ? null : badge(mayCompute ? "applying a plan is for admins" : "read only")),
    empty, body,
    mayCompute ? card("Compute a new plan", computeForm(ctx, () => detail, async (id) => { chosen = id; await refresh(true); })) : null);
  await ctx.poll(() => refresh());
}
