// Fleet: providers → sites → buildings → clusters, GPUs in use over the last day, the energised power of the
// buildout, each cluster's status and the outages.
import { card, chart, day, fill, h, kpi, localAxis, num, status, table, when } from "../lib.js";

/** The IT power energised by each date of the buildout, per site: a step series from the buildings' dates. */
function buildout(fleet) {
  const steps = fleet.buildings
    .map((b) => ({ site: b.site, mw: b.it_power_mw ?? 0, on: b.actual_energization || b.planned_energization, actual: !!b.actual_energization }))
    .filter((b) => b.on)
    .sort((a, b) => (a.on < b.on ? -1 : 1));
  const bySite = {};
  for (const s of steps) {
    const series = (bySite[s.site] ||= { x: [], y: [], total: 0 });
    series.total += s.mw;
    series.x.push(s.on);
    series.y.push(series.total);
  }
  return bySite;
}

/** IT power energised on `today`, MW: a building counts from its actual energisation date, else its planned one. */
function energisedNow(fleet, today) {
  return fleet.buildings
    .filter((b) => (b.actual_energization || b.planned_energization) <= today)
    .reduce((sum, b) => sum + (b.it_power_mw ?? 0), 0);
}

function tree(fleet, healthByCluster, inUse) {
  const sites = (provider) => fleet.sites.filter((s) => s.provider === provider.id);
  const clusters = (site) => fleet.clusters.filter((c) => c.site === site.id);
  return fleet.providers.map((p) => {
    const providerClusters = sites(p).flatMap(clusters);
    const gpus = providerClusters.reduce((n, c) => n + c.nodes * c.gpus_per_node, 0);
    return h("details", { class: "card", open: true },
      h("summary", {}, h("strong", {}, p.name), ` · ${p.kind} · ${num(sites(p).length, "sites")} · ${num(gpus, "GPUs")}`),
      sites(p).map((s) => {
        const buildings = fleet.buildings.filter((b) => b.site === s.id);
        return h("div", { class: "site" },
          h("h3", {}, `${s.id} · ${s.region}`, s.power_mw ? ` · ${num(s.power_mw, "MW")} site power` : "",
            buildings.length ? ` · ${num(buildings.length, "buildings")}` : ""),
          table([
            { label: "Cluster", value: (c) => c.id },
            { label: "Building", value: (c) => c.building ?? "" },
            { label: "GPU model", value: (c) => c.gpu_model },
            { label: "GPUs", value: (c) => c.nodes * c.gpus_per_node, render: (c) => num(c.nodes * c.gpus_per_node, "GPUs"), num: true },
            { label: "In use", value: (c) => inUse[c.id] ?? 0, render: (c) => num(inUse[c.id] ?? 0, "GPUs"), num: true },
            { label: "Status", value: (c) => healthByCluster[c.id]?.status ?? c.status, render: (c) => status(healthByCluster[c.id]?.status ?? c.status) },
            { label: "Executor", value: (c) => healthByCluster[c.id]?.executor ?? c.executor ?? p.executor ?? "" },
            { label: "USD per GPU-hour", value: (c) => Number(c.price_per_gpu_hour_usd ?? 0), render: (c) => num(Number(c.price_per_gpu_hour_usd ?? 0), "USD", 4), num: true },
            { label: "Online", value: (c) => c.online_from ?? "", render: (c) => (c.online_from ? day(c.online_from) : "always") },
          ], clusters(s), { empty: "No clusters at this site yet." }));
      }));
  });
}

