// The status view: one card per connection with its phase, progress, counts, scans, charts,
// errors (with retry) and dead letters (with requeue).
const ERRORS_SHOWN = 50;

function lifecycleBadges(s) {
  const phases = { draft: "muted", initial_sync: "warn", continuous: "ok" };
  const badges = [badge("lifecycle " + (phases[s.lifecycle] || "muted"), t("lifecycle." + s.lifecycle), { "data-lifecycle": s.lifecycle })];
  if (s.pause) badges.push(badge("bad pause-reason", t("pause." + s.pause.reason), { "data-pause": s.pause.reason }));
  if (s.waiting_until_ms) badges.push(badge("warn", t("status.waiting_until", { time: fmtTime(s.waiting_until_ms) })));
  if (s.scan) badges.push(badge("warn scan-running", t("status.scan_running", { kind: t("scan." + s.scan.kind) })));
  return el("div", { class: "badges" }, badges);
}

function tripText(trip) {
  const known = ["group_removals", "unsubscribes", "field_clears"].includes(trip.kind);
  return known ? t("safety.trip." + trip.kind, { n: trip.count, limit: trip.limit }) : `${trip.kind}: ${trip.count} (${trip.limit})`;
}

function approvalBanner(id, s) {
  if (!s.pause || s.pause.reason !== "safety_valve") return null;
  return el("div", { class: "banner approval", role: "alert" },
    el("p", {}, el("strong", {}, t("safety.paused")), " ", t("safety.last_run")),
    el("ul", {}, (s.pause.trips || []).map((trip) => el("li", {}, tripText(trip)))),
    el("p", {}, t("safety.check")),
    el("button", { type: "button", class: "primary approve", onclick: (e) => act(e.target, "POST", `connections/${enc(id)}/approve`, t("safety.approved")) }, t("safety.approve")));
}

function problemBanner(s) {
  if (!s.problem) return null;
  return el("div", { class: "banner problem", role: "alert" },
    el("p", {}, el("strong", {}, s.problem.side ? sideName(s.problem.side) + ": " : ""), s.problem.message),
    el("p", {}, el("strong", {}, t("status.what_to_do") + " "), s.problem.action),
    el("p", { class: "api-message" }, t("status.since", { time: fmtTime(s.problem.since_ms) })));
}

function progress(s) {
  const p = s.initial_sync;
  if (s.lifecycle !== "initial_sync") {
    if (p.finished_at_ms) return el("p", { class: "progress detail" }, t("progress.finished", { time: fmtTime(p.finished_at_ms), n: p.done }));
    return null;
  }
  const bar = el("progress", { "aria-label": t("progress.label") });
  if (p.total) { bar.max = p.total; bar.value = Math.min(p.done, p.total); }
  const parts = [p.total ? t("progress.of", { done: p.done, total: p.total }) : t("progress.so_far", { n: p.done })];
  if (p.rate_per_second) parts.push(t("progress.rate", { rate: p.rate_per_second.toFixed(1) }));
  if (p.eta_seconds !== undefined && p.eta_seconds !== null) parts.push(t("progress.eta", { left: fmtDuration(p.eta_seconds) }));
  return el("div", { class: "progress" }, bar, el("div", { class: "detail initial-progress", "aria-live": "polite" }, parts.join(" · ")));
}

function counts(s) {
  const l = s.counts.links;
  const items = [
    ["linked", l.complete], ["links", l.total], ["hubspot-in-scope", l.hubspot_in_scope],
    ["mailerlite-in-scope", l.mailerlite_in_scope], ["excluded", s.counts.excluded_no_email],
    ["errored", s.counts.errored], ["unique-month", s.unique_contacts_this_month],
  ];
  if (l.deleted_in_hubspot) items.push(["deleted-hubspot", l.deleted_in_hubspot]);
  if (l.deleted_in_mailerlite) items.push(["deleted-mailerlite", l.deleted_in_mailerlite]);
  if (typeof s.dead_letters === "number") items.push(["dead-letters", s.dead_letters]);
  if (s.parked_messages) items.push(["parked", s.parked_messages]);
  return el("dl", { class: "counts" }, items.map(([key, value]) =>
    el("div", {}, el("dt", {}, t("counts." + key, { month: s.month })), el("dd", { "data-count": key }, fmtNumber(value)))));
}

