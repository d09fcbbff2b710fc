// The fields step: the mapping table, pre-filled with the suggested pairs; rows added from
// searchable lists of both apps' fields with their types; per row a direction (read-only and
// company properties only HubSpot → MailerLite, with the reason), "never overwrite with a
// blank" and a conflict-winner override; option fields show how their values map and which
// MailerLite values match no option. Problems show under their row, as the API names them,
// before anything is saved.

function hsType(p) {
  if (p.type === "enumeration") return t("types.hs.enumeration_" + (p.field_type === "checkbox" ? "checkbox" : "select"));
  const known = ["string", "number", "bool", "date", "datetime"].includes(p.type);
  return known ? t("types.hs." + p.type) : t("types.hs.other", { type: p.type });
}
const mlType = (f) => t("types.ml." + f.type);
const isOptionProperty = (p) => p && p.type === "enumeration" && (p.options || []).length > 0;

function hsProperty(m) {
  const s = draft.fields && draft.fields.schemas;
  if (!s) return null;
  const list = m.hubspot_object === "company" ? s.hubspot_company : s.hubspot_contact;
  return list.find((p) => p.name === m.hubspot_property) || null;
}
const mlField = (key) => (draft.fields && draft.fields.schemas ? draft.fields.schemas.mailerlite.find((f) => f.key === key) || null : null);

/** Why a mapping cannot flow some way: the reason, and the only direction it may take. */
function directionLimit(m) {
  const p = hsProperty(m);
  if (m.hubspot_object === "company") return { only: "hubspot_to_mailerlite", reason: t("mapping.limit.company") };
  if (p && (p.read_only || p.calculated)) return { only: "hubspot_to_mailerlite", reason: t("mapping.limit.read_only") };
  const d = draft.config.direction || "two_way";
  if (d !== "two_way") return { only: d, connection: true, reason: t("mapping.limit.connection", { direction: t("direction." + d) }) };
  return null;
}

/** Whether `limit` rules out direction `d` (a one-way connection still allows "both ways",
 * which then flows its one way). */
const ruledOut = (limit, d) => !!limit && d !== limit.only && !(limit.connection && d === "two_way");

let checkTimer = null;
/** Checks the mappings a moment after the last change and puts each problem under its row. */
function scheduleCheck(table) {
  clearTimeout(checkTimer);
  checkTimer = setTimeout(() => checkMappings(table), 250);
}

async function checkMappings(table) {
  let result;
  try {
    result = { problems: await configProblems() };
  } catch (e) {
    if (e instanceof Unauthorized) return signOut(e.message);
    return;
  }
  for (const row of table.querySelectorAll("tr.row-problems")) {
    const i = Number(row.dataset.index);
    const mine = result.problems.filter((p) => p.field.startsWith(`config.mappings[${i}].`));
    row.hidden = mine.length === 0;
    row.firstChild.replaceChildren(mine.length ? problemList(mine, fieldName) : "");
    const main = row.previousElementSibling;
    if (main) main.classList.toggle("has-problem", mine.length > 0);
  }
  const summary = byId("mapping-summary");
  if (summary) {
    const n = result.problems.filter((p) => p.field.startsWith("config.mappings")).length;
    summary.textContent = n ? t("mapping.problems", { n }) : t("mapping.no_problems");
    summary.className = n ? "error" : "ok";
  }
}

async function showOptionValues(m, into, button) {
  await busy(button, async () => {
    const o = await api("POST", `connections/${enc(draft.id)}/fields/options`, { mapping: m, direction: draft.config.direction || "two_way" });
    const options = el("table", { class: "option-values" }, el("caption", {}, t("mapping.options.caption", { property: m.hubspot_property })),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, t("mapping.options.hubspot")), el("th", { scope: "col" }, t("mapping.options.mailerlite")))),
      el("tbody", {}, o.options.map((x) => el("tr", {}, el("td", {}, x.label, " ", el("code", {}, x.value)), el("td", {}, x.mailerlite_value)))));
    const found = o.mailerlite_values.length
      ? el("table", { class: "mailerlite-values" }, el("caption", {}, t("mapping.options.found_caption", { field: m.mailerlite_field })),
        el("thead", {}, el("tr", {}, ["value", "subscribers", "becomes"].map((k) => el("th", { scope: "col" }, t("mapping.options.col." + k))))),
        el("tbody", {}, o.mailerlite_values.map((v) => el("tr", { class: v.hubspot_value === null ? "unmatched" : "" },
          el("td", {}, v.value), el("td", {}, fmtNumber(v.subscribers)),
          el("td", {}, v.hubspot_value === null ? badge("bad", t("mapping.options.no_match")) : v.hubspot_value)))))
      : el("p", { class: "hint" }, t("mapping.options.one_way"));
    const unmatched = o.unmatched.length
      ? el("p", { class: "error unmatched-summary", role: "note" }, t("mapping.options.unmatched", { n: o.unmatched.length, values: o.unmatched.join(", ") }))
      : o.mailerlite_values.length ? el("p", { class: "ok" }, t("mapping.options.all_match")) : null;
    into.replaceChildren(options, found, unmatched);
  }, (err) => into.replaceChildren(errorBox(err)));
}

