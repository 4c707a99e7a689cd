// Queues: per team and queue, the jobs waiting and running, the GPUs held against each quota (nominal quota and
// borrowing limit, per GPU model), what each queue borrows, and every pending job with the reason it waits.
import { card, chart, fill, h, kpi, message, num, status, table, when } from "../lib.js";

const SHOWN = 100; // pending jobs listed (the oldest: the head of the queues); counts cover them all
const CHECK_STYLE = "flex-direction: row; align-items: center; gap: 0.4rem"; // a checkbox beside its label

/** What each wait reason means (the engine's rules: docs/reference/scheduling.md, "Why a job waits"). */
const WAITS = {
  quota: "its queue's quota plus what its cohort lets it borrow cannot admit it now (other jobs hold it)",
  capacity: "admitted under quota, but no cluster it may use has enough free GPUs now",
  power: "GPUs are free on a cluster it may use, but the site's power cap forbids running them",
  clusters_down: "every cluster it could use is down",
  offline: "every cluster it could use is outside its online window (not yet online, or its contract ended)",
  order: "jobs ahead of it in policy order come first (the cycle did not reach it, or kept GPUs for one of them)",
  submitted: "not judged yet: the scheduler's next cycle says why it waits",
};

/** A pending job's wait reason and its detail (or "not judged yet"). */
function waitOf(j) {
  if (!j.waiting) return h("span", {}, h("code", {}, "submitted"), h("span", { class: "muted" }, " · not judged yet"));
  return h("span", { title: WAITS[j.waiting.reason] ?? "" }, h("code", {}, j.waiting.reason),
    j.waiting.detail ? h("span", { class: "muted" }, " · ", j.waiting.detail) : null);
}

/** Seconds from `iso` to now, as text with its unit. */
function waited(iso) {
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 120) return num(Math.round(s), "s");
  if (s < 7200) return num(s / 60, "min", 0);
  return num(s / 3600, "h", 1);
}

/** GPUs a queue holds that count against a quota of `model` ("*": every model). */
function heldFor(q, model) {
  if (model === "*" || model === "any") return q.running_gpus;
  return q.held_by_model?.[model] ?? 0;
}

/** One row per queue and quota: GPUs held (placed or running jobs on clusters of that model), quota, limit. */
function quotaRows(queues, teamName) {
  return queues.flatMap((q) => (q.quotas.length ? q.quotas : [{ gpu_model: "any", gpus: null, borrowing_limit_gpus: null }])
    .map((quota) => {
      const held = heldFor(q, quota.gpu_model);
      const limit = quota.borrowing_limit_gpus ?? null;
      return {
        team: q.team, teamName: teamName[q.team] ?? q.team, queue: q.id, model: quota.gpu_model, held,
        nominal: quota.gpus, limit,
        borrowing: held === null || quota.gpus === null ? null : Math.max(0, held - quota.gpus),
        ceiling: quota.gpus === null ? null : limit === null ? null : quota.gpus + limit,
      };
    }));
}

