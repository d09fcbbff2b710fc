// The preview step: a dry run of the config being edited (counts per side and sample contacts
// with field-level before/after), every problem activation would refuse, then Activate (a new
// connection: its config is saved and the initial sync starts) or Save (an active one: the
// change is saved with the version it was read at; a conflict is explained).

const PREVIEW_SAMPLES = 10;
const COUNT_ROWS = ["creates", "updates", "unchanged", "field_clears", "unsubscribes", "group_adds", "group_removals"];

/** The step that can fix a problem of `field`. */
function stepOf(field) {
  for (const [step, prefixes] of Object.entries(STEP_FIELDS)) {
    if (prefixes.some((f) => field === f || field.startsWith(f + ".") || field.startsWith(f + "["))) return step;
  }
  return null;
}

function problemsWithLinks(problems) {
  return el("ul", { class: "problems" }, problems.map((p) => {
    const step = stepOf(p.field);
    return el("li", { "data-field": p.field }, el("strong", {}, fieldName(p.field) + ": "), p.message, " ", el("span", { class: "fix" }, p.fix), " ",
      step && el("a", { href: stepHref(step) }, t("preview.fix_in", { step: t("steps." + step) })));
  }));
}

function changeField(c) {
  if (c.field.startsWith("group:")) {
    const id = c.field.slice(6);
    const g = draft.sources && draft.sources.groups.find((x) => x.id === id);
    return t("preview.group", { name: g ? g.name : id });
  }
  return c.field === "contact" ? t("preview.record") : c.field;
}

const reasonText = (r) => t("reason." + r.reason, { side: r.side ? sideName(r.side) : "" });

function previewResult(p) {
  const counts = el("table", { class: "preview-counts" }, el("caption", {}, t("preview.counts_caption", { hubspot: p.sampled_hubspot, mailerlite: p.sampled_mailerlite })),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, t("preview.what")), el("th", { scope: "col" }, t("side.hubspot")), el("th", { scope: "col" }, t("side.mailerlite")))),
    el("tbody", {}, COUNT_ROWS.map((k) => el("tr", { "data-count": k }, el("th", { scope: "row" }, t("preview.count." + k)),
      el("td", { "data-side": "hubspot" }, fmtNumber(p.hubspot[k])), el("td", { "data-side": "mailerlite" }, fmtNumber(p.mailerlite[k]))))));
  const facts = el("ul", { class: "preview-facts" },
    el("li", { "data-fact": "conflicts" }, t("preview.conflicts", { hubspot: p.conflicts.hubspot || 0, mailerlite: p.conflicts.mailerlite || 0 })),
    el("li", { "data-fact": "errors" }, t("preview.errors", { n: p.errors })),
    el("li", { "data-fact": "excluded" }, t("preview.excluded", { n: p.excluded_no_email })));
  const samples = p.samples.length
    ? p.samples.map((s) => el("details", { class: "sample", "data-email": s.email || "" },
      el("summary", {}, s.email || t("preview.no_email"), " — ", t("preview.changes", { n: s.changes.length }), s.errors.length ? " · " + t("preview.sample_errors", { n: s.errors.length }) : ""),
      el("div", { class: "table-wrap" }, el("table", {},
        el("thead", {}, el("tr", {}, ["app", "field", "before", "after", "why"].map((k) => el("th", { scope: "col" }, t("preview.col." + k))))),
        el("tbody", {}, s.changes.map((c) => el("tr", {}, el("td", {}, sideName(c.target)), el("td", {}, changeField(c)),
          el("td", { class: "before" }, valueText(c.before)), el("td", { class: "after" }, valueText(c.after)), el("td", {}, reasonText(c.reason))))))),
      s.errors.length ? el("ul", { class: "problems" }, s.errors.map((e) => el("li", {}, e))) : null))
    : [el("p", { class: "none" }, t("preview.no_samples"))];
  return el("div", { class: "preview" }, counts, facts, el("h3", {}, t("preview.samples_title")), samples);
}

/** Saves the config (PATCH with the version it was read at); a conflict is explained. */
async function saveConfig(into) {
  try {
    const saved = await api("PATCH", `connections/${enc(draft.id)}`, { version: draft.baseVersion, config: draft.config });
    draft.baseVersion = saved.version;
    draft.serverConfig = JSON.stringify(saved.config);
    return true;
  } catch (e) {
    if (!(e instanceof ApiRefusal) || e.status !== 409) throw e;
    const current = await api("GET", `connections/${enc(draft.id)}`);
    const mine = () => busy(null, async () => {
      draft.baseVersion = current.version;
      draft.serverConfig = JSON.stringify(current.config);
      keepDraft();
      await renderPreview();
    });
    const theirs = () => { forgetDraft(current.id); location.hash = `#/${current.lifecycle === "draft" ? "setup" : "edit"}/${enc(current.id)}/direction`; renderRoute(); };
    into.replaceChildren(el("div", { class: "banner approval conflict", role: "alert" },
      el("p", {}, el("strong", {}, t("conflict.title"))),
      el("p", {}, t("conflict.explain", { yours: draft.baseVersion, theirs: current.version, time: fmtTime(current.updated_at_ms) })),
      el("p", {}, t("conflict.choose")),
      el("div", { class: "step-buttons" },
        el("button", { type: "button", class: "keep-mine", onclick: mine }, t("conflict.keep_mine")),
        el("button", { type: "button", class: "take-theirs", onclick: theirs }, t("conflict.take_theirs")))));
    return false;
  }
}

async function renderPreview() {
  const result = el("div", { id: "preview-result", "aria-live": "polite" }, el("p", { class: "none" }, t("preview.running")));
  const outcome = el("div", { id: "preview-outcome", "aria-live": "polite" });
  const setup = draft.mode === "setup";
  const go = el("button", { type: "button", class: "primary", id: setup ? "activate" : "save-change", disabled: true, onclick: () => busy(go, async () => {
    outcome.replaceChildren();
    if (!(await saveConfig(outcome))) return;
    if (setup) await api("POST", `connections/${enc(draft.id)}/activate`);
    const id = draft.id;
    forgetDraft(id);
    sessionStorage.removeItem(draftKey(id) + "-prefilled");
    sayAfterNavigation(setup ? t("preview.activated") : t("preview.saved"));
    location.hash = "#/";
  }, (err) => outcome.replaceChildren(errorBox(err, fieldName))) }, setup ? t("preview.activate") : t("preview.save"));
  const again = el("button", { type: "button", id: "preview-again", onclick: () => run() }, t("preview.again"));
  frame("preview", [el("p", {}, setup ? t("preview.intro_setup") : t("preview.intro_edit")), result, outcome,
    el("div", { class: "step-buttons" }, again, go)]);

  async function run() {
    go.disabled = true;
    result.replaceChildren(el("p", { class: "none" }, t("preview.running")));
    await busy(again, async () => {
      try {
        const p = await api("POST", `connections/${enc(draft.id)}/preview`, { config: draft.config, samples: PREVIEW_SAMPLES });
        result.replaceChildren(previewResult(p));
        go.disabled = false;
      } catch (e) {
        if (e instanceof ApiRefusal && e.status === 422 && e.problems.length) {
          result.replaceChildren(el("div", { class: "banner problem", role: "alert" }, el("p", {}, t("preview.refused")), problemsWithLinks(e.problems)));
          return;
        }
        throw e;
      }
    }, (err) => result.replaceChildren(errorBox(err, fieldName)));
  }
  await run();
}