export default async function render(ctx) {
  const kpis = h("div", { class: "kpis", "aria-label": "Fleet figures" });
  const usageChart = h("div", { id: "chart-fleet-usage" });
  const powerChart = h("div", { id: "chart-fleet-power" });
  const outages = h("div");
  const providers = h("div");
  fill(ctx.main,
    h("h1", {}, "Fleet"),
    kpis,
    h("div", { class: "grid" },
      card("GPUs in use, last 24 hours (by provider)", usageChart),
      card("Energised IT power by site (MW, buildout)", powerChart)),
    card("Cluster status and outages", outages),
    h("h2", {}, "Providers, sites, buildings, clusters"),
    providers);

  let drawnVersion = null;
  await ctx.poll(async () => {
    const [fleetOut, health, events, usage] = await Promise.all([
      ctx.api("/fleet"),
      ctx.api("/fleet/health"),
      ctx.api("/fleet/events", { query: { limit: 50 } }),
      ctx.api("/fleet/usage", { query: { points: 144 } }),
    ]);
    const fleet = fleetOut.fleet;
    const healthBy = Object.fromEntries(health.clusters.map((c) => [c.cluster, c]));
    const last = (series) => series.filter((v) => v !== null).pop() ?? 0; // null: instants after now
    const inUse = Object.fromEntries(Object.entries(usage.gpus_in_use).map(([c, s]) => [c, last(s)]));
    const total = fleet.clusters.reduce((n, c) => n + c.nodes * c.gpus_per_node, 0);
    const used = Object.values(inUse).reduce((a, b) => a + b, 0);
    const counts = { up: 0, degraded: 0, down: 0 };
    for (const c of health.clusters) counts[c.status] = (counts[c.status] ?? 0) + 1;
    const today = new Date().toISOString().slice(0, 10);
    fill(kpis,
      kpi("GPUs", num(total, "GPUs")),
      kpi("In use now", `${num(used, "GPUs")} (${num(total ? (100 * used) / total : 0, "%", 1)})`),
      kpi("Clusters up / degraded / down", `${counts.up} / ${counts.degraded} / ${counts.down}`),
      kpi("Energised IT power", num(energisedNow(fleet, today), "MW", 1)),
      kpi("Fleet version", h("span", { title: fleetOut.version }, fleetOut.version.slice(0, 12))));

    // GPUs in use by provider over the window.
    const providerOf = Object.fromEntries(fleet.clusters.map((c) => [c.id, fleet.sites.find((s) => s.id === c.site)?.provider]));
    const byProvider = {};
    for (const [cluster, series] of Object.entries(usage.gpus_in_use)) {
      const p = providerOf[cluster] ?? "other";
      byProvider[p] = byProvider[p] ? byProvider[p].map((v, i) => (v === null ? null : v + (series[i] ?? 0))) : [...series];
    }
    const x = localAxis(usage.at);
    const utc = usage.at.map((t) => t.replace(/\.\d+/, ""));
    chart(usageChart, `GPUs in use over the last 24 hours by provider; now ${used} GPUs in use`,
      Object.entries(byProvider).map(([p, y]) => ({
        x, y, name: p, type: "scatter", mode: "lines", stackgroup: "one", customdata: utc,
        hovertemplate: "%{y:,} GPUs<br>%{customdata} UTC<extra>%{fullData.name}</extra>",
      })),
      { yaxis: { title: { text: "GPUs" }, rangemode: "tozero" } });

    if (drawnVersion !== fleetOut.version) {
      const bySite = buildout(fleet);
      const horizon = Object.values(bySite).flatMap((s) => s.x).sort().pop() ?? today;
      const energised = energisedNow(fleet, today);
      chart(powerChart, `Energised IT power by site over the buildout; ${num(energised, "MW", 1)} energised today`,
        Object.entries(bySite).map(([site, s]) => ({
          x: [...s.x, horizon > today ? horizon : today], y: [...s.y, s.total], name: site, type: "scatter",
          mode: "lines", line: { shape: "hv" }, hovertemplate: "%{y:,.1f} MW from %{x} (UTC day)<extra>%{fullData.name}</extra>",
        })),
        { yaxis: { title: { text: "MW" }, rangemode: "tozero" }, shapes: [{ type: "line", x0: today, x1: today, yref: "paper", y0: 0, y1: 1, line: { dash: "dot", color: "#888" } }] });
      fill(providers, tree(fleet, healthBy, inUse));
      drawnVersion = fleetOut.version;
    }

    const notUp = health.clusters.filter((c) => c.status !== "up" || c.failing);
    fill(outages,
      notUp.length
        ? table([
          { label: "Cluster", value: (c) => c.cluster },
          { label: "Status", value: (c) => c.status, render: (c) => status(c.status) },
          { label: "Since", value: (c) => c.since ?? "", render: (c) => when(c.since) },
          { label: "Checks failing", value: (c) => c.failing?.since ?? "", render: failing },
          { label: "Why", value: (c) => c.reason || c.failing?.last_error || "" },
        ], notUp)
        : h("p", { class: "muted" }, `Every cluster of the ${health.clusters.length} is up and passes its checks.`),
      h("h3", {}, "Recent status changes"),
      table([
        { label: "At", value: (e) => e.at, render: (e) => when(e.at) },
        { label: "Cluster", value: (e) => e.cluster },
        { label: "From", value: (e) => e.from_status, render: (e) => status(e.from_status) },
        { label: "To", value: (e) => e.to_status, render: (e) => status(e.to_status) },
        { label: "Why", value: (e) => e.reason },
      ], events.items, { empty: "No status change recorded." }));
  });
}

/** A cluster's failing health checks: how many since when, and when it goes down if they go on failing. */
function failing(c) {
  const f = c.failing;
  if (!f) return "";
  const count = `${num(f.checks)} check${f.checks === 1 ? "" : "s"} since `;
  return c.status === "down"
    ? h("span", {}, count, when(f.since))
    : h("span", {}, count, when(f.since), "; down at ", when(f.down_at), " if they go on failing");
}
