// Shared helpers of the dashboard's pages: the API client, DOM building (text only: never HTML from data),
// formatting with units, tables and charts. Every page module imports from here.

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

const TOKEN_KEY = "stargate.token";

/** The token the user logged in with (kept in this tab's session storage only; never in a URL). */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Call the public API: `path` under /api/v1, `query` an object of parameters, `body` sent as JSON. */
export async function api(path, { method = "GET", query = null, body = undefined, headers = {}, as = "json" } = {}) {
  const url = new URL("/api/v1" + path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, v);
  }
  const init = { method, headers: { Authorization: "Bearer " + (token() || ""), ...headers }, cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    throw new ApiError(0, "the server cannot be reached (" + err.message + ")");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail ?? detail;
    } catch (_) { /* not JSON */ }
    if (response.status === 401) window.dispatchEvent(new CustomEvent("stargate:unauthorised", { detail }));
    throw new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return as === "text" ? response.text() : response.json();
}

/** An element: `h("td", {class: "num"}, "12 GPUs")`; attributes starting with "on" are listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace what `el` holds with `children`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

/** `n` with its unit, e.g. `num(1234.5, "GPU-hours")` → "1,234.5 GPU-hours"; "—" when missing. */
export function num(n, unit = "", digits = null) {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  const text = digits === null ? numberFormat.format(n)
    : new Intl.NumberFormat(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(n);
  return unit ? `${text} ${n === 1 && SINGULAR[unit] ? SINGULAR[unit] : unit}` : text;
}

const SINGULAR = { GPUs: "GPU", jobs: "job", replicas: "replica", requests: "request", sites: "site", buildings: "building", clusters: "cluster", runs: "run" };

export const usd = (n) => num(n, "USD", 0);

const zoneFormat = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" });

/** `d` on the viewer's clock as ISO 8601 with the zone's short name, e.g. "2026-12-01 15:07:50 CET". */
export function localIso(d) {
  const p = (n) => String(n).padStart(2, "0");
  const zone = zoneFormat.formatToParts(d).find((part) => part.type === "timeZoneName")?.value ?? "";
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${zone}`.trim();
}

/** A UTC instant (ISO 8601; a date alone is a UTC day) as a Date. */
export function parseUtc(iso) {
  if (iso instanceof Date) return iso;
  const text = /Z$|[+-]\d\d:\d\d$/.test(iso) || iso.length <= 10 ? iso : iso + "Z";
  return new Date(text);
}

/** An instant shown in the viewer's time zone, with UTC (ISO 8601) on hover. */
export function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const d = parseUtc(iso);
  return h("time", { datetime: d.toISOString(), title: d.toISOString().replace(/\.\d+Z$/, "Z") + " (UTC)" }, localIso(d));
}

/** A day (YYYY-MM-DD) shown as is: days are UTC days everywhere in Stargate. */
export function day(iso) {
  return iso ? h("time", { datetime: iso, title: iso + " (UTC day)" }, iso) : h("span", { class: "muted" }, "—");
}

/** Instants as the local wall-clock strings Plotly draws on a date axis. */
export function localAxis(isos) {
  return isos.map((iso) => {
    const d = parseUtc(iso);
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  });
}

export function badge(text, kind = "") {
  return h("span", { class: "badge " + kind }, text);
}

const STATUS_KIND = {
  up: "ok", running: "ok", succeeded: "ok", ready: "ok", active: "ok", matched: "ok", awarded: "ok",
  degraded: "warn", pending: "warn", placed: "warn", starting: "warn", open: "warn", draining: "warn",
  down: "bad", failed: "bad", cancelled: "", lost: "bad", declined: "bad", expired: "bad",
};

/** A status as a coloured badge. */
export function status(text) {
  return badge(text, STATUS_KIND[text] ?? "");
}

export function card(title, ...children) {
  return h("section", { class: "card", "aria-label": title }, h("h2", {}, title), ...children);
}

export function kpi(label, value) {
  return h("div", { class: "kpi" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
}

/**
 * A table with sortable columns. `columns`: [{label, value: row => sortable value, render?: row => node/text,
 * num?: true}]; clicking a header (or Enter on it) sorts by it.
 */
export function table(columns, rows, { caption = null, empty = "Nothing here yet." } = {}) {
  const wrap = h("div", { class: "table-wrap" });
  let sortBy = null;
  let descending = false;
  const draw = () => {
    const sorted = sortBy === null ? rows : [...rows].sort((a, b) => {
      const x = columns[sortBy].value(a);
      const y = columns[sortBy].value(b);
      const order = x === y ? 0 : x === null || x === undefined ? 1 : y === null || y === undefined ? -1 : x < y ? -1 : 1;
      return descending ? -order : order;
    });
    const head = h("tr", {}, columns.map((c, i) => h("th", {
      scope: "col", class: c.num ? "num" : "", "aria-sort": sortBy === i ? (descending ? "descending" : "ascending") : null,
    }, h("button", {
      class: "sort", type: "button",
      onclick: () => { descending = sortBy === i ? !descending : false; sortBy = i; draw(); },
    }, c.label))));
    const body = sorted.length
      ? sorted.map((r) => h("tr", {}, columns.map((c) => h("td", { class: c.num ? "num" : "" },
        c.render ? c.render(r) : String(c.value(r) ?? "—")))))
      : [h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, empty))];
    fill(wrap, h("table", {}, caption ? h("caption", { class: "muted" }, caption) : null,
      h("thead", {}, head), h("tbody", {}, body)));
  };
  draw();
  return wrap;
}

const BASE_LAYOUT = {
  margin: { l: 56, r: 16, t: 28, b: 40 },
  paper_bgcolor: "rgba(0,0,0,0)",
  plot_bgcolor: "rgba(0,0,0,0)",
  font: { family: "system-ui, sans-serif", size: 12 },
  legend: { orientation: "h", y: -0.2 },
  hovermode: "x unified",
};

let plotlyLoading = null;
let openGate = null;
const gate = new Promise((resolve) => { openGate = resolve; });
setTimeout(() => openGate(), 1500); // at the latest: a page that waits for a chart before its first data

/** Let the chart library load: called once the first page's data are drawn (see app.js). */
export function allowCharts() {
  openGate();
}

/**
 * Plotly, loaded on first use once the first page's data are drawn: running its bundle takes the browser's main
 * thread for a while, so tables and figures come first, then the charts. The bundle comes from this server (the
 * installed plotly package), named in the page's `stargate-plotly` meta.
 */
export function plotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!plotlyLoading) {
    plotlyLoading = gate.then(() => new Promise((resolve, reject) => {
      const src = document.querySelector('meta[name="stargate-plotly"]').content;
      const script = document.createElement("script");
      script.src = src;
      script.async = true;
      script.onload = () => resolve(window.Plotly);
      script.onerror = () => {
        plotlyLoading = null;
        script.remove();
        reject(new Error(`the chart library ${src} did not load`));
      };
      document.head.append(script);
    }));
  }
  return plotlyLoading;
}

/**
 * Draw (or redraw in place) a Plotly chart into `el` once Plotly is loaded. `label` is read by screen readers (the
 * chart is an image to them); `layout` is merged over the common layout. Resolves when drawn (or when `el` left
 * the page meanwhile).
 */
export async function chart(el, label, traces, layout = {}) {
  el.classList.add("chart");
  el.setAttribute("role", "img");
  el.setAttribute("aria-label", label);
  const merged = { ...BASE_LAYOUT, ...layout, title: layout.title ? { text: layout.title, font: { size: 13 } } : undefined };
  const Plotly = await plotly();
  if (!el.isConnected) return;
  await Plotly.react(el, traces, merged, { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["toImage"] });
}

/** Form a `label` around a control. */
export function labelled(text, control) {
  return h("label", {}, text, control);
}

/** The message of an error for the status line. */
export function message(err) {
  return err instanceof ApiError ? `${err.status ? err.status + ": " : ""}${err.detail}` : String(err?.message ?? err);
}
