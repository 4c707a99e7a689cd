// Tokens (admins only): every API token (never a secret), a new one shown once, revoking one.
import { badge, fill, h, labelled, message, table, when } from "../lib.js";

const ROLES = ["member", "viewer", "admin", "provider"];

export default async function render(ctx) {
  const list = h("div");
  const created = h("div", { "aria-live": "polite" });
  const name = h("input", { id: "token-name", required: true, maxlength: 200, autocomplete: "off" });
  const role = h("select", { id: "token-role" }, ROLES.map((r) => h("option", { value: r }, r)));
  const team = h("select", { id: "token-team" }, h("option", { value: "" }, "none"));
  const provider = h("select", { id: "token-provider" }, h("option", { value: "" }, "none"));
  const expires = h("input", { id: "token-expires", type: "datetime-local" });
  const [teams, fleet] = await Promise.all([ctx.api("/teams"), ctx.api("/fleet")]);
  for (const t of teams) team.append(h("option", { value: t.id }, `${t.id} (${t.name})`));
  for (const p of fleet.fleet.providers) provider.append(h("option", { value: p.id }, p.id));

  const form = h("form", { class: "stack card", "aria-label": "Create a token" },
    h("h2", {}, "Create a token"),
    labelled("Name", name), labelled("Role", role), labelled("Team (member, viewer)", team),
    labelled("Provider (provider tokens)", provider), labelled("Expires (your time zone; empty: never)", expires),
    h("button", { class: "primary", type: "submit" }, "Create token"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: name.value.trim(), role: role.value, team: team.value || null, provider: provider.value || null };
    if (expires.value) body.expires_at = new Date(expires.value).toISOString();
    try {
      const made = await ctx.api("/tokens", { method: "POST", body });
      ctx.report("");
      fill(created, h("div", { class: "card", role: "status" },
        h("p", {}, `Token ${made.id} (${body.name}) made. Its secret is shown this once: copy it now.`),
        h("input", { readonly: true, value: made.token, "aria-label": "The new token's secret", size: 70, onfocus: (e) => e.target.select() })));
      created.querySelector("input").select(); // ready to copy
      name.value = "";
      await refresh();
    } catch (err) {
      ctx.report(message(err));
    }
  });

  async function revoke(token) {
    if (!window.confirm(`Revoke token ${token.id} (${token.name})? Requests with it are refused from now on.`)) return;
    try {
      await ctx.api(`/tokens/${encodeURIComponent(token.id)}/revoke`, { method: "POST" });
      ctx.report("");
      await refresh();
    } catch (err) {
      ctx.report(message(err));
    }
  }

  async function refresh() {
    const tokens = await ctx.api("/tokens");
    fill(list, table([
      { label: "Id", value: (t) => t.id },
      { label: "Name", value: (t) => t.name },
      { label: "Role", value: (t) => t.role },
      { label: "Team", value: (t) => t.team ?? t.provider ?? "—" },
      { label: "State", value: (t) => t.state, render: (t) => badge(t.state, t.state === "live" ? "ok" : "bad") },
      { label: "Created", value: (t) => t.created_at, render: (t) => when(t.created_at) },
      { label: "By", value: (t) => t.created_by },
      { label: "Expires", value: (t) => t.expires_at ?? "", render: (t) => (t.expires_at ? when(t.expires_at) : "never") },
      { label: "", value: () => "", render: (t) => (t.state === "live" && t.id !== ctx.me.token_id
        ? h("button", { class: "danger", type: "button", "aria-label": `Revoke ${t.name}`, onclick: () => revoke(t) }, "Revoke")
        : t.id === ctx.me.token_id ? h("span", { class: "muted" }, "yours") : "") },
    ], tokens));
  }

  fill(ctx.main, h("h1", {}, "Tokens"),
    h("p", { class: "muted" }, "Every API token; secrets are never shown after creation. Only admins see this page."),
    h("section", { class: "card", "aria-label": "Every token" }, h("h2", {}, "Every token"), list),
    form, created);
  await ctx.poll(refresh);
}
