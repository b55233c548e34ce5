// The dashboard's router: one page per fragment (#/requests, #/requests/<id>, #/definitions,
// #/definitions/<job_type>, #/tokens, #/signin). Each page gets an AbortSignal that ends its polling
// when the user moves on.
import { api, signIn, signOut, token } from "./api.js";
import { clearStatus, field, fill, h, say } from "./dom.js";
import { definitionPage, definitionsPage } from "./definitions.js";
import { requestsPage, tokensPage } from "./pages.js";
import { requestPage } from "./request.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const signOutButton = document.getElementById("sign-out");
let current = null;

function signInPage(_params, signal) {
  const input = h("input", { type: "password", autocomplete: "off", spellcheck: "false", required: true, "aria-describedby": "token-help" });
  const error = h("p", { class: "alert", role: "alert", hidden: true });
  const form = h(
    "form",
    { class: "panel", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in"),
    field("token", "API token", input),
    h("p", { id: "token-help", class: "muted" }, "The token stays in this browser tab (session storage) until you sign out or close the tab."),
    error,
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    signIn(input.value.trim());
    try {
      await api("api/jobs/requests", { query: { limit: 1 } });
    } catch (failure) {
      if (signal.aborted) return;
      signOut();
      fill(error, failure.status === 401 ? "That token was refused: it is unknown, expired or revoked." : failure.message);
      error.hidden = false;
      input.focus();
      return;
    }
    location.hash = "#/requests";
  });
  fill(main, form);
  input.focus();
}

const ROUTES = [
  [/^#\/signin$/, signInPage],
  [/^#\/requests\/([^/?]+)$/, requestPage],
  [/^#\/(?:requests)?(?:\?.*)?$/, requestsPage],
  [/^#\/definitions$/, definitionsPage],
  [/^#\/definitions\/([^/?]+)(?:\?version=(\d+))?$/, definitionPage],
  [/^#\/tokens$/, tokensPage],
];

function render() {
  if (current) current.abort();
  current = new AbortController();
  clearStatus();
  let hash = location.hash || "#/requests";
  if (hash === "#" || hash === "#/") hash = "#/requests";
  const signedIn = Boolean(token());
  nav.hidden = !signedIn;
  signOutButton.hidden = !signedIn;
  if (!signedIn && hash !== "#/signin") {
    location.hash = "#/signin";
    return;
  }
  for (const link of nav.querySelectorAll("a")) {
    const active = hash.startsWith(link.getAttribute("href"));
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  for (const [pattern, page] of ROUTES) {
    const match = pattern.exec(hash);
    if (match) {
      const params = match.slice(1).map((value) => (value === undefined ? undefined : decodeURIComponent(value)));
      fill(main);
      Promise.resolve(page(params, current.signal, main)).catch((error) => say(error.message, "error"));
      main.focus({ preventScroll: true });
      return;
    }
  }
  fill(main, h("h1", null, "Not found"), h("p", null, "No such page. "), h("a", { href: "#/requests" }, "Requests"));
}

signOutButton.addEventListener("click", () => {
  signOut();
  location.hash = "#/signin";
  render();
});
window.addEventListener("formica:signed-out", () => {
  say("Your token was refused (expired or revoked): sign in again.", "error");
  location.hash = "#/signin";
});
window.addEventListener("hashchange", render);
render();
