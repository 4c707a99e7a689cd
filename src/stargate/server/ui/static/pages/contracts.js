// Contracts: every contract of the fleet in force (provider, kind, term, GPUs, price, commitment, spent so far), a
// burn-down of each spend commitment with the shortfall projected at today's burn rate, the reserved tranches on a
// timeline, and the first-refusal offers with their outcomes. A provider token sees its own contracts and offers.
import { ApiError, badge, card, chart, day, fill, h, kpi, labelled, num, status, table, usd, when } from "../lib.js";

const DAY_MS = 86_400_000;
const money = (text) => (text === null || text === undefined ? null : Number(text));
/** Spend so far: cents, and every micro-dollar below 1 USD (what a short run costs). */
const cents = (n) => (n !== null && n > 0 && n < 1 ? num(n, "USD", 6) : num(n, "USD", 2));
const priceFormat = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 6 });
/** A price per GPU-hour with every digit the contract states (up to 6 decimal places). */
const price = (n) => (n === null || n === undefined ? "—" : `${priceFormat.format(n)} USD per GPU-hour`);
/** A burn rate: small rates keep their significant digits. */
const perDay = (n) => (n !== null && n > 0 && n < 1 ? num(n, "USD per day", 6) : num(n, "USD per day", 2));
const OUTCOME = { over_budget: "bad", unfilled: "bad", market: "warn", offered: "warn" };
/** A request's state as a badge (the states lib.js does not colour). */
const outcome = (state) => (state in OUTCOME ? badge(state.replace("_", " "), OUTCOME[state]) : status(state));

/** Whole UTC days from `a` to `b` (ISO days), inclusive of neither end's time: b − a. */
function daysBetween(a, b) {
  return Math.round((Date.parse(b) - Date.parse(a)) / DAY_MS);
}

/**
 * A commitment's burn-down on `today`: the straight line from the commitment to 0 over its term, what remains
 * after what was spent, and where today's burn rate (spent ÷ days elapsed) ends the term.
 */
export function burnDown(contract, today) {
  const committed = money(contract.committed_spend_usd);
  const spent = money(contract.spent_usd);
  const termDays = daysBetween(contract.start, contract.end) + 1;
  const out = { committed, spent, termDays, started: today >= contract.start, ended: today > contract.end };
  if (spent === null) return out;
  out.remaining = committed - spent;
  if (!out.started) return out;
  const elapsed = Math.min(daysBetween(contract.start, today) + 1, termDays);
  out.rate = spent / elapsed; // USD per day so far
  const left = termDays - elapsed;
  out.projectedSpent = Math.min(committed, spent + out.rate * left);
  out.shortfall = Math.max(0, committed - spent - out.rate * left);
  return out;
}

function term(c) {
  return h("span", {}, day(c.start), " → ", day(c.end));
}

function clauses(c) {
  const parts = [];
  const r = c.right_of_first_refusal;
  if (r) parts.push(`first refusal: ${r.holder}, ${r.valid_from} to ${r.valid_until ?? "open end"} (${r.match_rule}, ${num(r.response_window_days, "days")} to answer)`);
  if (c.exclusivity) parts.push(`exclusivity until ${c.exclusivity.until}`);
  if (c.awarded_for) parts.push(`awarded for request ${c.awarded_for}`);
  return parts.length ? parts.join("; ") : h("span", { class: "muted" }, "none");
}

function contractsTable(contracts, showSpent) {
  return table([
    { label: "Contract", value: (c) => c.id },
    { label: "Provider", value: (c) => c.provider },
    { label: "Kind", value: (c) => c.kind, render: (c) => badge(c.kind.replace("_", " ")) },
    { label: "Term", value: (c) => c.start, render: term },
    { label: "GPUs / model", value: (c) => c.gpus ?? 0, render: (c) => `${c.gpus ? num(c.gpus, "GPUs") : "any count"} · ${c.gpu_model ?? "any model"}` },
    { label: "Price", value: (c) => money(c.price_per_gpu_hour_usd), render: (c) => price(money(c.price_per_gpu_hour_usd)), num: true },
    { label: "Value", value: (c) => money(c.value_usd), render: (c) => usd(money(c.value_usd)), num: true },
    { label: "Committed spend", value: (c) => money(c.committed_spend_usd), render: (c) => usd(money(c.committed_spend_usd)), num: true },
    { label: "Spent so far", value: (c) => money(c.spent_usd), render: (c) => (showSpent ? cents(money(c.spent_usd)) : h("span", { class: "muted" }, "admins only")), num: true },
    { label: "Clauses", value: (c) => (c.right_of_first_refusal ? 1 : 0), render: clauses },
  ], contracts, { empty: "No contract in the fleet in force." });
}