function mappingRows(table, m, i, rerender) {
  const mappings = draft.config.mappings;
  const p = hsProperty(m);
  const f = mlField(m.mailerlite_field);
  const who = `${m.hubspot_property} ↔ ${m.mailerlite_field}`;
  const changed = () => { keepDraft(); scheduleCheck(table); };
  const limit = directionLimit(m);
  const direction = el("select", { id: `m${i}-direction`, "aria-label": t("mapping.aria.direction", { who }), onchange: () => { m.direction = direction.value; changed(); rerender(); } },
    ["two_way", "hubspot_to_mailerlite", "mailerlite_to_hubspot"].map((d) => el("option", {
      value: d, selected: (m.direction || "two_way") === d, disabled: ruledOut(limit, d),
    }, t("mapping.direction." + d))));
  const oneWay = (m.direction || "two_way") !== "two_way";
  const winner = el("select", { id: `m${i}-winner`, disabled: oneWay, "aria-label": t("mapping.aria.winner", { who }), onchange: () => { m.conflict_winner = winner.value || undefined; changed(); } },
    el("option", { value: "" }, t("mapping.winner.default", { side: sideName(draft.config.conflict_winner || "hubspot") })),
    ["hubspot", "mailerlite"].map((s) => el("option", { value: s, selected: m.conflict_winner === s }, sideName(s))));
  const blank = el("input", { type: "checkbox", id: `m${i}-blank`, checked: !!m.never_overwrite_with_blank, onchange: () => { m.never_overwrite_with_blank = blank.checked; changed(); } });
  const values = el("div", { class: "values", "aria-live": "polite" });
  const valuesRow = el("tr", { class: "values-row", hidden: true }, el("td", { colspan: 6 }, values));
  const valuesButton = isOptionProperty(p) && el("button", { type: "button", class: "show-values", "aria-expanded": "false", "aria-label": t("mapping.aria.values", { who }), onclick: () => {
    const open = valuesRow.hidden;
    valuesRow.hidden = !open;
    valuesButton.setAttribute("aria-expanded", String(open));
    if (open) showOptionValues(m, values, valuesButton);
  } }, t("mapping.values"));
  const remove = el("button", { type: "button", class: "remove", "aria-label": t("mapping.aria.remove", { who }), onclick: () => { mappings.splice(i, 1); changed(); rerender(); } }, t("mapping.remove"));
  const hsCell = el("td", { class: "hs" },
    el("span", { class: "field-label" }, m.hubspot_object === "company" ? t("mapping.company_prefix", { name: p ? p.label : m.hubspot_property }) : (p ? p.label : m.hubspot_property)),
    el("code", {}, m.hubspot_property), p ? el("span", { class: "type" }, hsType(p)) : el("span", { class: "type missing" }, t("mapping.unknown_property")),
    p && (p.read_only || p.calculated) ? badge("muted", t("mapping.read_only")) : null);
  const mlCell = el("td", { class: "ml" },
    el("span", { class: "field-label" }, f ? f.name : m.mailerlite_field), el("code", {}, m.mailerlite_field),
    f ? el("span", { class: "type" }, mlType(f)) : el("span", { class: "type missing" }, t("mapping.unknown_field")));
  const dirCell = el("td", { class: "direction" + (limit ? " limited" : "") }, direction,
    limit ? el("p", { class: "hint limit", id: `m${i}-limit` }, limit.reason) : null);
  if (limit) direction.setAttribute("aria-describedby", `m${i}-limit`);
  const row = el("tr", { class: "mapping", "data-index": i, "data-property": m.hubspot_property, "data-field": m.mailerlite_field },
    hsCell, dirCell, mlCell,
    el("td", { class: "blank" }, blank, el("label", { for: blank.id, class: "visually-hidden" }, t("mapping.aria.blank", { who }))),
    el("td", { class: "winner" }, winner, oneWay ? el("p", { class: "hint" }, t("mapping.winner.one_way")) : null),
    el("td", { class: "row-actions" }, valuesButton, remove));
  const problems = el("tr", { class: "row-problems", "data-index": i, hidden: true }, el("td", { colspan: 6, role: "alert" }));
  return [row, valuesRow, problems];
}

/** A search box over a list box of fields; answers the chosen value. */
function fieldPicker(name, label, items) {
  const search = el("input", { type: "search", id: name + "-search", autocomplete: "off", "aria-controls": name });
  const select = el("select", { id: name, size: 7 }, items.map(([value, text]) => el("option", { value }, text)));
  search.addEventListener("input", () => {
    const q = search.value.trim().toLowerCase();
    let first = null;
    for (const o of select.options) {
      o.hidden = q !== "" && !o.textContent.toLowerCase().includes(q);
      if (!o.hidden && !first) first = o;
    }
    if (first && (select.selectedIndex < 0 || select.options[select.selectedIndex].hidden)) select.value = first.value;
  });
  return { node: el("div", { class: "picker" }, field(t("mapping.add.search", { app: label }), search), field(t("mapping.add.pick", { app: label }), select)), select };
}