export default async function render(ctx) {
  const kpis = h("div", { class: "kpis", "aria-label": "Queue figures" });
  const quotaChart = h("div", { id: "chart-queues-quota" });
  const logScale = h("input", { type: "checkbox", checked: true });
  const note = h("p", { class: "muted" });
  const queueWrap = h("div");
  const quotaWrap = h("div");
  const reasonWrap = h("div");
  const pendingWrap = h("div");
  const pendingNote = h("p", { class: "muted" });
  fill(ctx.main,
    h("h1", {}, "Queues"),
    kpis,
    card("GPUs held against each quota (per queue and GPU model)",
      h("div", { class: "toolbar" }, h("label", { style: CHECK_STYLE }, logScale, " Logarithmic scale")),
      quotaChart, note),
    card("Queues by team", queueWrap),
    card("Why jobs wait (pending jobs by reason)", reasonWrap),
    card("Quota, held GPUs and borrowing", quotaWrap),
    card("Pending jobs, oldest first", pendingNote, pendingWrap));

  const admin = ctx.isAdmin();
  let last = null;
  let signature = null;

  async function drawChart(rows) {
    const x = rows.map((r) => `${r.queue} · ${r.model}`);
    const log = logScale.checked;
    const top = Math.max(1, ...rows.flatMap((r) => [r.held ?? 0, r.nominal ?? 0, r.ceiling ?? 0]));
    await chart(quotaChart, `GPUs held against nominal quota per queue and GPU model (${rows.length} quotas)`, [
      { x, y: rows.map((r) => r.held), type: "bar", name: "Held (GPUs)", marker: { color: "#2457c5" },
        hovertemplate: "%{y:,} GPUs held<extra>%{x}</extra>" },
      { x, y: rows.map((r) => r.nominal), type: "bar", name: "Nominal quota (GPUs)", marker: { color: "#b9c6e4" },
        hovertemplate: "%{y:,} GPUs nominal quota<extra>%{x}</extra>" },
      { x, y: rows.map((r) => r.ceiling), type: "scatter", mode: "markers", name: "Quota + borrowing limit (GPUs)",
        marker: { symbol: "line-ew-open", size: 34, color: "#9a6400", line: { width: 3, color: "#9a6400" } },
        hovertemplate: "at most %{y:,} GPUs with borrowing<extra>%{x}</extra>" },
    ], {
      barmode: "group", hovermode: "closest",
      yaxis: { title: { text: log ? "GPUs (log scale)" : "GPUs" }, type: log ? "log" : "linear",
        ...(log ? { range: [0, Math.log10(top * 2)] } : { rangemode: "tozero" }) },
    });
  }
  logScale.addEventListener("change", () => { if (last) drawChart(last).catch((err) => ctx.report(message(err))); });

  await ctx.poll(async () => {
    const [queues, teams, pending] = await Promise.all([
      ctx.api("/queues"), ctx.api("/teams"),
      ctx.api("/jobs", { query: { status: "pending", order: "oldest", limit: SHOWN } }),
    ]);
    if (!ctx.stillShown()) return;
    const teamName = Object.fromEntries(teams.map((t) => [t.id, t.name]));
    const sorted = [...queues].sort((a, b) => (a.team + a.id < b.team + b.id ? -1 : 1));
    const rows = quotaRows(sorted, teamName);
    const waiting = pending.items;

    const total = (key) => queues.reduce((n, q) => n + q[key], 0);
    const borrowed = rows.reduce((n, r) => n + (r.borrowing ?? 0), 0);
    fill(kpis,
      kpi("Queues", `${queues.length} of ${teams.length} teams`),
      kpi("Pending jobs", num(total("pending_jobs"))),
      kpi("Placed or running jobs", num(total("running_jobs"))),
      kpi("GPUs held", num(total("running_gpus"), "GPUs")),
      kpi("GPUs borrowed (above nominal quota)", num(borrowed, "GPUs")));

    const shown = JSON.stringify([queues, rows, waiting.map((j) => [j.id, j.waiting]), Math.floor(Date.now() / 60_000)]);
    last = rows;
    // Drawn when the chart library is there: the tables are not held back for it.
    drawChart(rows).catch((err) => ctx.report(message(err)));
    fill(note,
      "Held: GPUs of placed and running jobs, by the GPU model of the cluster each is on. Borrowing: GPUs held above ",
      "the nominal quota, at most the borrowing limit, from what the cohort's other queues leave idle.");
    if (shown === signature) return; // tables unchanged: keep their sort order and focus
    signature = shown;

    fill(queueWrap, table([
      { label: "Team", value: (q) => q.team, render: (q) => h("span", { title: teamName[q.team] ?? "" }, q.team) },
      { label: "Queue", value: (q) => q.id },
      { label: "Cohort", value: (q) => q.cohort ?? "" , render: (q) => q.cohort ?? "—" },
      { label: "Pending jobs", value: (q) => q.pending_jobs, num: true },
      { label: "GPUs asked by pending jobs", value: (q) => q.pending_gpus ?? null, render: (q) => num(q.pending_gpus, "GPUs"), num: true },
      { label: "Placed or running jobs", value: (q) => q.running_jobs, num: true },
      { label: "GPUs held", value: (q) => q.running_gpus, render: (q) => num(q.running_gpus, "GPUs"), num: true },
    ], sorted, { empty: "The fleet defines no queue." }));

    fill(quotaWrap, table([
      { label: "Team", value: (r) => r.team },
      { label: "Queue", value: (r) => r.queue },
      { label: "GPU model", value: (r) => r.model },
      { label: "Held", value: (r) => r.held, render: (r) => num(r.held, "GPUs"), num: true },
      { label: "Nominal quota", value: (r) => r.nominal, render: (r) => num(r.nominal, "GPUs"), num: true },
      { label: "Borrowing limit", value: (r) => r.limit, render: (r) => (r.limit === null ? "no limit" : num(r.limit, "GPUs")), num: true },
      { label: "Borrowing now", value: (r) => r.borrowing, render: (r) => num(r.borrowing, "GPUs"), num: true },
      { label: "Held, % of nominal", value: (r) => (r.held === null || !r.nominal ? null : r.held / r.nominal),
        render: (r) => (r.held === null || !r.nominal ? "—" : num((100 * r.held) / r.nominal, "%", 2)), num: true },
    ], rows, { empty: "No queue has a quota." }));

    const byReason = {}; // from every queue's counts (all pending jobs, every team's), not from the jobs read
    for (const q of queues) {
      for (const [reason, jobs] of Object.entries(q.pending_reasons ?? {})) {
        const entry = (byReason[reason] ||= { reason, jobs: 0, queues: [] });
        entry.jobs += jobs;
        entry.queues.push(`${q.id}: ${num(jobs)}`);
      }
    }
    fill(reasonWrap, table([
      { label: "Reason", value: (r) => r.reason, render: (r) => h("code", {}, r.reason) },
      { label: "What it means", value: (r) => WAITS[r.reason] ?? "" },
      { label: "Jobs", value: (r) => r.jobs, num: true },
      { label: "By queue", value: (r) => r.queues.join(", ") },
    ], Object.values(byReason).sort((a, b) => b.jobs - a.jobs), { empty: "No job is waiting." }));

    const visible = admin ? total("pending_jobs") : queues.filter((q) => q.team === ctx.me.team).reduce((n, q) => n + q.pending_jobs, 0);
    fill(pendingNote,
      waiting.length < visible ? `The oldest ${num(waiting.length)} of ${num(visible, "jobs")} pending` : `${num(waiting.length, "jobs")} pending`,
      admin ? "" : ` in team ${ctx.me.team}'s queues`, ". Why each waits is the engine's judgement at its last cycle.");
    fill(pendingWrap, table([
      { label: "Job", value: (j) => j.id, render: (j) => h("a", { href: `#/jobs/${j.id}` }, j.id) },
      { label: "Name", value: (j) => j.name },
      { label: "Team", value: (j) => j.team },
      { label: "Queue", value: (j) => j.queue },
      { label: "GPUs", value: (j) => j.gpus, render: (j) => num(j.gpus, "GPUs"), num: true },
      { label: "GPU models", value: (j) => (j.gpu_models.length ? j.gpu_models.join(", ") : "any") },
      { label: "Priority class", value: (j) => j.priority_class },
      { label: "Status", value: (j) => j.status, render: (j) => status(j.status) },
      { label: "Why it waits", value: (j) => j.waiting?.reason ?? "submitted", render: waitOf },
      { label: "Submitted", value: (j) => j.submitted_at, render: (j) => when(j.submitted_at) },
      { label: "Waiting for", value: (j) => j.submitted_at, render: (j) => waited(j.submitted_at) },
      { label: "Attempt", value: (j) => j.attempt, num: true },
    ], waiting, { empty: "No job is waiting." }));
  });
}