function drawBurn(el, note, c, today) {
  const b = burnDown(c, today);
  const traces = [{
    x: [c.start, c.end], y: [b.committed, 0], name: "straight line over the term", type: "scatter", mode: "lines",
    line: { dash: "dot", color: "#888" }, hovertemplate: "%{y:,.0f} USD<extra>straight line</extra>",
  }];
  const words = [`${c.id}: ${usd(b.committed)} committed from ${c.start} to ${c.end} (${num(b.termDays, "days")}).`];
  if (b.spent === null) {
    words.push("What was spent so far is shown to admins only.");
  } else if (!b.started) {
    words.push(`The term starts on ${c.start}: nothing is spent yet, ${usd(b.remaining)} remains.`);
  } else {
    const x = [c.start, today];
    traces.push({ x, y: [b.committed, b.remaining], name: "remaining (actual, today)", type: "scatter", mode: "lines+markers",
      line: { color: "#1f77b4" }, hovertemplate: "%{y:,.2f} USD remaining<extra>actual</extra>" });
    if (!b.ended) {
      traces.push({ x: [today, c.end], y: [b.remaining, b.shortfall], name: "projected at today's burn rate",
        type: "scatter", mode: "lines+markers", line: { dash: "dash", color: "#d62728" },
        hovertemplate: "%{y:,.2f} USD<extra>projection</extra>" });
    }
    words.push(`Spent so far ${cents(b.spent)} (${perDay(b.rate)} since ${c.start}); remaining ${usd(b.remaining)}.`);
    words.push(b.ended
      ? `The term ended: ${usd(b.shortfall)} of the commitment was not used.`
      : `At today's burn rate, ${usd(b.projectedSpent)} is spent by ${c.end}: projected shortfall ${usd(b.shortfall)} (commitment not used by the end).`);
  }
  fill(note, words.join(" "));
  return chart(el, `Burn-down of commitment ${c.id}: ${words.slice(1).join(" ")}`, traces, {
    yaxis: { title: { text: "commitment remaining (USD)" }, rangemode: "tozero" },
    shapes: [{ type: "line", x0: today, x1: today, yref: "paper", y0: 0, y1: 1, line: { dash: "dot", color: "#888" } }],
    annotations: [{ x: today, yref: "paper", y: 1, text: "today", showarrow: false, yanchor: "bottom" }],
  });
}

function drawTranches(el, reserved, today) {
  const rows = [...reserved].sort((a, b) => (a.start < b.start ? -1 : 1));
  const label = (c) => `${c.id} (${num(c.gpus, "GPUs")} ${c.gpu_model ?? ""})`;
  return chart(el, `Reserved tranches on a timeline: ${rows.map(label).join("; ")}`, [{
    type: "bar", orientation: "h", y: rows.map(label), base: rows.map((c) => c.start),
    x: rows.map((c) => (daysBetween(c.start, c.end) + 1) * DAY_MS),
    customdata: rows.map((c) => [c.start, c.end, num(c.gpus, "GPUs"), price(money(c.price_per_gpu_hour_usd))]),
    hovertemplate: "%{customdata[0]} → %{customdata[1]}<br>%{customdata[2]} at %{customdata[3]}<extra></extra>",
    marker: { color: "#4c78a8" }, name: "reserved term",
  }], {
    xaxis: { type: "date" }, yaxis: { automargin: true, autorange: "reversed" }, hovermode: "closest", showlegend: false,
    margin: { l: 16, r: 16, t: 28, b: 40 },
    shapes: [{ type: "line", x0: today, x1: today, yref: "paper", y0: 0, y1: 1, line: { dash: "dot", color: "#888" } }],
  });
}

