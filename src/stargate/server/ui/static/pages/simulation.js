// Simulation: what-if runs on the server (a trace on a fleet under a policy, as `stargate simulate` does): the form
// to run one (a listed or uploaded trace, the fleet in force, an example or an uploaded fleet, the policy and the
// options the API takes), its progress, the runs, a run's figures and chart, and two runs compared side by side.
// Admins and members run and cancel; viewers see the runs only.
import { badge, card, chart, fill, h, kpi, labelled, message, num, status, table, usd, when } from "../lib.js";

const UPLOAD = "\u0000upload"; // the picker value meaning "an uploaded file" (never a listed name)
const FINAL = ["succeeded", "failed", "cancelled"];
const ESTIMATES = ["learned", "trace", "actual"]; // SimulationIn.estimates (GET /simulations/traces does not list them)
const PROGRESS_MS = 500;

/** The figures shown and compared: key of the result, label, unit, and how to show the API's value. */
const FIGURES = [
  ["jobs_finished", "Jobs finished", "jobs"],
  ["jobs_rejected", "Jobs rejected", "jobs"],
  ["jobs_pending_at_end", "Jobs pending at the end", "jobs"],
  ["avg_jct_s", "Mean JCT", "s"],
  ["p50_jct_s", "P50 JCT", "s"],
  ["p95_jct_s", "P95 JCT", "s"],
  ["p99_jct_s", "P99 JCT", "s"],
  ["avg_wait_s", "Mean wait", "s"],
  ["p99_wait_s", "P99 wait", "s"],
  ["max_wait_s", "Longest wait", "s"],
  ["makespan_s", "Makespan", "s"],
  ["gpu_utilization", "GPU utilisation", "%"],
  ["gpu_hours", "GPU-hours used", "GPU-hours"],
  ["cloud_gpu_hours", "Cloud GPU-hours", "GPU-hours"],
  ["fragmented_gpu_hours", "Fragmented GPU-hours", "GPU-hours"],
  ["cost_usd", "Cost", "USD"],
  ["preemptions", "Preemptions", "preemptions"],
  ["restart_lost_gpu_hours", "GPU-hours lost to restarts", "GPU-hours"],
  ["wall_s", "Wall time", "s"],
];

/** A figure's value in its shown unit (utilisation 0–1 shown as %), or null. */
function value(result, key) {
  const v = result?.[key];
  if (v === null || v === undefined) return null;
  return key === "gpu_utilization" ? v * 100 : v;
}

function show(v, unit) {
  if (v === null || v === undefined) return "n/a";
  return unit === "USD" ? usd(v) : num(v, unit);
}

const traceName = (run) => run.request?.trace?.name ?? "—";
const fleetName = (run) => {
  const f = run.request?.fleet ?? {};
  const how = f.current ? "in force" : f.example ? f.example : f.uploaded ? "uploaded" : "";
  return `${f.name ?? "—"}${how ? ` (${how})` : ""}`;
};
const runLabel = (run) => `${run.id}${run.name ? ` · ${run.name}` : ""} · ${run.request?.policy ?? "fleet's policy"} · ${traceName(run)}`;

function progressBar(run) {
  return h("span", {},
    h("progress", { max: 1, value: run.progress, "aria-label": `Progress of simulation ${run.id}` }),
    ` ${num(run.progress * 100, "%", 0)} `, status(run.status));
}

function drawResult(el, run) {
  const r = run.result;
  const keys = ["avg_jct_s", "p50_jct_s", "p95_jct_s", "p99_jct_s", "avg_wait_s", "p99_wait_s", "max_wait_s"];
  const labels = keys.map((k) => FIGURES.find((f) => f[0] === k)[1]);
  chart(el, `Job completion and wait times of simulation ${run.id}, seconds: mean JCT ${show(r.avg_jct_s, "s")}, ` +
    `P99 JCT ${show(r.p99_jct_s, "s")}`, [{
    type: "bar", x: labels, y: keys.map((k) => r[k]), name: run.id, marker: { color: "#2457c5" },
    hovertemplate: "%{x}: %{y:,.0f} s<extra></extra>",
  }], { yaxis: { title: { text: "s" }, rangemode: "tozero" }, hovermode: "closest", showlegend: false });
}

