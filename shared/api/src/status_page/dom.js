// Shared helpers: the text catalogue, building elements (data only ever becomes text nodes),
// formatting, and calling the config API with the admin token.
const TOKEN_KEY = "hmsync-admin-token";
const byId = (id) => document.getElementById(id);
const enc = encodeURIComponent;

/** The catalogue's text for `key` with `{name}` placeholders filled; `{one, other}` entries
 * pick their form by `vars.n`. A missing key shows as ⟦key⟧ (the page tests look for it). */
function t(key, vars) {
  let v = key.split(".").reduce((o, k) => (o && typeof o === "object" ? o[k] : undefined), TEXT);
  if (v && typeof v === "object" && "other" in v) v = vars && vars.n === 1 ? v.one : v.other;
  if (typeof v !== "string") return "⟦" + key + "⟧";
  return v.replace(/\{(\w+)\}/g, (m, name) => {
    if (!vars || !(name in vars)) return m;
    const x = vars[name];
    return typeof x === "number" ? x.toLocaleString() : String(x);
  });
}

/** An element with properties/attributes and children (strings become text nodes). */
function el(tag, props, ...children) {
  const svg = ["svg", "g", "path", "line", "rect", "text", "title", "polyline", "circle"].includes(tag);
  const e = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.setAttribute("class", v);
    else if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
    // DOM properties where the element has one (value, checked, hidden…), attributes otherwise
    // (tabindex, colspan, novalidate, role, for, data-*, aria-*).
    else if (!svg && k !== "for" && k in e) e[k] = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

let uid = 0;
/** A fresh element id (for label/control pairs). */
const nextId = (prefix) => `${prefix}-${++uid}`;

/** A labelled control: `<label>` + control (+ an optional hint tied by aria-describedby). */
function field(label, control, hint) {
  if (!control.id) control.id = nextId("f");
  const parts = [el("label", { for: control.id }, label), control];
  if (hint) {
    const h = el("p", { class: "hint", id: nextId("h") }, hint);
    control.setAttribute("aria-describedby", h.id);
    parts.push(h);
  }
  return el("div", { class: "field" }, parts);
}

const fmtTime = (ms) => (ms ? new Date(ms).toLocaleString() : "—");
const fmtNumber = (n) => (typeof n === "number" ? n.toLocaleString() : "—");
function fmtDuration(seconds) {
  if (seconds === undefined || seconds === null) return t("time.unknown");
  if (seconds < 60) return t("time.seconds", { n: seconds });
  const m = Math.round(seconds / 60);
  if (m < 60) return t("time.minutes", { n: m });
  return t("time.hours_minutes", { h: Math.floor(m / 60), m: m % 60 });
}
const sideName = (s) => t("side." + (s || "none"));

/** Shows a status or error line at the top of the main area. */
function say(text, isError) {
  const m = byId("message");
  m.textContent = text || "";
  m.className = isError ? "error" : "";
}

/** A message to show once the next view is shown (e.g. "activated", then the status view). */
const afterNavigation = { text: "", isError: false };
function sayAfterNavigation(text) {
  afterNavigation.text = text;
  afterNavigation.isError = false;
}

class Unauthorized extends Error {}

/** A refusal of the config API, with its body (`error`, `action`, `problems`). */
class ApiRefusal extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error + (body.action ? " " + body.action : "") : t("errors.http", { status }));
    this.status = status;
    this.body = body || {};
  }
  get problems() {
    return this.body.problems || [];
  }
}

/** Calls the config API (relative URLs, so a path prefix such as an API stage works). */
async function api(method, path, body) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const init = { method, headers: { Authorization: "Bearer " + token, Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) throw new Unauthorized(t("login.refused"));
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiRefusal(response.status, data);
  return data;
}

/** A busy button while `work` runs; errors go to `report` (default: the message line). */
async function busy(button, work, report) {
  if (button) button.disabled = true;
  try {
    return await work();
  } catch (e) {
    if (e instanceof Unauthorized) signOut(e.message);
    else if (report) report(e);
    else say(e.message, true);
    return undefined;
  } finally {
    if (button && button.isConnected) button.disabled = false;
  }
}

/** A list of an API refusal's problems, each with what to do. */
function problemList(problems, describeField) {
  return el("ul", { class: "problems" }, problems.map((p) =>
    el("li", { "data-field": p.field },
      describeField ? el("strong", {}, describeField(p.field) + ": ") : null,
      p.message, " ", el("span", { class: "fix" }, p.fix))));
}

/** An error box: a refusal's message and its problems. */
function errorBox(e, describeField) {
  const box = el("div", { class: "banner problem", role: "alert" }, el("p", {}, e.message));
  if (e instanceof ApiRefusal && e.problems.length) box.append(problemList(e.problems, describeField));
  return box;
}

/** A badge whose meaning is in its text (colour only repeats it). */
const badge = (kind, text, attrs) => el("span", Object.assign({ class: "badge " + kind }, attrs || {}), text);