function scans(s) {
  const last = s.last_scan;
  const lastText = last ? t("scans.last", { kind: t("scan." + last.kind), time: fmtTime(last.finished_at_ms), n: last.records }) : t("scans.none");
  const running = s.scan ? t("scans.running_detail", { kind: t("scan." + s.scan.kind), time: fmtTime(s.scan.started_at_ms), hubspot: s.scan.hubspot.records, mailerlite: s.scan.mailerlite.records }) : null;
  return el("div", { class: "scans" },
    el("div", { class: "last-scan", "data-run-id": last ? last.run_id : "", "data-finished-at": last ? last.finished_at_ms : "" },
      el("span", { class: "label" }, t("scans.last_label")), lastText),
    running && el("div", { class: "running-scan" }, el("span", { class: "label" }, t("scans.running_label")), running),
    el("div", { class: "next-scan" }, el("span", { class: "label" }, t("scans.next_label")), s.next_scan_at_ms ? fmtTime(s.next_scan_at_ms) : "—"));
}

function webhooks(s) {
  const w = s.webhooks;
  if (!w) return null;
  const ml = w.mailerlite;
  const state = t("webhooks.state." + ml.state);
  const mlText = ml.last_delivery_at_ms ? t("webhooks.with_last", { state, time: fmtTime(ml.last_delivery_at_ms) }) : state;
  const hs = w.hubspot.last_delivery_at_ms ? t("webhooks.last", { time: fmtTime(w.hubspot.last_delivery_at_ms) }) : t("webhooks.none");
  return el("div", { class: "scans webhooks" },
    el("div", { class: "webhooks-mailerlite", "data-state": ml.state },
      el("span", { class: "label" }, t("webhooks.mailerlite_label")), mlText,
      ml.problem && el("div", { class: "api-message" }, ml.problem)),
    el("div", { class: "webhooks-hubspot" }, el("span", { class: "label" }, t("webhooks.hubspot_label")), hs));
}

function contactLabel(e) {
  if (e.email) return e.email;
  const ids = [];
  if (e.hubspot_id) ids.push(t("side.hubspot") + " " + e.hubspot_id);
  if (e.mailerlite_id) ids.push(t("side.mailerlite") + " " + e.mailerlite_id);
  return ids.join(", ") || e.key;
}

function errorsTable(id, page) {
  const retryAll = () => (ev) => act(ev.target, "POST", `connections/${enc(id)}/errors/retry`, t("errors.all_queued"), {});
  const head = el("h3", {}, t("errors.title"),
    page.total > 0 && el("button", { type: "button", class: "retry-all", onclick: retryAll() }, t("errors.retry_all")));
  if (!page.errors.length) return el("section", { class: "errors" }, head, el("p", { class: "none" }, t("errors.none")));
  const rows = [];
  for (const e of page.errors) {
    e.problems.forEach((p, i) => {
      const retry = (ev) => act(ev.target, "POST", `connections/${enc(id)}/errors/retry`, t("errors.queued", { who: contactLabel(e) }), { keys: [e.key] });
      rows.push(el("tr", { "data-error-key": e.key },
        el("td", { class: "contact" }, i === 0 ? contactLabel(e) : ""),
        el("td", {}, sideName(p.side)),
        el("td", {}, p.field || "—"),
        el("td", {}, p.message, p.api_message && el("div", { class: "api-message" }, t("errors.app_said", { app: sideName(p.side), message: p.api_message }))),
        el("td", {}, p.action),
        el("td", {}, i === 0 && el("button", { type: "button", class: "retry", "aria-label": t("errors.retry_who", { who: contactLabel(e) }), onclick: retry }, t("errors.retry")))));
    });
  }
  const more = page.total > page.errors.length ? el("p", { class: "none" }, t("errors.more", { shown: page.errors.length, total: page.total, id })) : null;
  const headers = ["contact", "app", "field", "message", "action", "retry"].map((h) => el("th", { scope: "col" }, t("errors.col." + h)));
  return el("section", { class: "errors" }, head,
    el("div", { class: "table-wrap" }, el("table", {}, el("caption", { class: "visually-hidden" }, t("errors.caption")), el("thead", {}, el("tr", {}, headers)), el("tbody", {}, rows))),
    more);
}