function resultView(run, kpis, chartEl, about) {
  const r = run.result;
  fill(about, h("p", { class: "muted" },
    `Simulation ${run.id}${run.name ? ` (${run.name})` : ""}: trace ${traceName(run)}, fleet ${fleetName(run)}, policy ${r.policy}, `,
    `seed ${r.seed}, estimates ${r.estimates}; asked by ${run.created_by} `, when(run.created_at), "."));
  fill(kpis,
    kpi("Jobs finished", `${num(r.jobs_finished, "jobs")} of ${num(r.jobs_total, "jobs")}`),
    kpi("Jobs rejected / pending", `${num(r.jobs_rejected)} / ${num(r.jobs_pending_at_end)} jobs`),
    kpi("Mean JCT", show(r.avg_jct_s, "s")),
    kpi("P99 JCT", show(r.p99_jct_s, "s")),
    kpi("Mean wait", show(r.avg_wait_s, "s")),
    kpi("GPU utilisation", show(value(r, "gpu_utilization"), "%")),
    kpi("GPU-hours used", show(r.gpu_hours, "GPU-hours")),
    kpi("Cost", show(r.cost_usd, "USD")),
    kpi("Makespan", show(r.makespan_s, "s")),
    kpi("Preemptions", show(r.preemptions, "preemptions")),
    kpi("Wall time", show(r.wall_s, "s")));
  drawResult(chartEl, run);
}

function compareView(a, b, tableEl, chartEl) {
  const rows = FIGURES.map(([key, label, unit]) => {
    const x = value(a.result, key);
    const y = value(b.result, key);
    const both = x !== null && y !== null;
    return { key, label, unit, a: x, b: y, diff: both ? y - x : null, ratio: both && x !== 0 ? y / x : null };
  });
  fill(tableEl, table([
    { label: "Figure", value: (r) => r.label },
    { label: `A: ${a.id}`, value: (r) => r.a, render: (r) => show(r.a, r.unit), num: true },
    { label: `B: ${b.id}`, value: (r) => r.b, render: (r) => show(r.b, r.unit), num: true },
    { label: "B − A", value: (r) => r.diff, render: (r) => show(r.diff, r.unit), num: true },
    { label: "B ÷ A", value: (r) => r.ratio, render: (r) => (r.ratio === null ? "n/a" : `×${num(r.ratio, "", 3)}`), num: true },
  ], rows, { caption: `A: ${runLabel(a)}; B: ${runLabel(b)}` }));
  const shown = rows.filter((r) => r.a !== null && r.b !== null && (r.a !== 0 || r.b !== 0));
  const share = (v, r) => (100 * v) / Math.max(Math.abs(r.a), Math.abs(r.b));
  const trace = (which, run, colour) => ({
    type: "bar", name: `${which}: ${run.id} (${run.result.policy})`, x: shown.map((r) => r.label),
    y: shown.map((r) => share(r[which.toLowerCase()], r)), marker: { color: colour },
    customdata: shown.map((r) => show(r[which.toLowerCase()], r.unit)),
    hovertemplate: "%{x}: %{customdata} (%{y:.0f} % of the larger)<extra>%{fullData.name}</extra>",
  });
  chart(chartEl, `Simulations ${a.id} and ${b.id} side by side: each figure as a percentage of the larger of the two`,
    [trace("A", a, "#2457c5"), trace("B", b, "#f39c12")],
    { barmode: "group", hovermode: "closest", yaxis: { title: { text: "% of the larger of the two runs" }, rangemode: "tozero" } });
}

