// The dashboard's shell: log in with a token, show the page named by the location's #/name, keep it live.
import { allowCharts, api, ApiError, fill, h, message, setToken, token } from "./lib.js";

const PAGES = ["fleet", "queues", "jobs", "services", "contracts", "budget", "plan", "simulation", "tokens"];
const ADMIN_PAGES = ["tokens"];
const PROVIDER_PAGES = ["contracts"]; // a provider token may read only its contracts and the offers made to it
const REFRESH_MS = 5000;
const RETRY_MS = 5000; // a page whose first data could not be read is drawn again after this
const importRetries = {}; // page → failed loads of its module

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const logout = document.getElementById("logout");
const statusLine = document.getElementById("status");

let current = null; // the page shown now: {name, timers, cleanup}
let me = null; // the token's whoami

/** Say `text` in the status line (an error), or clear it. */
export function report(text) {
  fill(statusLine, text ? h("div", { class: "error", role: "alert" }, text) : null);
}

function stopPage() {
  if (!current) return;
  current.timers.forEach(clearInterval);
  if (current.cleanup) current.cleanup();
  current = null;
}

/** The context a page is given: where to draw, who is looking, what it may do, how to stay live. */
function context(name) {
  const page = { name, timers: [], cleanup: null };
  current = page;
  return {
    main,
    me,
    api,
    report,
    /** May the viewer act (cancel, submit) on work of `team`? Admins on any; members on their team's. */
    canAct: (team) => me.role === "admin" || (me.role === "member" && me.team === team),
    isAdmin: () => me.role === "admin",
    /** Run `refresh` now and every `ms` while the page is shown and the tab visible; errors go to the status line. */
    /** The first run's error is thrown (the page is then drawn again a little later); later ones are reported. */
    poll: async (refresh, ms = REFRESH_MS) => {
      const run = async (first = false) => {
        if (current !== page || (document.hidden && !first)) return;
        try {
          await refresh();
          if (statusLine.dataset.from === "poll") { report(""); delete statusLine.dataset.from; }
        } catch (err) {
          if (first) throw err;
          if (current !== page) return; // left meanwhile (e.g. logged out): its errors are not the page's now
          report(message(err));
          statusLine.dataset.from = "poll";
        }
      };
      page.timers.push(setInterval(run, ms));
      await run(true);
    },
    onLeave: (fn) => { page.cleanup = fn; },
    stillShown: () => current === page,
  };
}

async function show() {
  stopPage();
  report("");
  if (!token()) return showLogin();
  if (!me) {
    try {
      me = await api("/whoami");
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return showLogin(message(err));
      report(message(err));
      return;
    }
  }
  const name = (location.hash.match(/^#\/([a-z]+)/) || [])[1];
  const allowed = me.role === "provider" ? PROVIDER_PAGES : PAGES.filter((p) => me.role === "admin" || !ADMIN_PAGES.includes(p));
  if (!allowed.includes(name)) {
    location.replace("#/" + allowed[0]);
    return;
  }
  nav.hidden = false;
  for (const link of nav.querySelectorAll("a")) link.hidden = !allowed.includes(link.getAttribute("href").slice(2));
  logout.hidden = false;
  fill(who, `${me.name} · ${me.role}${me.team ? " · team " + me.team : ""}`);
  for (const link of nav.querySelectorAll("a")) {
    if (link.getAttribute("href") === "#/" + name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `Stargate · ${name[0].toUpperCase()}${name.slice(1)}`;
  fill(main, h("p", { class: "muted" }, "Loading…"));
  const ctx = context(name);
  const shown = current;
  delete main.dataset.ready;
  let module = null;
  try {
    // A module that failed to load stays failed under its address: a retry asks for it under another one.
    module = await import(`./pages/${name}.js${importRetries[name] ? `?retry=${importRetries[name]}` : ""}`);
    fill(main);
    await module.default(ctx);
    if (ctx.stillShown()) main.dataset.ready = name; // drawn with its first data (tests and the benchmark wait)
  } catch (err) {
    if (module === null) importRetries[name] = (importRetries[name] || 0) + 1;
    if (ctx.stillShown()) {
      report(`${message(err)} (trying again in ${RETRY_MS / 1000} s)`);
      shown.timers.push(setTimeout(() => { if (current === shown) show(); }, RETRY_MS));
    }
  }
  allowCharts(); // then the chart library may take the main thread
}

function showLogin(problem = "") {
  me = null;
  nav.hidden = true;
  logout.hidden = true;
  fill(who);
  document.title = "Stargate · Log in";
  const input = h("input", {
    id: "token", type: "password", autocomplete: "off", spellcheck: "false", required: true,
    placeholder: "sgt_t-…", "aria-describedby": "token-help",
  });
  const form = h("form", { class: "stack card", "aria-label": "Log in" },
    h("h1", {}, "Log in"),
    h("label", { for: "token" }, "API token"),
    input,
    h("p", { id: "token-help", class: "muted" },
      "The token stays in this browser tab only and is sent in a header, never in an address. `stargate up` prints ",
      "where the first admin token is; `stargate token create` makes one per person."),
    h("button", { class: "primary", type: "submit" }, "Log in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    try {
      me = await api("/whoami");
    } catch (err) {
      setToken(null);
      report(message(err));
      input.focus();
      return;
    }
    input.value = "";
    report("");
    if (!location.hash.startsWith("#/") || location.hash === "#/login") location.hash = "#/fleet";
    else show();
  });
  fill(main, h("div", { class: "login" }, form));
  if (problem) report(problem);
  input.focus();
}

// The skip link moves the focus to the page without changing the address (which names the page shown).
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

logout.addEventListener("click", () => {
  setToken(null);
  me = null;
  stopPage();
  location.hash = "#/login";
  showLogin();
});
window.addEventListener("stargate:unauthorised", () => {
  if (token() && me) { setToken(null); stopPage(); showLogin("Your token was refused (revoked or expired): log in again."); }
});
window.addEventListener("hashchange", () => { show(); main.focus({ preventScroll: true }); });
show();
