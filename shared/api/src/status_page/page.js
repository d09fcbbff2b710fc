"use strict";
// The hmsync status page. Everything shown comes from the config API with the admin token,
// which is kept in sessionStorage (this tab only). Data only ever becomes text nodes.
(function () {
  const TOKEN_KEY = "hmsync-admin-token";
  const REFRESH_MS = 5000;
  const ERRORS_SHOWN = 50;
  const byId = (id) => document.getElementById(id);
  let timer = null;
  let loading = false;

  /** An element with properties/attributes and children (strings become text nodes). */
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null) continue;
      if (k === "class") e.className = v;
      else if (k === "onclick") e.addEventListener("click", v);
      else if (k === "role" || k.startsWith("data-") || k.startsWith("aria-")) e.setAttribute(k, String(v));
      else e[k] = v;
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  const enc = encodeURIComponent;
  const fmtTime = (ms) => (ms ? new Date(ms).toLocaleString() : "—");
  const fmtNumber = (n) => (typeof n === "number" ? n.toLocaleString() : "—");
  function fmtDuration(seconds) {
    if (seconds === undefined || seconds === null) return "unknown";
    if (seconds < 60) return seconds + " s";
    const m = Math.round(seconds / 60);
    if (m < 60) return m + " min";
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }
  const sideName = (s) => (s === "hubspot" ? "HubSpot" : s === "mailerlite" ? "MailerLite" : s || "");
  const scanKind = (k) => ({ initial: "Initial sync", scheduled: "Scheduled scan", manual: "Sync now" })[k] || k;

  function say(text, isError) {
    const m = byId("message");
    m.textContent = text || "";
    m.className = isError ? "error" : "";
  }

  class Unauthorized extends Error {}

  /** Calls the config API (relative URLs, so a path prefix such as an API stage works). */
  async function api(method, path, body) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const init = { method, headers: { Authorization: "Bearer " + token, Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (response.status === 401) throw new Unauthorized("The admin token was refused.");
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) {
      const text = data && data.error ? data.error + (data.action ? " " + data.action : "") : "HTTP " + response.status;
      throw new Error(text);
    }
    return data;
  }

  function lifecycleBadges(s) {
    const badges = [];
    const phase = { draft: ["Draft: not activated", "muted"], initial_sync: ["Initial sync", "warn"], continuous: ["Continuous sync", "ok"] }[s.lifecycle];
    badges.push(el("span", { class: "badge lifecycle " + (phase ? phase[1] : "muted"), "data-lifecycle": s.lifecycle }, phase ? phase[0] : s.lifecycle));
    if (s.pause) {
      const why = { user: "Paused", safety_valve: "Held for approval", credentials: "Paused: credentials refused" }[s.pause.reason] || "Paused";
      badges.push(el("span", { class: "badge bad pause-reason", "data-pause": s.pause.reason }, why));
    }
    if (s.waiting_until_ms) badges.push(el("span", { class: "badge warn" }, "Waiting for an API limit until " + fmtTime(s.waiting_until_ms)));
    if (s.scan) badges.push(el("span", { class: "badge warn scan-running" }, scanKind(s.scan.kind) + " running"));
    return el("div", { class: "badges" }, badges);
  }

  const plural = (n, one, many) => `${fmtNumber(n)} ${n === 1 ? one : many}`;

  function tripText(t) {
    switch (t.kind) {
      case "group_removals": return `would remove ${plural(t.count, "contact", "contacts")} from the target group (limit ${t.limit})`;
      case "unsubscribes": return `would unsubscribe ${plural(t.count, "MailerLite subscriber", "MailerLite subscribers")} (limit ${t.limit})`;
      case "field_clears": return `would clear ${plural(t.count, "field value", "field values")} (limit ${t.limit})`;
      default: return `${t.kind}: ${t.count} (limit ${t.limit})`;
    }
  }

  function approvalBanner(id, s) {
    if (!s.pause || s.pause.reason !== "safety_valve") return null;
    return el("div", { class: "banner approval", role: "alert" },
      el("p", {}, el("strong", {}, "The safety valve paused this connection."), " The last run:"),
      el("ul", {}, (s.pause.trips || []).map((t) => el("li", {}, tripText(t)))),
      el("p", {}, "Check the sync rules, the mappings and the source data. If these changes are intended, approve them; otherwise fix the config first."),
      el("button", { type: "button", class: "primary approve", onclick: (e) => act(e.target, "POST", `connections/${enc(id)}/approve`, "Changes approved.") }, "Approve"));
  }

  function problemBanner(s) {
    if (!s.problem) return null;
    return el("div", { class: "banner problem", role: "alert" },
      el("p", {}, el("strong", {}, s.problem.side ? sideName(s.problem.side) + ": " : ""), s.problem.message),
      el("p", {}, el("strong", {}, "What to do: "), s.problem.action),
      el("p", { class: "api-message" }, "Since " + fmtTime(s.problem.since_ms)));
  }

  function progress(s) {
    const p = s.initial_sync;
    if (s.lifecycle !== "initial_sync") {
      if (p.finished_at_ms) return el("p", { class: "progress detail" }, "Initial sync finished " + fmtTime(p.finished_at_ms) + ", " + fmtNumber(p.done) + " records.");
      return null;
    }
    const bar = el("progress", { "aria-label": "Initial sync progress" });
    if (p.total) { bar.max = p.total; bar.value = Math.min(p.done, p.total); }
    const parts = [p.total ? `${fmtNumber(p.done)} of ${fmtNumber(p.total)} records` : `${fmtNumber(p.done)} records so far`];
    if (p.rate_per_second) parts.push(p.rate_per_second.toFixed(1) + " records/s");
    if (p.eta_seconds !== undefined && p.eta_seconds !== null) parts.push("about " + fmtDuration(p.eta_seconds) + " left");
    return el("div", { class: "progress" }, bar, el("div", { class: "detail initial-progress" }, parts.join(" · ")));
  }

  function counts(s) {
    const l = s.counts.links;
    const items = [
      ["linked", "Linked", l.complete],
      ["links", "Links in total", l.total],
      ["hubspot-in-scope", "In scope in HubSpot", l.hubspot_in_scope],
      ["mailerlite-in-scope", "In scope in MailerLite", l.mailerlite_in_scope],
      ["excluded", "Excluded: no email", s.counts.excluded_no_email],
      ["errored", "Errored", s.counts.errored],
      ["unique-month", "Unique contacts " + s.month, s.unique_contacts_this_month],
    ];
    if (l.deleted_in_hubspot) items.push(["deleted-hubspot", "Deleted in HubSpot", l.deleted_in_hubspot]);
    if (l.deleted_in_mailerlite) items.push(["deleted-mailerlite", "Deleted in MailerLite", l.deleted_in_mailerlite]);
    if (typeof s.dead_letters === "number") items.push(["dead-letters", "Dead letters", s.dead_letters]);
    if (s.parked_messages) items.push(["parked", "Held while paused", s.parked_messages]);
    return el("dl", { class: "counts" }, items.map(([key, label, value]) =>
      el("div", {}, el("dt", {}, label), el("dd", { "data-count": key }, fmtNumber(value)))));
  }

  function scans(s) {
    const last = s.last_scan;
    const lastText = last ? `${scanKind(last.kind)}, finished ${fmtTime(last.finished_at_ms)}, ${fmtNumber(last.records)} records` : "none yet";
    const running = s.scan ? `${scanKind(s.scan.kind)} since ${fmtTime(s.scan.started_at_ms)} (HubSpot ${fmtNumber(s.scan.hubspot.records)}, MailerLite ${fmtNumber(s.scan.mailerlite.records)} records)` : null;
    return el("div", { class: "scans" },
      el("div", { class: "last-scan", "data-run-id": last ? last.run_id : "", "data-finished-at": last ? last.finished_at_ms : "" },
        el("span", { class: "label" }, "Last scan"), lastText),
      running && el("div", { class: "running-scan" }, el("span", { class: "label" }, "Running"), running),
      el("div", { class: "next-scan" }, el("span", { class: "label" }, "Next scan"), s.next_scan_at_ms ? fmtTime(s.next_scan_at_ms) : "—"));
  }

  function webhooks(s) {
    const w = s.webhooks;
    if (!w) return null;
    const ml = w.mailerlite;
    const states = { registered: "registered", not_registered: "not registered yet", no_public_url: "not registered: MailerLite cannot reach this deployment", failing: "failing" };
    const mlLast = ml.last_delivery_at_ms ? ", last delivery " + fmtTime(ml.last_delivery_at_ms) : "";
    const hs = w.hubspot.last_delivery_at_ms ? "last delivery " + fmtTime(w.hubspot.last_delivery_at_ms) : "none received yet";
    return el("div", { class: "scans webhooks" },
      el("div", { class: "webhooks-mailerlite", "data-state": ml.state },
        el("span", { class: "label" }, "MailerLite webhooks"), (states[ml.state] || ml.state) + mlLast,
        ml.problem && el("div", { class: "api-message" }, ml.problem)),
      el("div", { class: "webhooks-hubspot" }, el("span", { class: "label" }, "HubSpot webhooks"), hs));
  }

  function contactLabel(e) {
    if (e.email) return e.email;
    const ids = [];
    if (e.hubspot_id) ids.push("HubSpot " + e.hubspot_id);
    if (e.mailerlite_id) ids.push("MailerLite " + e.mailerlite_id);
    return ids.join(", ") || e.key;
  }

  function errorsTable(id, page) {
    const head = el("h3", {}, "Errors",
      page.total > 0 && el("button", { type: "button", class: "retry-all", onclick: (ev) => act(ev.target, "POST", `connections/${enc(id)}/errors/retry`, "Every errored contact is queued again.", {}) }, "Retry all"));
    if (!page.errors.length) return el("section", { class: "errors" }, head, el("p", { class: "none" }, "No errors."));
    const rows = [];
    for (const e of page.errors) {
      e.problems.forEach((p, i) => {
        rows.push(el("tr", { "data-error-key": e.key },
          el("td", { class: "contact" }, i === 0 ? contactLabel(e) : ""),
          el("td", {}, sideName(p.side)),
          el("td", {}, p.field || "—"),
          el("td", {}, p.message, p.api_message && el("div", { class: "api-message" }, sideName(p.side) + " said: " + p.api_message)),
          el("td", {}, p.action),
          el("td", {}, i === 0 && el("button", { type: "button", class: "retry", onclick: (ev) => act(ev.target, "POST", `connections/${enc(id)}/errors/retry`, "Queued again: " + contactLabel(e), { keys: [e.key] }) }, "Retry"))));
      });
    }
    const more = page.total > page.errors.length ? el("p", { class: "none" }, `Showing ${page.errors.length} of ${fmtNumber(page.total)} (GET /connections/${id}/errors pages through all).`) : null;
    return el("section", { class: "errors" }, head,
      el("table", {}, el("thead", {}, el("tr", {}, ["Contact", "App", "Field", "Message", "What to do", ""].map((h) => el("th", {}, h)))), el("tbody", {}, rows)),
      more);
  }

  function card(c, s, errors) {
    const id = c.id;
    const paused = s.pause && s.pause.reason !== "safety_valve";
    const actions = el("div", { class: "actions" },
      el("button", { type: "button", class: "sync-now", disabled: s.lifecycle === "draft", onclick: (e) => act(e.target, "POST", `connections/${enc(id)}/sync-now`, "A scan is queued for " + s.name + ".") }, "Sync now"),
      paused
        ? el("button", { type: "button", class: "resume", onclick: (e) => act(e.target, "POST", `connections/${enc(id)}/resume`, "Resumed.") }, "Resume")
        : el("button", { type: "button", class: "pause", disabled: !!s.pause, onclick: (e) => act(e.target, "POST", `connections/${enc(id)}/pause`, "Paused.") }, "Pause"));
    return el("article", { class: "connection", "data-connection-id": id },
      el("div", { class: "connection-head" }, el("h2", {}, el("span", { class: "name" }, s.name), el("span", { class: "id" }, id)), actions),
      lifecycleBadges(s),
      approvalBanner(id, s),
      problemBanner(s),
      progress(s),
      counts(s),
      scans(s),
      webhooks(s),
      errorsTable(id, errors));
  }

  async function load() {
    if (loading) return;
    loading = true;
    try {
      const list = await api("GET", "connections");
      const cards = await Promise.all(list.connections.map(async (c) => {
        const [status, errors] = await Promise.all([
          api("GET", `connections/${enc(c.id)}/status`),
          api("GET", `connections/${enc(c.id)}/errors?limit=${ERRORS_SHOWN}`),
        ]);
        return card(c, status, errors);
      }));
      byId("connections").replaceChildren(...(cards.length ? cards : [el("p", { class: "none" }, "No connections yet: create one with POST /connections.")]));
      byId("updated").textContent = "Updated " + new Date().toLocaleTimeString();
    } catch (e) {
      if (e instanceof Unauthorized) signOut(e.message);
      else say("Could not load the status: " + e.message, true);
    } finally {
      loading = false;
    }
  }

  async function act(button, method, path, done, body) {
    button.disabled = true;
    try {
      await api(method, path, body);
      say(done, false);
    } catch (e) {
      if (e instanceof Unauthorized) return signOut(e.message);
      say(e.message, true);
    }
    await load();
  }

  function signedIn() {
    byId("login").hidden = true;
    byId("forget").hidden = false;
    byId("refresh").hidden = false;
    load();
    if (timer) clearInterval(timer);
    timer = setInterval(() => { if (!document.hidden) load(); }, REFRESH_MS);
  }

  function signOut(reason) {
    sessionStorage.removeItem(TOKEN_KEY);
    if (timer) clearInterval(timer);
    timer = null;
    byId("connections").replaceChildren();
    byId("forget").hidden = true;
    byId("refresh").hidden = true;
    byId("updated").textContent = "";
    say("", false);
    byId("login").hidden = false;
    byId("login-error").textContent = reason || "";
    byId("token").focus();
  }

  byId("login").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = byId("token").value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    byId("token").value = "";
    byId("login-error").textContent = "";
    signedIn();
  });
  byId("forget").addEventListener("click", () => signOut(""));
  byId("refresh").addEventListener("click", () => load());

  if (sessionStorage.getItem(TOKEN_KEY)) signedIn();
  else signOut("");
})();
