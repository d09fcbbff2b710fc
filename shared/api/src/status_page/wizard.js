// The setup screens: a new connection, or an active one edited through the same screens. The
// config being edited lives in the page (and the tab's sessionStorage, so that the HubSpot
// install's round trip does not lose it) until the preview step saves it with the version it
// was read at. Every step checks its part with POST …/config/check before moving on.
const STEPS = ["hubspot", "mailerlite", "direction", "rules", "fields", "options", "preview"];
/** Which config fields each step edits (problems are shown on the step that can fix them). */
const STEP_FIELDS = {
  direction: ["config.direction", "config.conflict_winner", "config.name"],
  rules: ["config.hubspot_rule", "config.mailerlite_rule", "config.target_group"],
  fields: ["config.mappings"],
  options: ["config.safety_valve", "config.engagement"],
};
const draftKey = (id) => "hmsync-draft-" + id;

/** The connection being set up or edited. */
let draft = null;

async function loadDraft(id, mode) {
  const conn = await api("GET", `connections/${enc(id)}`);
  const kept = JSON.parse(sessionStorage.getItem(draftKey(id)) || "null");
  const config = kept && kept.baseVersion === conn.version ? kept.config : JSON.parse(JSON.stringify(conn.config));
  draft = {
    id, mode, conn, config,
    baseVersion: conn.version,
    serverConfig: JSON.stringify(conn.config),
    credentials: conn.credentials,
    accounts: null, fields: null, sources: null,
  };
  return draft;
}

function keepDraft() {
  if (draft) sessionStorage.setItem(draftKey(draft.id), JSON.stringify({ baseVersion: draft.baseVersion, config: draft.config }));
}

function forgetDraft(id) {
  sessionStorage.removeItem(draftKey(id));
  draft = null;
}

/** Where each step lives. */
const stepHref = (step) => `#/${draft.mode}/${enc(draft.id)}/${step}`;

/** The frame of every step: title, the steps as links, the step's content and its buttons. */
function frame(step, content, onNext) {
  const index = STEPS.indexOf(step);
  const title = draft.mode === "edit" ? t("wizard.edit_title", { name: draft.config.name }) : t("wizard.setup_title", { name: draft.config.name });
  const steps = el("ol", { class: "stepper" }, STEPS.map((s, i) => el("li", { class: i < index ? "done" : i === index ? "current" : "" },
    el("a", { href: stepHref(s), "aria-current": i === index ? "step" : null },
      el("span", { class: "step-number", "aria-hidden": "true" }, String(i + 1)), t("steps." + s),
      i < index ? el("span", { class: "visually-hidden" }, " " + t("wizard.step_done")) : null))));
  const problems = el("div", { class: "step-problems", "aria-live": "polite" });
  const back = index > 0 ? el("a", { class: "button", href: stepHref(STEPS[index - 1]) }, t("wizard.back")) : el("a", { class: "button", href: "#/" }, t("wizard.cancel"));
  const next = onNext && el("button", { type: "submit", class: "primary next" }, t("wizard.continue"));
  const form = el("form", { class: "step", "data-step": step, novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    if (!onNext) return;
    problems.replaceChildren();
    await busy(next, async () => {
      const ok = await onNext(problems);
      if (ok !== false) {
        keepDraft();
        location.hash = stepHref(STEPS[index + 1]);
      }
    }, (err) => problems.replaceChildren(errorBox(err, fieldName)));
  } }, content, problems, el("div", { class: "step-buttons" }, back, next));
  const heading = el("h2", { tabindex: "-1", class: "step-title" }, t("wizard.step_of", { n: index + 1, total: STEPS.length, title: t("steps." + step) }));
  byId("view").replaceChildren(el("h1", { class: "view-title" }, title), el("nav", { "aria-label": t("wizard.steps_label") }, steps), heading, form);
  heading.focus();
  return form;
}

