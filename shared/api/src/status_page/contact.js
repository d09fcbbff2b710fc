// Contact lookup: search by email → both records (with links into HubSpot and MailerLite),
// scope on each side, the last synced value of every mapped field, the current error with a
// retry, and the history as a timeline (what changed, where, when, why).

function valueText(v) {
  return v === undefined || v === null || v === "" ? t("contact.blank") : v;
}

function contactHeader(c) {
  const link = c.link;
  const side = (name, id, url, inScope, deleted) => el("div", { class: "record", "data-side": name },
    el("h3", {}, t("side." + name)),
    id ? el("p", {}, t("contact.record_id", { id }), " ", url && el("a", { href: url, target: "_blank", rel: "noopener noreferrer", class: "open-" + name }, t("contact.open_in", { app: t("side." + name) })))
      : el("p", { class: "none" }, t("contact.no_record")),
    el("p", {}, deleted ? badge("bad", t("contact.deleted"))
      : inScope ? badge("ok scope", t("contact.in_scope"), { "data-scope": "in" }) : badge("muted scope", t("contact.out_of_scope"), { "data-scope": "out" })),
    name === "mailerlite" && link.ml_status ? el("p", {}, t("contact.status", { status: t("ml_status." + link.ml_status) })) : null,
    name === "hubspot" && link.hs_opted_out ? el("p", {}, badge("warn", t("contact.opted_out"))) : null);
  return el("div", { class: "records" },
    side("hubspot", link.hubspot_id, c.hubspot_url, link.hs_in_scope, link.hs_deleted),
    side("mailerlite", link.mailerlite_id, c.mailerlite_url, link.ml_in_scope, link.ml_deleted));
}

function fieldsTable(c) {
  if (!c.fields.length) return el("p", { class: "none" }, t("contact.no_fields"));
  return el("div", { class: "table-wrap" }, el("table", { class: "contact-fields" },
    el("caption", {}, t("contact.fields_caption")),
    el("thead", {}, el("tr", {}, ["hubspot", "mailerlite", "hubspot_value", "mailerlite_value"].map((k) => el("th", { scope: "col" }, t("contact.col." + k))))),
    el("tbody", {}, c.fields.map((f) => el("tr", { "data-field": f.hubspot_property },
      el("td", {}, f.hubspot_object === "company" ? t("mapping.company_prefix", { name: f.hubspot_property }) : f.hubspot_property),
      el("td", {}, f.mailerlite_field),
      el("td", {}, valueText(f.hubspot)),
      el("td", {}, valueText(f.mailerlite)))))));
}

function currentError(id, c) {
  if (!c.error) return el("p", { class: "none current-error" }, t("contact.no_error"));
  const retry = (ev) => busy(ev.target, async () => {
    await api("POST", `connections/${enc(id)}/errors/retry`, { keys: [c.error.key] });
    say(t("errors.queued", { who: c.link.email }), false);
  });
  return el("div", { class: "banner problem current-error", role: "alert" },
    el("p", {}, el("strong", {}, t("contact.error_title"))),
    el("ul", {}, c.error.problems.map((p) => el("li", {},
      el("strong", {}, sideName(p.side) + (p.field ? " · " + p.field : "") + ": "), p.message, " ", el("span", { class: "fix" }, p.action),
      p.api_message && el("div", { class: "api-message" }, t("errors.app_said", { app: sideName(p.side), message: p.api_message }))))),
    el("p", { class: "api-message" }, t("contact.error_since", { time: fmtTime(c.error.first_seen_ms), n: c.error.attempts })),
    el("button", { type: "button", class: "retry", onclick: retry }, t("errors.retry")));
}

function timeline(history) {
  if (!history.length) return el("p", { class: "none" }, t("contact.no_history"));
  return el("ol", { class: "timeline" }, history.map((h) => el("li", { "data-field": h.field, "data-target": h.target },
    el("time", { dateTime: new Date(h.at_ms).toISOString() }, fmtTime(h.at_ms)),
    el("div", { class: "what" },
      el("strong", {}, t("contact.written_in", { app: sideName(h.target), field: h.field })), " ",
      el("span", { class: "before" }, valueText(h.before)), " ", el("span", { "aria-hidden": "true" }, "→"),
      el("span", { class: "visually-hidden" }, t("contact.became")), " ",
      el("span", { class: "after" }, valueText(h.after))),
    el("div", { class: "why" }, t("contact.why", { reason: h.reason, source: h.source })))));
}

/** The contact lookup of connection `id`, showing `email` when given. */
async function renderContacts(id, email) {
  const input = el("input", { type: "email", id: "contact-email", name: "email", required: true, autocomplete: "off", spellcheck: false, value: email || "" });
  const result = el("div", { id: "contact-result", "aria-live": "polite" });
  const form = el("form", { class: "search", id: "contact-search", onsubmit: (e) => {
    e.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    const target = `#/contacts/${enc(id)}/${enc(value)}`;
    // The same address again (a new look at the same contact) is no hash change: render it.
    if (location.hash === target) renderRoute(); else location.hash = target;
  } }, field(t("contact.email_label"), input, t("contact.email_hint")), el("button", { type: "submit", class: "primary" }, t("contact.search")));
  byId("view").replaceChildren(
    el("h1", { class: "view-title" }, t("contact.title")),
    el("p", {}, el("a", { href: "#/" }, t("nav.back_to_status"))),
    form, result);
  if (!email) {
    input.focus();
    return;
  }
  result.replaceChildren(el("p", { class: "none" }, t("common.loading")));
  try {
    const c = await api("GET", `connections/${enc(id)}/contacts/${enc(email)}`);
    result.replaceChildren(el("article", { class: "contact", "data-email": c.link.email },
      el("h2", {}, c.link.email),
      contactHeader(c),
      currentError(id, c),
      el("h3", {}, t("contact.fields_title")), fieldsTable(c),
      el("h3", {}, t("contact.history_title")), timeline(c.history)));
  } catch (e) {
    if (e instanceof Unauthorized) return signOut(e.message);
    result.replaceChildren(e instanceof ApiRefusal && e.status === 404
      ? el("p", { class: "none not-found" }, t("contact.not_found", { email }))
      : errorBox(e));
  }
}