function deadLetters(id, letters) {
  if (!letters || !letters.dead_letters.length) return null;
  const rows = letters.dead_letters.map((d) => el("tr", { "data-dead-letter": d.message_id },
    el("td", {}, t("dead.kind." + d.kind, { n: d.contacts || 0 })),
    el("td", {}, fmtNumber(d.receive_count)),
    el("td", {}, d.last_error || "—")));
  const requeue = (ev) => act(ev.target, "POST", "dead-letters/requeue", t("dead.requeued"));
  return el("section", { class: "dead-letters" },
    el("h3", {}, t("dead.title"), el("button", { type: "button", class: "requeue", onclick: requeue }, t("dead.requeue"))),
    el("p", { class: "hint" }, t("dead.explain")),
    el("div", { class: "table-wrap" }, el("table", {},
      el("thead", {}, el("tr", {}, ["kind", "tries", "last_error"].map((h) => el("th", { scope: "col" }, t("dead.col." + h))))),
      el("tbody", {}, rows))));
}

function card(c, s, errors, activity, letters) {
  const id = c.id;
  const draft = s.lifecycle === "draft";
  const syncNow = (ev) => act(ev.target, "POST", `connections/${enc(id)}/sync-now`, t("actions.sync_queued"));
  const pauseOrResume = s.pause
    ? (s.pause.reason !== "safety_valve" && el("button", { type: "button", class: "resume", onclick: (ev) => act(ev.target, "POST", `connections/${enc(id)}/resume`, t("actions.resumed")) }, t("actions.resume")))
    : el("button", { type: "button", class: "pause", onclick: (ev) => act(ev.target, "POST", `connections/${enc(id)}/pause`, t("actions.paused")) }, t("actions.pause"));
  const actions = el("div", { class: "actions" },
    draft
      ? el("a", { class: "button primary continue-setup", href: `#/setup/${enc(id)}/hubspot` }, t("actions.continue_setup"))
      : [el("button", { type: "button", class: "sync-now", onclick: syncNow }, t("actions.sync_now")), pauseOrResume,
        el("a", { class: "button edit", href: `#/edit/${enc(id)}/direction` }, t("actions.edit")),
        el("a", { class: "button contacts", href: `#/contacts/${enc(id)}` }, t("actions.contacts"))]);
  return el("article", { class: "connection", "data-connection-id": id, "aria-labelledby": "name-" + id },
    el("div", { class: "connection-head" },
      el("h2", { id: "name-" + id }, el("span", { class: "name" }, c.name), el("span", { class: "id" }, id)),
      actions),
    lifecycleBadges(s),
    approvalBanner(id, s),
    problemBanner(s),
    progress(s),
    draft ? null : counts(s),
    draft ? null : scans(s),
    draft ? null : webhooks(s),
    draft || !activity ? null : charts(s, activity),
    draft ? null : errorsTable(id, errors),
    deadLetters(id, letters));
}

let loading = false;

/** Renders every connection's card into the view. */
async function loadOverview() {
  if (loading) return;
  loading = true;
  try {
    const list = await api("GET", "connections");
    const cards = await Promise.all(list.connections.map(async (c) => {
      const base = `connections/${enc(c.id)}`;
      const [status, errors, activity, letters] = await Promise.all([
        api("GET", `${base}/status`),
        api("GET", `${base}/errors?limit=${ERRORS_SHOWN}`),
        c.lifecycle === "draft" ? null : api("GET", `${base}/activity?hours=${CHART_HOURS}`),
        api("GET", `${base}/dead-letters`).catch(() => null),
      ]);
      return card(c, status, errors, activity, letters);
    }));
    if (route().view !== "overview") return;
    const empty = el("div", { class: "empty" }, el("p", {}, t("overview.empty")), el("a", { class: "button primary", href: "#/new" }, t("nav.new")));
    byId("view").replaceChildren(el("h1", { class: "view-title" }, t("overview.title")), ...(cards.length ? cards : [empty]));
    byId("updated").textContent = t("overview.updated", { time: new Date().toLocaleTimeString() });
  } catch (e) {
    if (e instanceof Unauthorized) signOut(e.message);
    else say(t("overview.failed", { message: e.message }), true);
  } finally {
    loading = false;
  }
}

/** Runs an action button's request, says what happened and reloads the overview. */
async function act(button, method, path, done, body) {
  button.disabled = true;
  try {
    await api(method, path, body);
    say(done, false);
  } catch (e) {
    if (e instanceof Unauthorized) return signOut(e.message);
    say(e.message, true);
  }
  await loadOverview();
}
