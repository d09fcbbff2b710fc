// The page itself: sign-in with the admin token (kept in this tab's sessionStorage), the
// navigation, and the views by URL fragment:
//   #/                          the status of every connection (refreshed every 5 seconds)
//   #/new                       a new connection
//   #/setup/{id}/{step}         setting up a draft connection
//   #/edit/{id}/{step}          editing an active connection through the same screens
//   #/contacts/{id}[/{email}]   contact lookup
const REFRESH_MS = 5000;
let timer = null;

/** The view the fragment names. */
function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "new") return { view: "new" };
  if ((parts[0] === "setup" || parts[0] === "edit") && parts[1]) return { view: "wizard", mode: parts[0], id: parts[1], step: parts[2] || STEPS[0] };
  if (parts[0] === "contacts" && parts[1]) return { view: "contacts", id: parts[1], email: parts.slice(2).join("/") };
  return { view: "overview" };
}

function renderNav(current) {
  const link = (href, key, view) => el("li", {}, el("a", { href, "aria-current": current === view ? "page" : null }, t(key)));
  byId("nav").replaceChildren(el("ul", {}, link("#/", "nav.status", "overview"), link("#/new", "nav.new", "new")));
}

/** Shows the view of the current fragment. */
async function renderRoute() {
  if (!sessionStorage.getItem(TOKEN_KEY)) return;
  const r = route();
  renderNav(r.view === "wizard" || r.view === "contacts" ? null : r.view);
  if (timer) clearInterval(timer);
  timer = null;
  byId("refresh").hidden = r.view !== "overview";
  byId("updated").textContent = "";
  try {
    if (r.view === "overview") {
      await loadOverview();
      timer = setInterval(() => { if (!document.hidden) loadOverview(); }, REFRESH_MS);
    } else if (r.view === "new") {
      say("", false);
      renderNew();
    } else if (r.view === "wizard") {
      await renderWizard(r.mode, r.id, r.step);
    } else if (r.view === "contacts") {
      await renderContacts(r.id, r.email);
    }
  } catch (e) {
    if (e instanceof Unauthorized) signOut(e.message);
    else byId("view").replaceChildren(errorBox(e), el("p", {}, el("a", { href: "#/" }, t("nav.back_to_status"))));
  }
}

function renderLogin(reason) {
  const token = el("input", { id: "token", name: "token", type: "password", autocomplete: "off", spellcheck: false, required: true });
  const error = el("p", { id: "login-error", class: "error", role: "alert" }, reason || "");
  const form = el("form", { id: "login", onsubmit: (e) => {
    e.preventDefault();
    const value = token.value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    token.value = "";
    signedIn();
  } }, el("h1", {}, t("login.title")), el("p", {}, t("login.intro")), field(t("login.token"), token),
    el("button", { type: "submit", id: "login-submit", class: "primary" }, t("login.submit")), error);
  byId("view").replaceChildren(form);
  token.focus();
}

function signedIn() {
  byId("forget").hidden = false;
  byId("nav").hidden = false;
  renderRoute();
}

function signOut(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (timer) clearInterval(timer);
  timer = null;
  draft = null;
  byId("forget").hidden = true;
  byId("refresh").hidden = true;
  byId("nav").hidden = true;
  byId("updated").textContent = "";
  say("", false);
  renderLogin(reason);
}

/** Fills the page shell's fixed text from the catalogue. */
function shell() {
  document.title = t("app.title");
  byId("app-name").textContent = t("app.name");
  byId("app-subtitle").textContent = t("app.subtitle");
  byId("skip").textContent = t("app.skip");
  byId("refresh").textContent = t("app.refresh");
  byId("forget").textContent = t("app.forget");
  byId("nav").setAttribute("aria-label", t("nav.label"));
  byId("forget").addEventListener("click", () => signOut(""));
  byId("refresh").addEventListener("click", () => loadOverview());
  window.addEventListener("hashchange", () => {
    say(afterNavigation.text, afterNavigation.isError);
    afterNavigation.text = "";
    renderRoute();
  });
}

shell();
if (sessionStorage.getItem(TOKEN_KEY)) signedIn();
else signOut("");
