// Jobs: every job the token may see, filtered by status, team, queue and name, newest first; one job's timeline of
// status changes and its log (followed while it runs); a submit form (members and admins) and Cancel buttons.
import { card, chart, fill, h, kpi, localAxis, message, num, status, table, when } from "../lib.js";

const STATUSES = ["pending", "placed", "running", "succeeded", "failed", "cancelled"];
const ACTIVE = new Set(["pending", "placed", "running"]);
const KINDS = ["batch", "train", "serve"];
const PAGE_ROWS = 100; // rows asked for at first and added by "Show more"
const MAX_PAGE = 500; // the API's largest page
const LOG_KEEP = 400_000; // characters of log text kept on the page (the newest)
const DETAIL_MS = 2000; // how often the selected job, its events and log are read
const CHECK_STYLE = "flex-direction: row; align-items: center; gap: 0.4rem"; // a checkbox beside its label

/** A control with its visible label, linked by id (the label's text alone is the control's accessible name). */
function field(id, text, control) {
  control.id = id;
  return h("div", { class: "field", style: "display: flex; flex-direction: column; gap: 0.15rem" },
    h("label", { for: id }, text), control);
}

/** The job id in the location (#/jobs/j-000123), or null. */
function idFromHash() {
  const found = location.hash.match(/^#\/jobs\/([A-Za-z0-9_-]{1,40})$/);
  return found ? found[1] : null;
}

/** Jobs matching `query`, newest first: up to `want` of them, following the API's cursor. */
async function fetchJobs(ctx, query, want) {
  const items = [];
  let cursor = null;
  do {
    const page = await ctx.api("/jobs", { query: { ...query, limit: Math.min(MAX_PAGE, want - items.length), cursor } });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < want);
  return { items, more: cursor !== null };
}

/** Every event of job `id`, oldest first. */
async function fetchEvents(ctx, id) {
  const items = [];
  let after = null;
  do {
    const page = await ctx.api("/events", { query: { job_id: id, after, limit: 1000 } });
    items.push(...page.items);
    after = page.next_cursor;
  } while (after && items.length < 10_000);
  return items;
}

const reasonOf = (j) => h("span", {}, h("code", {}, j.reason), j.detail ? h("span", { class: "muted" }, " · ", j.detail) : null);
/** A job's reason; for a pending one the engine's wait reason first (why it is not running now), when judged. */
const whyOf = (j) => (j.waiting
  ? h("span", {}, "waits: ", h("code", {}, j.waiting.reason), j.waiting.detail ? h("span", { class: "muted" }, " · ", j.waiting.detail) : null)
  : reasonOf(j));
const models = (list) => (list.length ? list.join(", ") : "any");

/** The names of the GPU models jobs may ask for: those some cluster of the fleet has, and the declared ones. */
function modelNames(fleet) {
  const names = new Set(fleet.clusters.map((c) => c.gpu_model));
  for (const m of fleet.gpu_models || []) names.add(typeof m === "string" ? m : m.name);
  return [...names].sort();
}

/** The submit form: the queues the token may submit to, each queue's priority classes, the fleet's GPU models. */
function submitForm(ctx, fleet, onSubmitted) {
  const queues = fleet.queues.filter((q) => ctx.canAct(q.team));
  if (!queues.length) return h("p", { class: "muted" }, "Your team has no queue to submit to.");
  let key = crypto.randomUUID(); // one key per draft: a double click or a retry sends the same one, so one job
  const name = h("input", { name: "name", maxlength: 200, autocomplete: "off" });
  const queue = h("select", { name: "queue" }, queues.map((q) => h("option", { value: q.id }, `${q.id} (team ${q.team})`)));
  const kind = h("select", { name: "kind" }, KINDS.map((k) => h("option", { value: k }, k)));
  const gpus = h("input", { name: "gpus", type: "number", min: 1, step: 1, value: 1, inputmode: "numeric" });
  const names = modelNames(fleet);
  const gpuModels = h("select", { name: "gpu_models", multiple: true, size: Math.min(5, Math.max(2, names.length)) },
    names.map((m) => h("option", { value: m }, m)));
  const priority = h("select", { name: "priority_class" });
  const fillPriorities = () => {
    const q = queues.find((x) => x.id === queue.value);
    fill(priority, h("option", { value: "" }, `the queue's default (${q.default_priority_class ?? "lowest allowed"})`),
      (q.priority_classes || []).map((p) => h("option", { value: p }, p)));
  };
  fillPriorities();
  queue.addEventListener("change", fillPriorities);
  const command = h("textarea", { name: "command", rows: 5, spellcheck: "false", "aria-describedby": "job-command-help" });
  const duration = h("input", { name: "estimated_duration_s", type: "number", min: 1, step: "any" });
  const preemptible = h("input", { name: "preemptible", type: "checkbox", checked: true });
  const done = h("p", { class: "muted", role: "status", "aria-live": "polite" });
  const button = h("button", { class: "primary", type: "submit" }, "Submit job");
  const form = h("form", { class: "stack", "aria-label": "Submit a job", novalidate: true },
    field("job-name", "Name", name),
    field("job-queue", "Queue", queue),
    field("job-kind", "Kind", kind),
    field("job-gpus", "GPUs", gpus),
    field("job-gpu-models", "GPU models (none selected: any)", gpuModels),
    field("job-priority-class", "Priority class", priority),
    field("job-command", "Command", command),
    h("p", { id: "job-command-help", class: "muted" },
      "One shell command, run with /bin/sh -c as the spec's `command` (examples/jobs/): separate steps with ; or new ",
      "lines. It sees STARGATE_JOB_ID, STARGATE_CLUSTER and CUDA_VISIBLE_DEVICES."),
    field("job-duration", "Estimated duration, s (optional)", duration),
    h("label", { style: CHECK_STYLE }, preemptible, " Preemptible (may be stopped for higher-priority work)"),
    h("div", {}, button),
    done);
  form.addEventListener("input", () => { key = crypto.randomUUID(); });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (button.disabled) return;
    const body = { name: name.value, queue: queue.value, kind: kind.value, preemptible: preemptible.checked };
    if (gpus.value.trim() !== "") body.gpus = Number(gpus.value);
    const chosen = [...gpuModels.selectedOptions].map((o) => o.value);
    if (chosen.length) body.gpu_models = chosen;
    if (priority.value) body.priority_class = priority.value;
    if (command.value.trim() !== "") body.command = command.value;
    if (duration.value.trim() !== "") body.estimated_duration_s = Number(duration.value);
    button.disabled = true;
    fill(done);
    try {
      const job = await ctx.api("/jobs", { method: "POST", body, headers: { "Idempotency-Key": key } });
      key = crypto.randomUUID();
      ctx.report("");
      fill(done, `Submitted ${job.id} (${job.name}) to ${job.queue}: ${job.status}.`);
      await onSubmitted(job);
    } catch (err) {
      if (ctx.stillShown()) ctx.report(message(err));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

export default async function render(ctx) {
  const [fleetOut, teams] = await Promise.all([ctx.api("/fleet"), ctx.api("/teams")]);
  const fleet = fleetOut.fleet;
  const admin = ctx.isAdmin();
  const mayAct = ctx.me.role === "admin" || ctx.me.role === "member";
  const filters = { status: "", team: "", queue: "", name: "" };
  let want = PAGE_ROWS;
  let selected = idFromHash();
  let confirming = null; // the job whose Cancel was clicked once
  let listSignature = null;

  // Filters.
  const visibleQueues = teams.filter((t) => admin || t.id === ctx.me.team).flatMap((t) => t.queues).sort();
  const statusSel = h("select", {}, h("option", { value: "" }, "any"), STATUSES.map((s) => h("option", { value: s }, s)));
  const teamSel = admin
    ? h("select", {}, h("option", { value: "" }, "any"), teams.map((t) => h("option", { value: t.id }, t.id)))
    : null;
  const queueSel = h("select", {}, h("option", { value: "" }, "any"), visibleQueues.map((q) => h("option", { value: q }, q)));
  const search = h("input", { type: "search", placeholder: "part of a name", autocomplete: "off" });
  const toolbar = h("div", { class: "toolbar", role: "search", "aria-label": "Filter jobs" },
    field("jobs-filter-status", "Status", statusSel),
    teamSel ? field("jobs-filter-team", "Team", teamSel) : h("span", { class: "muted" }, `Team ${ctx.me.team ?? "—"} (your token's)`),
    field("jobs-filter-queue", "Queue", queueSel),
    field("jobs-filter-name-contains", "Name contains", search));
  const kpis = h("div", { class: "kpis", "aria-label": "Job figures" });
  const listWrap = h("div");
  const caption = h("p", { class: "muted" });
  const more = h("button", { type: "button", hidden: true }, `Show ${PAGE_ROWS} more`);
  const detail = h("div");
  fill(ctx.main,
    h("h1", {}, "Jobs"),
    kpis,
    mayAct ? h("details", { class: "card" },
      h("summary", {}, h("strong", {}, "Submit a job")),
      submitForm(ctx, fleet, async (job) => { select(job.id); await refreshList(); await refreshDetail(); })) : null,
    card("Jobs, newest first", toolbar, caption, listWrap, more),
    detail);

  // The list.
  async function cancel(job) {
    if (confirming !== job.id) {
      confirming = job.id;
      listSignature = null;
      draw(lastList);
      listWrap.querySelector(`button[data-cancel="${job.id}"]`)?.focus();
      return;
    }
    confirming = null;
    try {
      await ctx.api(`/jobs/${encodeURIComponent(job.id)}/cancel`, { method: "POST" });
      ctx.report("");
    } catch (err) {
      if (ctx.stillShown()) ctx.report(message(err));
    }
    listSignature = null;
    if (ctx.stillShown()) { await refreshList(); await refreshDetail(); }
  }

  const columns = [
    { label: "Job", value: (j) => j.id, render: (j) => h("a", {
      href: `#/jobs/${j.id}`, "aria-current": j.id === selected ? "true" : null,
      onclick: (e) => { e.preventDefault(); select(j.id); refreshDetail().catch((err) => ctx.report(message(err))); },
    }, j.id) },
    { label: "Name", value: (j) => j.name },
    { label: "Status", value: (j) => j.status, render: (j) => status(j.status) },
    { label: "Reason", value: (j) => j.waiting?.reason ?? j.reason, render: whyOf },
    { label: "Team", value: (j) => j.team },
    { label: "Queue", value: (j) => j.queue },
    { label: "GPUs", value: (j) => j.gpus, render: (j) => num(j.gpus, "GPUs"), num: true },
    { label: "GPU models", value: (j) => models(j.gpu_models) },
    { label: "Priority class", value: (j) => j.priority_class },
    { label: "Cluster", value: (j) => j.cluster ?? "" , render: (j) => j.cluster ?? "—" },
    { label: "Submitted", value: (j) => j.submitted_at, render: (j) => when(j.submitted_at) },
    { label: "Started", value: (j) => j.started_at ?? "", render: (j) => when(j.started_at) },
    { label: "Attempt", value: (j) => j.attempt, num: true },
    { label: "Action", value: () => "", render: (j) => (ctx.canAct(j.team) && ACTIVE.has(j.status)
      ? h("button", { type: "button", class: "danger", "data-cancel": j.id, onclick: () => cancel(j),
        "aria-label": confirming === j.id ? `Confirm: cancel job ${j.id}` : `Cancel job ${j.id}` },
      confirming === j.id ? "Confirm cancel" : "Cancel")
      : "") },
  ];

  let lastList = { items: [], more: false, live: { pending: 0, running: 0, gpus: 0 } };
  function draw(list) {
    const needle = filters.name.trim().toLowerCase();
    const rows = needle ? list.items.filter((j) => j.name.toLowerCase().includes(needle)) : list.items;
    const signature = JSON.stringify([rows, selected, confirming, list.live]);
    if (signature === listSignature) return;
    listSignature = signature;
    const counts = Object.fromEntries(STATUSES.map((s) => [s, 0]));
    for (const j of list.items) counts[j.status] += 1;
    const live = list.live; // every job the token may see, from the queues' counts (not only the jobs loaded)
    fill(kpis,
      kpi(ctx.isAdmin() ? "Pending / placed or running (all jobs)" : `Pending / placed or running (team ${ctx.me.team})`,
        `${num(live.pending)} / ${num(live.running)}`),
      kpi("GPUs held by placed or running jobs", num(live.gpus, "GPUs")),
      kpi(`Of the ${num(list.items.length)} jobs loaded: succeeded / failed / cancelled`,
        `${counts.succeeded} / ${counts.failed} / ${counts.cancelled}`));
    fill(caption, `${rows.length} shown of the ${list.items.length} newest jobs matching status, team and queue`,
      list.more ? ` (more exist: "Show ${PAGE_ROWS} more" loads them)` : "",
      needle ? `; the name search looks in those ${list.items.length} only.` : ".");
    fill(listWrap, table(columns, rows, { empty: "No job matches these filters." }));
    more.hidden = !list.more;
  }

  async function refreshList() {
    const query = { status: filters.status, team: filters.team, queue: filters.queue };
    const [list, queues] = await Promise.all([fetchJobs(ctx, query, want), ctx.api("/queues")]);
    if (!ctx.stillShown()) return;
    const mine = queues.filter((q) => ctx.isAdmin() || q.team === ctx.me.team);
    list.live = {
      pending: mine.reduce((n, q) => n + q.pending_jobs, 0),
      running: mine.reduce((n, q) => n + q.running_jobs, 0),
      gpus: mine.reduce((n, q) => n + q.running_gpus, 0),
    };
    lastList = list;
    draw(list);
  }

  const onFilter = () => {
    filters.status = statusSel.value;
    filters.team = teamSel ? teamSel.value : "";
    filters.queue = queueSel.value;
    want = PAGE_ROWS;
    refreshList().catch((err) => ctx.report(message(err)));
  };
  for (const el of [statusSel, teamSel, queueSel]) el?.addEventListener("change", onFilter);
  search.addEventListener("input", () => { filters.name = search.value; listSignature = null; draw(lastList); });
  more.addEventListener("click", () => { want += PAGE_ROWS; refreshList().catch((err) => ctx.report(message(err))); });

  // The selected job: its facts, timeline, events and log.
  let log = null; // {attempt, offset, complete, pre, text}
  let eventsSignature = null;
  const follow = h("input", { type: "checkbox", checked: true });
  const facts = h("div", { class: "kpis", "aria-label": "Selected job" });
  const timeline = h("div", { id: "chart-jobs-timeline" });
  const eventsWrap = h("div");
  const pre = h("pre", { class: "logs", tabindex: 0, "aria-label": "Log output", "aria-live": "off" });
  const logState = h("p", { class: "muted", role: "status" });

  function select(id) {
    if (id === selected && detail.childElementCount) return;
    selected = id;
    if (location.hash !== `#/jobs/${id}`) history.pushState(null, "", `#/jobs/${id}`);
    log = { attempt: null, offset: 0, complete: false };
    eventsSignature = null;
    fill(pre);
    fill(logState);
    fill(facts);
    fill(eventsWrap);
    fill(detail,
      card(`Job ${id}`, facts,
        h("div", { class: "grid" },
          h("div", {}, h("h3", {}, "Status over time"), timeline),
          h("div", {}, h("h3", {}, "Status changes"), eventsWrap)),
        h("h3", {}, "Log of the latest attempt"),
        h("div", { class: "toolbar" }, h("label", { style: CHECK_STYLE }, follow, " Follow the log while the job runs"), logState),
        pre));
    listSignature = null;
    draw(lastList);
  }

  async function refreshDetail() {
    if (!selected) return;
    const id = selected;
    const [job, events] = await Promise.all([ctx.api(`/jobs/${encodeURIComponent(id)}`), fetchEvents(ctx, id)]);
    if (!ctx.stillShown() || id !== selected) return;
    fill(facts,
      kpi("Name", job.name),
      kpi("Status", h("span", {}, status(job.status), " ", reasonOf(job))),
      job.waiting ? kpi("Why it waits (the scheduler's last cycle)", whyOf(job)) : null,
      kpi("GPUs", `${num(job.gpus, "GPUs")} · ${models(job.gpu_models)}`),
      kpi("Queue · priority class", `${job.queue} · ${job.priority_class}`),
      kpi("Cluster", job.cluster ?? "—"),
      kpi("Attempt", num(job.attempt)),
      kpi("Exit code", job.exit_code ?? "—"),
      kpi("Finished", when(job.finished_at)));
    const signature = JSON.stringify([events, job.status]);
    if (signature !== eventsSignature) {
      eventsSignature = signature;
      const stamps = events.map((e) => e.at);
      const ys = events.map((e) => e.to);
      const texts = events.map((e) => `${e.reason}${e.detail ? ": " + e.detail : ""} · by ${e.actor} · ${e.at.replace(/\.\d+/, "")} UTC`);
      if (ACTIVE.has(job.status) && events.length) {
        stamps.push(new Date().toISOString());
        ys.push(job.status);
        texts.push("now");
      }
      chart(timeline, `Status of job ${id} over time: now ${job.status}`, [{
        x: localAxis(stamps), y: ys, type: "scatter", mode: "lines+markers", line: { shape: "hv" }, name: "status",
        customdata: texts, hovertemplate: "%{y}<br>%{customdata}<extra></extra>",
      }], {
        hovermode: "closest", showlegend: false, margin: { l: 80, r: 16, t: 16, b: 40 },
        yaxis: { type: "category", categoryorder: "array", categoryarray: STATUSES, range: [-0.5, STATUSES.length - 0.5] },
        xaxis: { title: { text: "time (your time zone)" } },
      }).catch((err) => ctx.report(message(err)));
      fill(eventsWrap, table([
        { label: "At", value: (e) => e.at, render: (e) => when(e.at) },
        { label: "From", value: (e) => e.from ?? "", render: (e) => (e.from ? status(e.from) : "—") },
        { label: "To", value: (e) => e.to, render: (e) => status(e.to) },
        { label: "Reason", value: (e) => e.reason, render: reasonOf },
        { label: "By", value: (e) => e.actor },
      ], events, { empty: "No status change recorded." }));
    }
    await readLog(job);
  }

  async function readLog(job) {
    if (log.attempt !== null && log.attempt !== job.attempt) {
      pre.append(`\n--- attempt ${job.attempt} ---\n`);
      log.offset = 0;
      log.complete = false;
    }
    log.attempt = job.attempt;
    if (log.complete || (!follow.checked && log.offset > 0)) return;
    for (let pages = 0; pages < 8; pages += 1) { // at most 8 MiB a round
      const answer = await ctx.api(`/jobs/${encodeURIComponent(job.id)}/logs`, { query: { offset: log.offset } });
      if (job.id !== selected) return;
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      if (answer.text) pre.append(answer.text);
      if (pre.textContent.length > LOG_KEEP) pre.textContent = "…" + pre.textContent.slice(-LOG_KEEP);
      if (atBottom) pre.scrollTop = pre.scrollHeight;
      const moved = answer.next_offset !== log.offset;
      log.offset = answer.next_offset;
      log.complete = answer.complete;
      if (answer.complete || !moved) break;
    }
    fill(logState, log.complete
      ? `Complete: ${num(log.offset, "bytes")}.`
      : `${num(log.offset, "bytes")} so far; ${follow.checked ? `read again every ${DETAIL_MS / 1000} s` : "not followed"}.`);
    if (!pre.textContent && log.complete) pre.textContent = "(no output)";
  }

  if (selected) select(selected);
  await ctx.poll(refreshList);
  await ctx.poll(refreshDetail, DETAIL_MS);
}