/** A config field path in words (`config.mappings[2].direction` → "Mapping 3: direction"). */
function fieldName(path) {
  const m = /^config\.mappings\[(\d+)\]\.(\w+)$/.exec(path || "");
  if (m) return t("mapping.row_field", { n: Number(m[1]) + 1, field: t("mapping.col." + m[2]) });
  const key = "config_fields." + String(path || "").replace(/^config\./, "").replace(/\[\d+\]/g, "").replace(/\./g, "_");
  const text = t(key);
  return text.startsWith("⟦") ? path : text;
}

/** Checks the config being edited; shows the problems of `step` and answers whether there are none. */
/** The problems of the config being edited, as saving it would name them (none: []). */
async function configProblems() {
  try {
    return (await api("POST", `connections/${enc(draft.id)}/config/check`, { config: draft.config })).problems;
  } catch (e) {
    if (e instanceof ApiRefusal && e.status === 422) return e.problems;
    throw e;
  }
}

async function checkStep(step, into) {
  const problems = await configProblems();
  const prefixes = STEP_FIELDS[step] || [];
  const mine = problems.filter((p) => prefixes.some((f) => p.field === f || p.field.startsWith(f + ".") || p.field.startsWith(f + "[")));
  if (mine.length) {
    into.replaceChildren(el("div", { class: "banner problem", role: "alert" }, el("p", {}, t("wizard.fix_first")), problemList(mine, fieldName)));
    return false;
  }
  return true;
}

/** Puts refused credentials next to their inputs (`problems` by request field). */
function showFieldProblems(inputs, problems) {
  for (const [name, input] of Object.entries(inputs)) {
    const old = byId(input.id + "-problem");
    if (old) old.remove();
    input.removeAttribute("aria-invalid");
    const p = problems.find((x) => x.field === name);
    if (!p) continue;
    input.setAttribute("aria-invalid", "true");
    const note = el("p", { class: "field-problem", id: input.id + "-problem" }, p.message, " ", el("span", { class: "fix" }, p.fix));
    input.setAttribute("aria-describedby", [input.getAttribute("aria-describedby"), note.id].filter(Boolean).join(" "));
    input.closest(".field").append(note);
  }
}

// ---- new connection ----------------------------------------------------------------------

function renderNew() {
  const name = el("input", { type: "text", id: "new-name", name: "name", required: true, autocomplete: "off", value: t("wizard.default_name") });
  const problems = el("div", { "aria-live": "polite" });
  const submit = el("button", { type: "submit", class: "primary", id: "create" }, t("wizard.create"));
  const form = el("form", { class: "step", id: "new-connection", onsubmit: (e) => {
    e.preventDefault();
    busy(submit, async () => {
      const created = await api("POST", "connections", { config: { name: name.value.trim(), mappings: [] } });
      location.hash = `#/setup/${enc(created.id)}/hubspot`;
    }, (err) => problems.replaceChildren(errorBox(err, fieldName)));
  } }, el("p", {}, t("wizard.new_intro")), field(t("wizard.name_label"), name, t("wizard.name_hint")), problems, el("div", { class: "step-buttons" }, el("a", { class: "button", href: "#/" }, t("wizard.cancel")), submit));
  byId("view").replaceChildren(el("h1", { class: "view-title" }, t("wizard.new_title")), form);
  name.focus();
  name.select();
}

// ---- connect HubSpot ------------------------------------------------------------------------

function hubspotSummary(a) {
  if (!a) return el("p", { class: "none", id: "hubspot-account" }, t("connect.hubspot.none"));
  const h = a;
  return el("div", { class: "account connected", id: "hubspot-account", "data-portal-id": h.portal_id },
    el("p", {}, badge("ok", t("connect.connected")), " ", t("connect.hubspot.portal", { id: String(h.portal_id) }), h.domain ? " · " + h.domain : ""),
    h.scopes ? el("p", { class: "scopes" }, t("connect.hubspot.scopes", { scopes: h.scopes.join(", ") })) : el("p", { class: "hint" }, t("connect.hubspot.scopes_unknown")),
    h.missing_scopes.length ? el("p", { class: "error", role: "alert" }, t("connect.hubspot.missing", { scopes: h.missing_scopes.join(", ") })) : null,
    h.missing_optional_scopes.length ? el("p", { class: "hint" }, t("connect.hubspot.missing_optional", { scopes: h.missing_optional_scopes.join(", ") })) : null);
}