function offersTable(offers, requestsById) {
  return table([
    { label: "Offer", value: (o) => o.id },
    { label: "Holder", value: (o) => o.holder, render: (o) => `${o.holder} (contract ${o.contract_id})` },
    { label: "Request", value: (o) => o.request_id, render: (o) => `${o.request_id}: ${num(o.gpus, "GPUs")} ${o.gpu_model} from ${o.request_start} for ${num(o.term_days, "days")}` },
    { label: "Offered", value: (o) => o.offered_at, render: (o) => when(o.offered_at) },
    { label: "Deadline", value: (o) => o.deadline, render: (o) => when(o.deadline) },
    { label: "State", value: (o) => o.state, render: (o) => status(o.state) },
    { label: "Benchmark", value: (o) => money(o.benchmark_price_per_gpu_hour_usd), render: (o) => (o.benchmark_price_per_gpu_hour_usd === null ? "no market quote" : `${price(money(o.benchmark_price_per_gpu_hour_usd))} from ${o.benchmark_start}`), num: true },
    { label: "Price matched", value: (o) => money(o.price_per_gpu_hour_usd), render: (o) => (o.state === "matched" ? `${price(money(o.price_per_gpu_hour_usd))} from ${o.start}` : h("span", { class: "muted" }, "—")), num: true },
    { label: "Answered", value: (o) => o.answered_at ?? "", render: (o) => (o.answered_at ? h("span", {}, when(o.answered_at), ` by ${o.answered_by}`) : h("span", { class: "muted" }, "not yet")) },
    { label: "Outcome", value: (o) => requestsById[o.request_id]?.state ?? "", render: (o) => (requestsById[o.request_id] ? outcome(requestsById[o.request_id].state) : h("span", { class: "muted" }, "—")) },
  ], offers, { empty: "No first-refusal offer has been made." });
}

function requestsTable(requests) {
  return table([
    { label: "Request", value: (r) => r.id },
    { label: "Asked", value: (r) => r.gpus, render: (r) => `${num(r.gpus, "GPUs")} ${r.gpu_model} from ${r.start} for ${num(r.term_days, "days")}` },
    { label: "Raised", value: (r) => r.at, render: (r) => h("span", {}, when(r.at), ` by ${r.actor} (${r.raised_by})`) },
    { label: "State", value: (r) => r.state, render: (r) => outcome(r.state) },
    { label: "Offer", value: (r) => r.offer?.state ?? "", render: (r) => (r.offer ? h("span", {}, `to ${r.offer.holder}: `, status(r.offer.state)) : h("span", { class: "muted" }, "none")) },
    { label: "Award", value: (r) => money(r.award?.cost_usd), render: (r) => (r.award
      ? `${r.award.provider} at ${r.award.site}, ${price(money(r.award.price_per_gpu_hour_usd))}, ${r.award.start} → ${r.award.end}, ${usd(money(r.award.cost_usd))} (${r.award.via})`
      : h("span", { class: "muted" }, "—")) },
  ], requests, { empty: "No capacity request yet." });
}

/** GET `path`, or null when the token may not read it (403): that part of the page is then left out. */
async function optional(ctx, path) {
  try {
    return await ctx.api(path);
  } catch (err) {
    if (err instanceof ApiError && err.status === 403) return null;
    throw err;
  }
}

