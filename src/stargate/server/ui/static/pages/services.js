// Services: every inference service the viewer may see, with its replicas, traffic and latency against its
// objective; one service selected (#/services/NAME) with its replicas, the replica count over its scale decisions,
// a live chart of its traffic and latency sampled since the page was opened, and its scale events.
import { ApiError, badge, card, chart, fill, h, kpi, localAxis, message, num, parseUtc, status, table, when } from "../lib.js";

const LIST_MS = 5000;
const DETAIL_MS = 2000;
const KEEP_MS = 30 * 60 * 1000; // samples kept in memory: the last 30 minutes

/** The service named by the location (#/services/NAME), or null. */
function selectedName() {
  const found = location.hash.match(/^#\/services\/([^/?#]+)/);
  return found ? decodeURIComponent(found[1]) : null;
}

/** A latency in s or ms, e.g. "0.64 s", "12 ms"; "—" when not measured. */
function seconds(s) {
  if (s === null || s === undefined) return "—";
  return s < 0.1 ? num(s * 1000, "ms", 0) : num(s, "s", 2);
}

/** A p99 latency against its bound: "0.25 s (objective ≤ 1 s)", flagged when over. */
function against(value, bound) {
  if (bound === null || bound === undefined) return h("span", {}, seconds(value), h("span", { class: "muted" }, " (no objective)"));
  const over = value !== null && value !== undefined && value > bound;
  return h("span", {}, seconds(value), " ", h("span", { class: "muted" }, `(objective ≤ ${seconds(bound)})`),
    over ? [" ", badge("over objective", "bad")] : null);
}

function serviceState(s) {
  return s.state === "deleting" ? badge("deleting", "warn") : status(s.state);
}

function listTable(services) {
  const t = (s) => s.traffic;
  const obj = (s) => s.spec.objective;
  return table([
    { label: "Service", value: (s) => s.name, render: (s) => h("a", { href: `#/services/${encodeURIComponent(s.name)}` }, s.name) },
    { label: "Team", value: (s) => s.team },
    { label: "State", value: (s) => s.state, render: serviceState },
    { label: "Ready / desired", value: (s) => s.ready_replicas, render: (s) => `${num(s.ready_replicas, "replicas")} ready of ${s.desired_replicas} desired`, num: true },
    { label: "Requests/s", value: (s) => t(s)?.requests_per_s ?? null, render: (s) => num(t(s)?.requests_per_s, "requests/s"), num: true },
    { label: "In flight", value: (s) => t(s)?.in_flight ?? null, render: (s) => num(t(s)?.in_flight, "requests"), num: true },
    { label: "TTFT p99", value: (s) => t(s)?.ttft_p99_s ?? null, render: (s) => against(t(s)?.ttft_p99_s, obj(s).ttft_s) },
    { label: "End-to-end p99", value: (s) => t(s)?.e2e_p99_s ?? null, render: (s) => against(t(s)?.e2e_p99_s, obj(s).e2e_s) },
    { label: "Failed", value: (s) => t(s)?.failed ?? null, render: (s) => num(t(s)?.failed, "requests"), num: true },
    { label: "Problem", value: (s) => s.problem, render: (s) => s.problem || h("span", { class: "muted" }, "none") },
  ], services, { empty: "No service yet: create one with stargate serve FILE (POST /api/v1/services)." });
}

/** The replica count over time: a step per scale decision, held up to now. */
function drawReplicas(el, service) {
  const d = service.decisions;
  if (!d.length) return;
  const at = [...d.map((x) => x.at), new Date().toISOString()];
  const to = [...d.map((x) => x.to), service.desired_replicas];
  const utc = at.map((x) => x.replace(/\.\d+/, ""));
  chart(el, `Replicas of service ${service.name} over its scale decisions; ${service.desired_replicas} desired now, ${service.ready_replicas} ready`, [
    { x: localAxis(at), y: to, name: "replicas (desired)", type: "scatter", mode: "lines+markers", line: { shape: "hv" },
      customdata: utc, hovertemplate: "%{y} replicas from %{customdata} UTC<extra></extra>" },
    { x: localAxis([at[at.length - 1]]), y: [service.ready_replicas], name: "ready now", type: "scatter", mode: "markers",
      marker: { size: 10, symbol: "diamond" }, hovertemplate: "%{y} replicas ready<extra></extra>" },
  ], {
    yaxis: { title: { text: "replicas" }, rangemode: "tozero", dtick: 1 },
    shapes: [service.spec.min_replicas, service.spec.max_replicas].map((y) => ({
      type: "line", xref: "paper", x0: 0, x1: 1, y0: y, y1: y, line: { dash: "dot", color: "#888", width: 1 },
    })),
  });
}

/** Requests/s (left axis) and p99 latencies (right axis, s) of the samples, with the objective's bounds as lines. */
function drawLatency(el, service, samples) {
  if (!samples.length) return;
  const x = localAxis(samples.map((s) => s.at));
  const obj = service.spec.objective;
  const ends = [x[0], x[x.length - 1]];
  const traces = [
    { x, y: samples.map((s) => s.rps), name: "requests/s", type: "scatter", mode: "lines+markers", marker: { size: 4 },
      hovertemplate: "%{y:.2f} requests/s<extra></extra>" },
    { x, y: samples.map((s) => s.e2e), name: "end-to-end p99 (s)", type: "scatter", mode: "lines+markers", yaxis: "y2",
      marker: { size: 4 }, connectgaps: false, hovertemplate: "%{y:.3f} s<extra>end-to-end p99</extra>" },
    { x, y: samples.map((s) => s.ttft), name: "TTFT p99 (s)", type: "scatter", mode: "lines+markers", yaxis: "y2",
      marker: { size: 4 }, connectgaps: false, hovertemplate: "%{y:.3f} s<extra>TTFT p99</extra>" },
  ];
  if (obj.e2e_s) traces.push({ x: ends, y: [obj.e2e_s, obj.e2e_s], name: `end-to-end objective (${seconds(obj.e2e_s)})`,
    type: "scatter", mode: "lines", yaxis: "y2", line: { dash: "dash", color: "#c0392b" }, hoverinfo: "skip" });
  if (obj.ttft_s) traces.push({ x: ends, y: [obj.ttft_s, obj.ttft_s], name: `TTFT objective (${seconds(obj.ttft_s)})`,
    type: "scatter", mode: "lines", yaxis: "y2", line: { dash: "dash", color: "#e67e22" }, hoverinfo: "skip" });
  const last = samples[samples.length - 1];
  chart(el, `Service ${service.name}: requests/s and p99 latency since you opened this page; now ${num(last.rps, "requests/s")}, end-to-end p99 ${seconds(last.e2e)}`,
    traces, {
      yaxis: { title: { text: "requests/s" }, rangemode: "tozero" },
      yaxis2: { title: { text: "p99 latency (s)" }, overlaying: "y", side: "right", rangemode: "tozero" },
      margin: { l: 56, r: 56, t: 28, b: 40 },
    });
}

function detail(ctx, service, samples, parts, refresh) {
  const t = service.traffic;
  const obj = service.spec.objective;
  const actions = [];
  if (ctx.canAct(service.team) && service.state === "active") {
    actions.push(h("button", {
      class: "danger", type: "button",
      onclick: async (event) => {
        if (!window.confirm(`Delete service ${service.name}? Its ready replicas drain, then it is gone.`)) return;
        event.target.disabled = true;
        try {
          await ctx.api(`/services/${encodeURIComponent(service.name)}`, { method: "DELETE" });
          ctx.report("");
          await refresh();
        } catch (err) {
          ctx.report(message(err));
          event.target.disabled = false;
        }
      },
    }, `Delete ${service.name}`));
  }
  fill(parts.head,
    h("h2", {}, `Service ${service.name} `, serviceState(service)),
    h("div", { class: "toolbar" },
      h("span", { class: "muted" }, `team ${service.team} · queue ${service.queue} · ${service.spec.min_replicas} to ${num(service.spec.max_replicas, "replicas")} of ${num(service.spec.gpus_per_replica, "GPUs")} · autoscaled by ${service.spec.autoscaling.policy} · requests to ${service.url}`),
      actions),
    service.problem ? h("p", { role: "note" }, badge("problem", "bad"), " ", service.problem) : null,
    h("div", { class: "kpis", "aria-label": `Figures of service ${service.name}` },
      kpi("Ready / desired", `${num(service.ready_replicas, "replicas")} ready of ${service.desired_replicas} desired`),
      kpi("Requests/s", num(t?.requests_per_s, "requests/s")),
      kpi("In flight", num(t?.in_flight, "requests")),
      kpi("TTFT p99", against(t?.ttft_p99_s, obj.ttft_s)),
      kpi("End-to-end p99", against(t?.e2e_p99_s, obj.e2e_s)),
      kpi("Completed / failed", `${num(t?.completed)} / ${num(t?.failed, "requests")}`)),
    h("p", { class: "muted" }, t
      ? `Traffic over the autoscaler's last ${num(t.window_s, "s")}, through every server's proxy; latencies to within 10 %. `
        + (t.decision ? `Latest decision: ${num(t.decision.replicas, "replicas")} (wanted ${num(t.decision.wanted)}): ${t.decision.reason}` : "")
      : "No traffic measured yet (the scheduler measures a first interval within its first tick)."));
  fill(parts.replicas, table([
    { label: "Replica", value: (r) => r.number, num: true },
    { label: "State", value: (r) => r.state, render: (r) => status(r.state) },
    { label: "Job", value: (r) => r.job },
    { label: "Job status", value: (r) => r.job_status, render: (r) => status(r.job_status) },
    { label: "Cluster", value: (r) => r.cluster ?? "", render: (r) => r.cluster ?? h("span", { class: "muted" }, "waiting for GPUs") },
    { label: "Port", value: (r) => r.port, num: true },
    { label: "Since", value: (r) => r.since, render: (r) => when(r.since) },
  ], service.replicas, { empty: "No replica now." }));
  fill(parts.events, table([
    { label: "At", value: (d) => d.at, render: (d) => when(d.at) },
    { label: "From", value: (d) => d.from, render: (d) => num(d.from, "replicas"), num: true },
    { label: "To", value: (d) => d.to, render: (d) => num(d.to, "replicas"), num: true },
    { label: "Wanted", value: (d) => d.wanted, render: (d) => num(d.wanted, "replicas"), num: true },
    { label: "Reason", value: (d) => d.reason },
  ], [...service.decisions].reverse(), { caption: "The last 20 changes of the replica count, newest first.", empty: "No scale decision yet." }));
  drawReplicas(parts.replicasChart, service);
  drawLatency(parts.latencyChart, service, samples);
  fill(parts.samplesNote, samples.length
    ? `${samples.length} samples since you opened this page (every ${DETAIL_MS / 1000} s; the last 30 minutes are kept).`
    : "Samples appear once the scheduler has measured the service's traffic.");
}

export default async function render(ctx) {
  if (ctx.me.role === "provider") {
    fill(ctx.main, h("h1", {}, "Services"), h("p", { class: "muted" }, "Services are not shown to provider tokens."));
    return;
  }
  const name = selectedName();
  const list = h("div");
  const parts = {
    head: h("div"), replicas: h("div"), events: h("div"), samplesNote: h("p", { class: "muted" }),
    replicasChart: h("div", { id: "chart-services-replicas" }), latencyChart: h("div", { id: "chart-services-latency" }),
  };
  const selected = name
    ? h("div", {},
      parts.head,
      h("div", { class: "grid" },
        card("Replicas over time (from its scale decisions; dotted: min and max)", parts.replicasChart),
        card("Requests/s and p99 latency since you opened this page", parts.latencyChart, parts.samplesNote)),
      card("Replicas", parts.replicas),
      card("Scale events", parts.events))
    : h("p", { class: "muted" }, "Choose a service to see its replicas, its latency live and its scale events.");
  fill(ctx.main, h("h1", {}, "Services"), card("Services", list), selected);

  const samples = [];
  const refresh = async () => {
    let services;
    try {
      services = await ctx.api("/services");
    } catch (err) {
      if (err instanceof ApiError && err.status === 403) {
        fill(list, h("p", { class: "muted" }, "Your token may not list services."));
        return;
      }
      throw err;
    }
    fill(list, listTable(services));
    if (!name) return;
    if (!services.some((s) => s.name === name)) {
      fill(parts.head, h("h2", {}, `Service ${name}`),
        h("p", { class: "muted" }, `No service '${name}' is visible to you: it was deleted, or it belongs to another team.`));
      return;
    }
    const service = await ctx.api(`/services/${encodeURIComponent(name)}`);
    const t = service.traffic;
    if (t) {
      const at = (t.decision && t.decision.at) || new Date().toISOString();
      if (!samples.length || samples[samples.length - 1].at !== at) {
        samples.push({ at, rps: t.requests_per_s, inflight: t.in_flight, e2e: t.e2e_p99_s, ttft: t.ttft_p99_s });
      }
      const oldest = Date.now() - KEEP_MS;
      while (samples.length && parseUtc(samples[0].at).getTime() < oldest) samples.shift();
    }
    if (ctx.stillShown()) detail(ctx, service, samples, parts, refresh);
  };
  await ctx.poll(refresh, name ? DETAIL_MS : LIST_MS);
}