async function renderHubSpot() {
  const summary = el("div", {}, el("p", { class: "none" }, t("common.loading")));
  const mode = draft.credentials.hubspot && draft.credentials.hubspot.startsWith("oauth") ? "oauth" : "token";
  const radio = (value) => el("input", { type: "radio", name: "hubspot-auth", value, id: "hubspot-auth-" + value, checked: value === mode, onchange: () => show(value) });
  const token = el("input", { type: "password", id: "hubspot-token", autocomplete: "off", spellcheck: false });
  const appId = el("input", { type: "text", inputMode: "numeric", id: "hubspot-app-id", autocomplete: "off", value: draft.credentials.hubspot_app_id || "" });
  const secret = el("input", { type: "password", id: "hubspot-client-secret", autocomplete: "off" });
  const clientId = el("input", { type: "text", id: "hubspot-client-id", autocomplete: "off", spellcheck: false });
  const oauthSecret = el("input", { type: "password", id: "hubspot-oauth-secret", autocomplete: "off" });
  const save = el("button", { type: "button", id: "hubspot-save", onclick: () => connect() }, t("connect.check_and_save"));
  const install = el("button", { type: "button", id: "hubspot-install", onclick: () => connect() }, t("connect.hubspot.install"));
  const tokenForm = el("fieldset", { class: "auth-token" }, el("legend", {}, t("connect.hubspot.token_legend")),
    el("p", { class: "hint" }, t("connect.hubspot.token_where")),
    field(t("connect.hubspot.token"), token), field(t("connect.hubspot.app_id"), appId, t("connect.hubspot.app_id_hint")),
    field(t("connect.hubspot.client_secret"), secret, t("connect.hubspot.client_secret_hint")), save);
  const oauthAppId = el("input", { type: "text", inputMode: "numeric", id: "hubspot-oauth-app-id", autocomplete: "off", value: appId.value });
  const oauthForm = el("fieldset", { class: "auth-oauth" }, el("legend", {}, t("connect.hubspot.oauth_legend")),
    el("p", { class: "hint" }, t("connect.hubspot.oauth_where", { redirect: location.href.split("#")[0].replace(/\/status$/, "") + "/oauth/hubspot/callback" })),
    field(t("connect.hubspot.client_id"), clientId), field(t("connect.hubspot.oauth_secret"), oauthSecret),
    field(t("connect.hubspot.app_id"), oauthAppId, t("connect.hubspot.app_id_hint")), install);
  const show = (value) => { tokenForm.hidden = value !== "token"; oauthForm.hidden = value !== "oauth"; };
  show(mode);
  const choice = el("fieldset", { class: "choice" }, el("legend", {}, t("connect.hubspot.how")),
    el("div", { class: "option" }, radio("token"), el("label", { for: "hubspot-auth-token" }, t("connect.hubspot.by_token"))),
    el("div", { class: "option" }, radio("oauth"), el("label", { for: "hubspot-auth-oauth" }, t("connect.hubspot.by_oauth"))));
  const note = el("div", { "aria-live": "polite" });
  const inputs = () => oauthForm.hidden
    ? { "hubspot.access_token": token, hubspot_app_id: appId, hubspot_client_secret: secret }
    : { "hubspot.client_id": clientId, "hubspot.client_secret": oauthSecret, hubspot_app_id: oauthAppId };

  async function refresh() {
    const accounts = await api("GET", `connections/${enc(draft.id)}/accounts`);
    draft.accounts = accounts;
    summary.replaceChildren(hubspotSummary(accounts.hubspot));
  }

  async function connect() {
    const oauth = !oauthForm.hidden;
    const button = oauth ? install : save;
    note.replaceChildren();
    await busy(button, async () => {
      const ids = (oauth ? oauthAppId : appId).value.trim();
      const body = oauth
        ? { hubspot: { type: "oauth", client_id: clientId.value.trim(), client_secret: oauthSecret.value.trim() } }
        : { hubspot: { type: "token", access_token: token.value.trim() }, hubspot_client_secret: secret.value.trim() };
      if (ids) body.hubspot_app_id = Number(ids);
      showFieldProblems(inputs(), []);
      try {
        draft.credentials = await api("PUT", `connections/${enc(draft.id)}/credentials`, body);
      } catch (e) {
        if (e instanceof ApiRefusal && e.status === 422) {
          showFieldProblems(inputs(), e.problems);
          note.replaceChildren(errorBox(e, (f) => t("connect.fields." + f.replace(/\./g, "_"))));
          return;
        }
        throw e;
      }
      keepDraft();
      if (oauth) {
        const started = await api("GET", `connections/${enc(draft.id)}/oauth/hubspot/start?redirect=false`);
        location.assign(started.authorize_url);
        return;
      }
      token.value = "";
      secret.value = "";
      await refresh();
      say(t("connect.hubspot.saved"), false);
    }, (err) => note.replaceChildren(errorBox(err)));
  }

  frame("hubspot", [el("p", {}, t("connect.hubspot.intro")), summary, choice, tokenForm, oauthForm, note], async (problems) => {
    if (!draft.accounts || !draft.accounts.hubspot) {
      problems.replaceChildren(el("p", { class: "error", role: "alert" }, t("connect.hubspot.required")));
      return false;
    }
    return true;
  });
  await busy(null, refresh, (err) => summary.replaceChildren(errorBox(err)));
}