function addRow(rerender) {
  const s = draft.fields.schemas;
  const hs = s.hubspot_contact.filter((p) => p.name !== "email").map((p) => ["contact:" + p.name, `${p.label} (${p.name}) · ${hsType(p)}${p.read_only || p.calculated ? " · " + t("mapping.read_only") : ""}`])
    .concat(s.hubspot_company.map((p) => ["company:" + p.name, `${t("mapping.company_prefix", { name: p.label })} (${p.name}) · ${hsType(p)}`]));
  const ml = s.mailerlite.filter((f) => f.key !== "email").map((f) => [f.key, `${f.name} (${f.key}) · ${mlType(f)}`]);
  const left = fieldPicker("add-hubspot", t("side.hubspot"), hs);
  const right = fieldPicker("add-mailerlite", t("side.mailerlite"), ml);
  const note = el("p", { class: "hint", "aria-live": "polite" });
  const add = el("button", { type: "button", id: "add-mapping", onclick: () => {
    if (!left.select.value || !right.select.value) {
      note.textContent = t("mapping.add.pick_both");
      return;
    }
    const [object, property] = left.select.value.split(/:(.*)/s);
    const m = { hubspot_object: object, hubspot_property: property, mailerlite_field: right.select.value, direction: "two_way", never_overwrite_with_blank: false };
    const limit = directionLimit(m);
    if (limit && limit.only === "hubspot_to_mailerlite") m.direction = "hubspot_to_mailerlite";
    draft.config.mappings.push(m);
    keepDraft();
    rerender(true);
  } }, t("mapping.add.button"));
  return el("fieldset", { class: "add-mapping" }, el("legend", {}, t("mapping.add.legend")), el("div", { class: "columns" }, left.node, right.node), add, note);
}

async function loadFields(refresh) {
  const base = `connections/${enc(draft.id)}/fields`;
  draft.fields = refresh ? await api("POST", `${base}/refresh`) : await api("GET", base);
  if (!draft.fields.schemas) draft.fields = await api("POST", `${base}/refresh`);
  // Reading the fields stores them with the connection (a new version). The version the edit
  // started from stays unless the config itself is still what it was: a change by someone else
  // is found when saving, not hidden here.
  const conn = await api("GET", `connections/${enc(draft.id)}`);
  if (JSON.stringify(conn.config) === draft.serverConfig) draft.baseVersion = conn.version;
  keepDraft();
}

async function renderFields() {
  byId("view").replaceChildren(el("p", { class: "none" }, t("common.loading")));
  if (!draft.fields) await loadFields(false);
  const c = draft.config;
  c.mappings = c.mappings || [];
  if (draft.mode === "setup" && c.mappings.length === 0 && !sessionStorage.getItem(draftKey(draft.id) + "-prefilled")) {
    c.mappings = JSON.parse(JSON.stringify(draft.fields.suggested_mappings));
    sessionStorage.setItem(draftKey(draft.id) + "-prefilled", "1");
    keepDraft();
  }
  const tbody = el("tbody");
  const table = el("table", { class: "mappings", id: "mappings" },
    el("caption", {}, t("mapping.caption")),
    el("thead", {}, el("tr", {}, ["hubspot", "direction", "mailerlite", "blank", "winner", "actions"].map((k) => el("th", { scope: "col" }, t("mapping.col." + k))))),
    tbody);
  const rerender = (focusLast) => {
    const email = el("tr", { class: "email-row" }, el("td", { class: "hs" }, el("span", { class: "field-label" }, t("mapping.email")), el("code", {}, "email")),
      el("td", {}, t("mapping.direction.two_way")), el("td", { class: "ml" }, el("span", { class: "field-label" }, t("mapping.email")), el("code", {}, "email")),
      el("td", { colspan: 3, class: "hint" }, t("mapping.email_fixed")));
    tbody.replaceChildren(email, ...c.mappings.flatMap((m, i) => mappingRows(table, m, i, rerender)));
    scheduleCheck(table);
    if (focusLast === true) {
      const rows = tbody.querySelectorAll("tr.mapping");
      if (rows.length) rows[rows.length - 1].querySelector("select").focus();
    }
  };
  rerender();
  const refresh = el("button", { type: "button", id: "refresh-fields", onclick: () => busy(refresh, async () => {
    await loadFields(true);
    rerender();
    say(t("mapping.refreshed"), false);
  }) }, t("mapping.refresh"));
  frame("fields", [
    el("p", {}, t("mapping.intro")),
    el("div", { class: "toolbar" }, refresh, el("span", { id: "mapping-summary", "aria-live": "polite" })),
    el("div", { class: "table-wrap" }, table),
    addRow(rerender),
  ], (problems) => checkStep("fields", problems));
}