export default async function render(ctx) {
  const provider = ctx.me.role === "provider";
  const kpis = h("div", { class: "kpis", "aria-label": "Contract figures" });
  const list = h("div");
  const burnChart = h("div", { id: "chart-contracts-burn" });
  const burnNote = h("p", { role: "note" });
  const picker = h("select", { id: "burn-pick" });
  const tranchesChart = h("div", { id: "chart-contracts-tranches" });
  const tranches = h("div");
  const offers = h("div");
  const requestsPart = h("div");
  fill(ctx.main,
    h("h1", {}, "Contracts"),
    provider ? h("p", { class: "muted" }, `Provider ${ctx.me.provider}: its contracts and the offers made to it.`) : null,
    kpis,
    card("Contracts", list),
    h("div", { class: "grid" },
      card("Commitment burn-down (remaining commitment over its term)",
        h("div", { class: "toolbar" }, labelled("Commitment", picker)), burnChart, burnNote),
      card("Reserved tranches (term on a timeline)", tranchesChart)),
    card("Reserved tranches", tranches),
    card("First-refusal offers and their outcomes", offers),
    provider ? null : requestsPart);

  let chosen = null;
  let last = null;
  picker.addEventListener("change", () => {
    chosen = picker.value;
    if (last) drawBurn(burnChart, burnNote, last.find((c) => c.id === chosen), new Date().toISOString().slice(0, 10));
  });

  await ctx.poll(async () => {
    const [contracts, offerList, requests] = await Promise.all([
      ctx.api("/contracts"),
      optional(ctx, "/procurement/offers"),
      provider ? null : optional(ctx, "/procurement/requests"),
    ]);
    const today = new Date().toISOString().slice(0, 10);
    const showSpent = contracts.some((c) => c.spent_usd !== null);
    const commitments = contracts.filter((c) => c.kind === "commitment" && c.committed_spend_usd !== null);
    const reserved = contracts.filter((c) => c.kind === "reserved");
    const sum = (rows, f) => rows.reduce((n, c) => n + (f(c) ?? 0), 0);
    fill(kpis,
      kpi("Contracts", num(contracts.length)),
      kpi("Committed spend", usd(sum(commitments, (c) => money(c.committed_spend_usd)))),
      kpi("Reserved GPUs in force today", num(sum(reserved.filter((c) => c.start <= today && today <= c.end), (c) => c.gpus), "GPUs")),
      kpi("Reserved value", usd(sum(reserved, (c) => money(c.value_usd)))),
      kpi("Spent so far", showSpent ? cents(sum(contracts, (c) => money(c.spent_usd))) : h("span", { class: "muted" }, "admins only")));
    fill(list, contractsTable(contracts, showSpent));

    if (commitments.length) {
      if (!commitments.some((c) => c.id === chosen)) chosen = commitments[0].id;
      fill(picker, commitments.map((c) => h("option", { value: c.id, selected: c.id === chosen }, `${c.id} (${c.provider}, ${usd(money(c.committed_spend_usd))})`)));
      picker.disabled = false;
      last = commitments;
      drawBurn(burnChart, burnNote, commitments.find((c) => c.id === chosen), today);
    } else {
      fill(picker);
      picker.disabled = true;
      fill(burnNote, "No spend commitment among these contracts.");
    }

    if (reserved.length) drawTranches(tranchesChart, reserved, today);
    fill(tranches, table([
      { label: "Contract", value: (c) => c.id },
      { label: "Provider", value: (c) => c.provider },
      { label: "GPUs", value: (c) => c.gpus ?? 0, render: (c) => `${num(c.gpus, "GPUs")} ${c.gpu_model ?? "any model"}`, num: true },
      { label: "Start", value: (c) => c.start, render: (c) => day(c.start) },
      { label: "End", value: (c) => c.end, render: (c) => day(c.end) },
      { label: "Price", value: (c) => money(c.price_per_gpu_hour_usd), render: (c) => price(money(c.price_per_gpu_hour_usd)), num: true },
      { label: "Value", value: (c) => money(c.value_usd), render: (c) => usd(money(c.value_usd)), num: true },
      { label: "Now", value: (c) => (today < c.start ? 0 : today > c.end ? 2 : 1), render: (c) => (today < c.start ? badge("not started", "warn") : today > c.end ? badge("ended") : badge("in force", "ok")) },
    ], reserved, { empty: "No reserved tranche." }));

    const byId = Object.fromEntries((requests ?? []).map((r) => [r.id, r]));
    fill(offers, offerList === null ? h("p", { class: "muted" }, "Your token may not read offers.") : offersTable(offerList, byId));
    if (requests !== null) fill(requestsPart, card("Capacity requests", requestsTable(requests)));
  });
}