// ---- connect MailerLite ---------------------------------------------------------------------

async function renderMailerLite() {
  const summary = el("div", { id: "mailerlite-account" }, el("p", { class: "none" }, t("common.loading")));
  const key = el("input", { type: "password", id: "mailerlite-key", autocomplete: "off", spellcheck: false });
  const note = el("div", { "aria-live": "polite" });
  const save = el("button", { type: "button", id: "mailerlite-save", onclick: () => connect() }, t("connect.check_and_save"));
  const show = (a) => summary.replaceChildren(a
    ? el("div", { class: "account connected" }, el("p", {}, badge("ok", t("connect.connected")), " ",
      a.name ? t("connect.mailerlite.account", { name: a.name }) : t("connect.mailerlite.account_unnamed"), " · ", t("connect.mailerlite.subscribers", { n: a.subscribers })))
    : el("p", { class: "none" }, t("connect.mailerlite.none")));

  async function refresh() {
    draft.accounts = await api("GET", `connections/${enc(draft.id)}/accounts`);
    show(draft.accounts.mailerlite);
  }

  async function connect() {
    note.replaceChildren();
    showFieldProblems({ mailerlite_api_key: key }, []);
    await busy(save, async () => {
      try {
        draft.credentials = await api("PUT", `connections/${enc(draft.id)}/credentials`, { mailerlite_api_key: key.value.trim() });
      } catch (e) {
        if (e instanceof ApiRefusal && e.status === 422) {
          showFieldProblems({ mailerlite_api_key: key }, e.problems);
          return;
        }
        throw e;
      }
      key.value = "";
      await refresh();
      say(t("connect.mailerlite.saved"), false);
    }, (err) => note.replaceChildren(errorBox(err)));
  }

  frame("mailerlite", [el("p", {}, t("connect.mailerlite.intro")), summary,
    el("fieldset", {}, el("legend", {}, t("connect.mailerlite.legend")),
      field(t("connect.mailerlite.key"), key, t("connect.mailerlite.key_hint")),
      el("p", { class: "hint ip-hint" }, t("connect.mailerlite.ip_hint")), save), note], async (problems) => {
    if (!draft.accounts || !draft.accounts.mailerlite) {
      problems.replaceChildren(el("p", { class: "error", role: "alert" }, t("connect.mailerlite.required")));
      return false;
    }
    return true;
  });
  await busy(null, refresh, (err) => summary.replaceChildren(errorBox(err)));
}

// ---- direction ------------------------------------------------------------------------------

