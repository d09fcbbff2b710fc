// The rules step: which HubSpot contacts (all, or members of lists) and which MailerLite
// subscribers (all, members of groups, or of segments) take part, and the target group, picked
// from what the apps have (with their sizes) or created here.

/** Checkboxes for `items` with a filter box; `selected` is the set of checked ids. */
function pickList(name, legend, items, selected, describe, onchange) {
  const filter = el("input", { type: "search", id: name + "-filter", autocomplete: "off" });
  const boxes = items.map((item) => {
    const id = `${name}-${item.id}`;
    const box = el("input", { type: "checkbox", id, value: item.id, checked: selected.has(item.id), onchange: () => {
      if (box.checked) selected.add(item.id); else selected.delete(item.id);
      onchange();
    } });
    return el("li", { "data-name": item.name.toLowerCase() }, box, el("label", { for: id }, item.name, " ", el("span", { class: "count" }, describe(item))));
  });
  const list = el("ul", { class: "pick-list", id: name }, boxes);
  filter.addEventListener("input", () => {
    const q = filter.value.trim().toLowerCase();
    for (const li of boxes) li.hidden = q !== "" && !li.dataset.name.includes(q);
  });
  return el("fieldset", { class: "pick" }, el("legend", {}, legend),
    items.length ? [field(t("rules.filter"), filter), list] : el("p", { class: "none" }, t("rules.nothing_to_pick")));
}

async function loadSources() {
  const base = `connections/${enc(draft.id)}`;
  const [lists, groups, segments] = await Promise.all([
    api("GET", `${base}/hubspot/lists`), api("GET", `${base}/mailerlite/groups`), api("GET", `${base}/mailerlite/segments`),
  ]);
  draft.sources = { lists: lists.lists, groups: groups.groups, segments: segments.segments };
}

async function renderRules() {
  const c = draft.config;
  byId("view").replaceChildren(el("p", { class: "none" }, t("common.loading")));
  if (!draft.sources) await loadSources();
  const { lists, groups, segments } = draft.sources;
  c.hubspot_rule = c.hubspot_rule || { type: "all" };
  c.mailerlite_rule = c.mailerlite_rule || { type: "all" };
  const listIds = new Set(c.hubspot_rule.list_ids || []);
  const groupIds = new Set(c.mailerlite_rule.group_ids || []);
  const segmentIds = new Set(c.mailerlite_rule.segment_ids || []);

  const hsLists = pickList("hubspot-lists", t("rules.hubspot.lists_legend"), lists, listIds,
    (l) => (l.size === null || l.size === undefined ? t("rules.size_unknown") : t("rules.contacts", { n: l.size })) + " · " + t("rules.list_type." + (l.processing_type === "DYNAMIC" ? "active" : "static")),
    () => { if (c.hubspot_rule.type === "lists") c.hubspot_rule = { type: "lists", list_ids: [...listIds] }; });
  const mlGroups = pickList("mailerlite-groups", t("rules.mailerlite.groups_legend"), groups, groupIds,
    (g) => t("rules.group_counts", { active: g.active, total: g.total }),
    () => { if (c.mailerlite_rule.type === "groups") c.mailerlite_rule = { type: "groups", group_ids: [...groupIds] }; });
  const mlSegments = pickList("mailerlite-segments", t("rules.mailerlite.segments_legend"), segments, segmentIds,
    (s) => t("rules.segment_counts", { n: s.active }),
    () => { if (c.mailerlite_rule.type === "segments") c.mailerlite_rule = { type: "segments", segment_ids: [...segmentIds] }; });
  const showHs = () => { hsLists.hidden = c.hubspot_rule.type !== "lists"; };
  const showMl = () => { mlGroups.hidden = c.mailerlite_rule.type !== "groups"; mlSegments.hidden = c.mailerlite_rule.type !== "segments"; };
  const hsRule = radios("hubspot-rule", t("rules.hubspot.legend"), [["all", t("rules.hubspot.all"), t("rules.hubspot.all_sentence")], ["lists", t("rules.hubspot.lists"), t("rules.hubspot.lists_sentence")]],
    c.hubspot_rule.type, (v) => { c.hubspot_rule = v === "lists" ? { type: "lists", list_ids: [...listIds] } : { type: "all" }; showHs(); });
  const mlRule = radios("mailerlite-rule", t("rules.mailerlite.legend"), [
    ["all", t("rules.mailerlite.all"), t("rules.mailerlite.all_sentence")],
    ["groups", t("rules.mailerlite.groups"), t("rules.mailerlite.groups_sentence")],
    ["segments", t("rules.mailerlite.segments"), t("rules.mailerlite.segments_sentence")],
  ], c.mailerlite_rule.type, (v) => {
    c.mailerlite_rule = v === "groups" ? { type: "groups", group_ids: [...groupIds] } : v === "segments" ? { type: "segments", segment_ids: [...segmentIds] } : { type: "all" };
    showMl();
  });
  showHs();
  showMl();

  // The target group: none, an existing group, or one created here.
  const target = el("select", { id: "target-group", onchange: () => { c.target_group = target.value || undefined; } },
    el("option", { value: "" }, t("rules.target.none")),
    groups.map((g) => el("option", { value: g.id, selected: c.target_group === g.id }, t("rules.target.option", { name: g.name, n: g.total }))));
  const newName = el("input", { type: "text", id: "new-group-name", autocomplete: "off" });
  const created = el("div", { "aria-live": "polite" });
  const create = el("button", { type: "button", id: "create-group", onclick: () => busy(create, async () => {
    const g = await api("POST", `connections/${enc(draft.id)}/mailerlite/groups`, { name: newName.value });
    draft.sources.groups.push(g);
    target.append(el("option", { value: g.id }, t("rules.target.option", { name: g.name, n: g.total })));
    target.value = g.id;
    c.target_group = g.id;
    newName.value = "";
    created.replaceChildren(el("p", { class: "ok" }, t("rules.target.created", { name: g.name })));
  }, (err) => created.replaceChildren(errorBox(err))) }, t("rules.target.create"));
  const targetBox = el("fieldset", {}, el("legend", {}, t("rules.target.legend")), el("p", { class: "hint" }, t("rules.target.intro")),
    field(t("rules.target.label"), target), el("div", { class: "inline" }, field(t("rules.target.new_label"), newName), create), created);

  frame("rules", [
    el("div", { class: "columns" },
      el("section", { "aria-label": t("side.hubspot") }, hsRule, hsLists),
      el("section", { "aria-label": t("side.mailerlite") }, mlRule, mlGroups, mlSegments)),
    targetBox,
  ], (problems) => checkStep("rules", problems));
}