/** The form to run a simulation (admins and members). `started(run)` is called with the queued run. */
function runForm(ctx, pick, started) {
  const options = (pairs, selected) => pairs.map(([v, text]) => h("option", { value: v, selected: v === selected }, text));
  const trace = h("select", { "aria-label": "Trace" }, options([...pick.traces.map((t) => [t.name, `${t.name} (${t.format}, ${num(t.bytes / 1024, "KiB", 1)})`]), [UPLOAD, "Upload a trace file…"]]));
  const traceFile = h("input", { type: "file", accept: ".csv,.jsonl,.txt" });
  const traceFormat = h("select", { "aria-label": "Trace format" }, options(pick.formats.map((f) => [f, f]), "native"));
  const traceUpload = h("div", { class: "toolbar" }, labelled("Trace file (sent as text)", traceFile), labelled("Trace format", traceFormat));
  const fleet = h("select", { "aria-label": "Fleet" }, options([...pick.fleets.map((f) => [f, f === "current" ? "the fleet in force (current)" : f]), [UPLOAD, "Upload a fleet YAML…"]], "current"));
  const fleetFile = h("input", { type: "file", accept: ".yaml,.yml" });
  const fleetUpload = labelled("Fleet file (YAML, sent as text)", fleetFile);
  const policy = h("select", { "aria-label": "Policy" }, options([["", "the fleet's policy"], ...pick.policies.map((p) => [p, p])], ""));
  const name = h("input", { type: "text", maxlength: 200 });
  const seed = h("input", { type: "number", min: 0, step: 1, value: 0 });
  const scale = h("input", { type: "number", min: 0.001, max: 1000, step: "any", value: 1 });
  const until = h("input", { type: "number", min: 0, step: "any", placeholder: "to the end" });
  const maxJobs = h("input", { type: "number", min: 1, max: pick.limits.max_jobs, step: 1, placeholder: "all" });
  const estimates = h("select", { "aria-label": "Run-time estimates" }, options(ESTIMATES.map((e) => [e, e]), "learned"));
  const procurement = h("input", { type: "checkbox", checked: true });
  const rofr = h("input", { type: "checkbox", checked: true });
  const submit = h("button", { class: "primary", type: "submit" }, "Run simulation");
  const sync = () => { traceUpload.hidden = trace.value !== UPLOAD; fleetUpload.hidden = fleet.value !== UPLOAD; };
  trace.addEventListener("change", sync);
  fleet.addEventListener("change", sync);
  sync();
  const form = h("form", { class: "stack", "aria-label": "Run a simulation" },
    labelled("Trace", trace), traceUpload,
    labelled("Fleet", fleet), fleetUpload,
    h("div", { class: "toolbar" }, labelled("Policy", policy), labelled("Run-time estimates", estimates), labelled("Name (optional)", name)),
    h("div", { class: "toolbar" },
      labelled("Seed", seed), labelled("Arrival-rate multiplier (×)", scale), labelled("Stop at trace time (s)", until),
      labelled(`Replay only the first N jobs (at most ${num(pick.limits.max_jobs, "jobs")})`, maxJobs)),
    h("div", { class: "toolbar" }, h("label", {}, procurement, "Run the fleet's procurement"), h("label", {}, rofr, "Honour rights of first refusal")),
    h("p", { class: "muted" }, `One simulation runs at a time on this server (at most ${pick.limits.max_waiting} wait behind it), each for at most ${num(pick.limits.max_wall_s, "s")} of wall time.`),
    h("div", {}, submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { seed: Number(seed.value || 0), scale_arrivals: Number(scale.value || 1), estimates: estimates.value, procurement: procurement.checked, rofr: rofr.checked };
    if (name.value.trim()) body.name = name.value.trim();
    if (policy.value) body.policy = policy.value;
    if (until.value !== "") body.until_s = Number(until.value);
    if (maxJobs.value !== "") body.max_jobs = Number(maxJobs.value);
    try {
      if (trace.value === UPLOAD) {
        if (!traceFile.files[0]) throw new Error("Trace file: found no file, expected a trace file to upload");
        body.trace_text = await traceFile.files[0].text();
        body.trace_format = traceFormat.value;
      } else {
        body.trace = trace.value;
      }
      if (fleet.value === UPLOAD) {
        if (!fleetFile.files[0]) throw new Error("Fleet file: found no file, expected a fleet YAML to upload");
        body.fleet_yaml = await fleetFile.files[0].text();
      } else {
        body.fleet = fleet.value;
      }
      submit.disabled = true;
      const run = await ctx.api("/simulations", { method: "POST", body });
      ctx.report("");
      started(run);
    } catch (err) {
      ctx.report(message(err));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

export default async function render(ctx) {
  const mayRun = ctx.me.role === "admin" || ctx.me.role === "member";
  const pick = await ctx.api("/simulations/traces");
  const watching = h("div", { "aria-live": "polite" });
  const runsEl = h("div");
  const kpis = h("div", { class: "kpis", "aria-label": "Simulation figures" });
  const about = h("div");
  const resultChart = h("div", { id: "chart-simulation-result" });
  const resultCard = card("Result", about, kpis, h("h3", {}, "Job completion and wait times (s)"), resultChart);
  resultCard.hidden = true;
  const pickA = h("select", { id: "sim-compare-a", "aria-label": "Run A" });
  const pickB = h("select", { id: "sim-compare-b", "aria-label": "Run B" });
  const compareTable = h("div");
  const compareChart = h("div", { id: "chart-simulation-compare" });
  const compareBody = h("div", { hidden: true }, compareTable, h("h3", {}, "Each figure as a share of the larger of the two runs (%)"), compareChart);
  const compareNote = h("p", { class: "muted" }, "Two finished runs are needed to compare.");

  const full = new Map(); // id → the succeeded simulation with its result (a finished run never changes)
  const load = async (id) => {
    if (!full.has(id)) {
      const run = await ctx.api(`/simulations/${encodeURIComponent(id)}`);
      if (run.status !== "succeeded") return run;
      full.set(id, run);
    }
    return full.get(id);
  };
  let shownId = null;
  const showRun = async (id) => {
    const run = await load(id);
    if (!ctx.stillShown() || !run.result) return;
    shownId = id;
    resultCard.hidden = false;
    resultView(run, kpis, resultChart, about);
  };
  const compare = async () => {
    if (!pickA.value || !pickB.value) return;
    const [a, b] = await Promise.all([load(pickA.value), load(pickB.value)]);
    if (!ctx.stillShown()) return;
    compareBody.hidden = false;
    compareView(a, b, compareTable, compareChart);
  };
  const guarded = (fn) => async () => { try { await fn(); } catch (err) { ctx.report(message(err)); } };
  pickA.addEventListener("change", guarded(compare));
  pickB.addEventListener("change", guarded(compare));

  const cancel = async (id) => {
    try {
      await ctx.api(`/simulations/${encodeURIComponent(id)}/cancel`, { method: "POST" });
      ctx.report("");
      await refresh();
    } catch (err) {
      ctx.report(message(err));
    }
  };

  let succeededIds = "";
  const refresh = async () => {
    const runs = await ctx.api("/simulations", { query: { limit: 100 } });
    if (!ctx.stillShown()) return;
    fill(runsEl, table([
      { label: "Run", value: (r) => r.id },
      { label: "Name", value: (r) => r.name ?? "" },
      { label: "Status", value: (r) => r.status, render: (r) => (FINAL.includes(r.status) ? status(r.status) : progressBar(r)) },
      { label: "Policy", value: (r) => r.figures?.policy ?? r.request?.policy ?? "", render: (r) => r.figures?.policy ?? r.request?.policy ?? "the fleet's" },
      { label: "Trace", value: traceName },
      { label: "Fleet", value: fleetName },
      { label: "Jobs", value: (r) => r.request?.jobs ?? 0, render: (r) => num(r.request?.jobs, "jobs"), num: true },
      { label: "Mean JCT", value: (r) => r.figures?.avg_jct_s ?? null, render: (r) => (r.figures ? show(r.figures.avg_jct_s, "s") : "—"), num: true },
      { label: "Cost", value: (r) => r.figures?.cost_usd ?? null, render: (r) => (r.figures ? show(r.figures.cost_usd, "USD") : "—"), num: true },
      { label: "Asked", value: (r) => r.created_at, render: (r) => [when(r.created_at), ` by ${r.created_by}`] },
      { label: "", value: () => "", render: (r) => [
        r.status === "succeeded" ? h("button", { type: "button", "aria-label": `Show ${r.id}`, onclick: guarded(() => showRun(r.id)) }, "Show") : null,
        r.status === "failed" ? h("span", { class: "muted" }, r.error) : null,
        mayRun && !FINAL.includes(r.status) ? h("button", { type: "button", class: "danger", "aria-label": `Cancel ${r.id}`, onclick: () => cancel(r.id) }, "Cancel") : null,
      ] },
    ], runs, { empty: "No simulation has run on this server yet." }));
    const done = runs.filter((r) => r.status === "succeeded");
    const ids = done.map((r) => r.id).join(",");
    if (ids !== succeededIds) {
      succeededIds = ids;
      const keepA = pickA.value || done[1]?.id || done[0]?.id;
      const keepB = pickB.value || done[0]?.id;
      for (const [sel, keep] of [[pickA, keepA], [pickB, keepB]]) {
        fill(sel, done.map((r) => h("option", { value: r.id, selected: r.id === keep }, runLabel(r))));
      }
      compareNote.hidden = done.length >= 2;
      if (done.length >= 2) await compare();
      if (!shownId && done[0]) await showRun(done[0].id);
    }
  };

  /** Follow a run just asked for: its progress bar every half second until it ends, then its result. */
  const follow = async (run) => {
    while (ctx.stillShown()) {
      fill(watching, h("p", {}, `Simulation ${run.id}${run.name ? ` (${run.name})` : ""}: `, progressBar(run),
        mayRun && !FINAL.includes(run.status) ? [" ", h("button", { type: "button", class: "danger", onclick: () => cancel(run.id) }, "Cancel")] : null,
        run.status === "failed" ? h("span", { class: "muted" }, ` ${run.error}`) : null));
      if (FINAL.includes(run.status)) break;
      await new Promise((resolve) => setTimeout(resolve, PROGRESS_MS));
      if (!ctx.stillShown()) return;
      try {
        run = await ctx.api(`/simulations/${encodeURIComponent(run.id)}`);
      } catch (err) {
        ctx.report(message(err));
      }
    }
    if (run.status === "succeeded") {
      full.set(run.id, run);
      await refresh();
      await showRun(run.id);
    } else {
      await refresh();
    }
  };

  fill(ctx.main,
    h("h1", {}, "Simulation"),
    mayRun
      ? card("Run a simulation", runForm(ctx, pick, (run) => { follow(run).catch((err) => ctx.report(message(err))); }), watching)
      : h("p", {}, badge("read only"), " Running a simulation needs the admin or member role; the runs are shown below."),
    resultCard,
    card("Compare two runs", h("div", { class: "toolbar" }, labelled("Run A", pickA), labelled("Run B", pickB)), compareNote, compareBody),
    card("Runs (newest first)", runsEl));
  await ctx.poll(refresh);
}