/** A group of radio buttons, each with one sentence. */
function radios(name, legend, choices, current, onchange) {
  return el("fieldset", { class: "choice", id: name }, el("legend", {}, legend), choices.map(([value, label, sentence]) => {
    const id = `${name}-${value}`;
    return el("div", { class: "option" },
      el("input", { type: "radio", name, value, id, checked: value === current, onchange: () => onchange(value), "aria-describedby": id + "-d" }),
      el("label", { for: id }, label), el("p", { class: "hint", id: id + "-d" }, sentence));
  }));
}

function renderDirection() {
  const c = draft.config;
  const name = el("input", { type: "text", id: "connection-name", value: c.name, required: true, onchange: () => { c.name = name.value.trim(); } });
  frame("direction", [
    field(t("wizard.name_label"), name),
    radios("direction", t("direction.legend"), ["two_way", "hubspot_to_mailerlite", "mailerlite_to_hubspot"].map((d) => [d, t("direction." + d), t("direction." + d + "_sentence")]),
      c.direction || "two_way", (v) => { c.direction = v; }),
    radios("conflict-winner", t("direction.winner_legend"), ["hubspot", "mailerlite"].map((s) => [s, t("direction.winner." + s), t("direction.winner." + s + "_sentence")]),
      c.conflict_winner || "hubspot", (v) => { c.conflict_winner = v; }),
  ], (problems) => {
    c.name = name.value.trim();
    return checkStep("direction", problems);
  });
}

// ---- safety valve and engagement ---------------------------------------------------------

function renderOptions() {
  const c = draft.config;
  c.safety_valve = Object.assign({ max_group_removals: 100, max_unsubscribes: 100, max_field_clears: 500 }, c.safety_valve || {});
  c.engagement = Object.assign({ enabled: true, notes: false, unsubscribe_in_hubspot: false }, c.engagement || {});
  const number = (key) => {
    const input = el("input", { type: "number", min: 0, step: 1, id: "safety-" + key, value: c.safety_valve[key], onchange: () => { c.safety_valve[key] = Math.max(0, Math.floor(Number(input.value) || 0)); } });
    return field(t("options.safety." + key), input, t("options.safety." + key + "_hint"));
  };
  const check = (key) => {
    const box = el("input", { type: "checkbox", id: "engagement-" + key, checked: !!c.engagement[key], onchange: () => { c.engagement[key] = box.checked; } });
    return el("div", { class: "field check" }, box, el("label", { for: box.id }, t("options.engagement." + key)), el("p", { class: "hint" }, t("options.engagement." + key + "_hint")));
  };
  const basis = el("select", { id: "engagement-legal-basis", onchange: () => { c.engagement.legal_basis = basis.value || undefined; } },
    el("option", { value: "" }, t("options.engagement.no_basis")),
    LEGAL_BASES.map((b) => el("option", { value: b, selected: c.engagement.legal_basis === b }, t("legal_basis." + b))));
  frame("options", [
    el("fieldset", {}, el("legend", {}, t("options.safety.legend")), el("p", { class: "hint" }, t("options.safety.intro")),
      number("max_group_removals"), number("max_unsubscribes"), number("max_field_clears")),
    el("fieldset", {}, el("legend", {}, t("options.engagement.legend")), el("p", { class: "hint" }, t("options.engagement.intro")),
      check("enabled"), check("notes"), check("unsubscribe_in_hubspot"), field(t("options.engagement.legal_basis"), basis, t("options.engagement.legal_basis_hint"))),
  ], (problems) => checkStep("options", problems));
}

const LEGAL_BASES = ["LEGITIMATE_INTEREST_PQL", "LEGITIMATE_INTEREST_CLIENT", "PERFORMANCE_OF_CONTRACT", "CONSENT_WITH_NOTICE", "NON_GDPR", "PROCESS_AND_STORE", "LEGITIMATE_INTEREST_OTHER"];

/** The setup or edit screens of connection `id` at `step`. */
async function renderWizard(mode, id, step) {
  if (!draft || draft.id !== id || draft.mode !== mode) await loadDraft(id, mode);
  if (!STEPS.includes(step)) step = STEPS[0];
  const screens = { hubspot: renderHubSpot, mailerlite: renderMailerLite, direction: renderDirection, rules: renderRules, fields: renderFields, options: renderOptions, preview: renderPreview };
  await screens[step]();
}
