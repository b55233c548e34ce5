// The requests listing (filters, live updates, the submit form) and the tokens page.
import { api, apiPath } from "./api.js";
import { field, fill, h, pageLink, poll, say, stateBadge, table, when } from "./dom.js";

const JOB_STATES = ["PENDING", "STARTED", "EXECUTING", "COMPLETED", "FAILED", "CANCELLED"];
const SINCE = [
  ["", "Any time"],
  ["3600", "Last hour"],
  ["86400", "Last 24 hours"],
  ["604800", "Last 7 days"],
];
const SCOPES = ["read", "submit", "approve", "admin", "worker"];

function options(pairs, selected) {
  return pairs.map(([value, text]) => h("option", { value, selected: value === selected }, text));
}

async function jobTypes() {
  const answer = await api("api/jobs/definitions", { query: { limit: 100 } });
  return answer.records;
}

function submitForm(definitions, signal) {
  const select = h("select", { required: true }, h("option", { value: "" }, "Choose a job type"), definitions.map((d) => h("option", { value: d.job_type, disabled: d.disabled }, d.job_type + (d.disabled ? " (disabled)" : ""))));
  const paramsBox = h("div", { class: "row" });
  const description = h("input", { type: "text", maxlength: 1000 });
  const form = h(
    "form",
    { class: "panel", "aria-labelledby": "submit-title" },
    h("h2", { id: "submit-title" }, "Submit a job"),
    h("div", { class: "row" }, field("submit-job-type", "Job type", select), field("submit-description", "Description (optional)", description)),
    paramsBox,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Submit")),
  );
  select.addEventListener("change", async () => {
    fill(paramsBox);
    if (!select.value) return;
    const definition = await api(apiPath("jobs", "definitions", select.value));
    if (signal.aborted) return;
    definition.required_params.forEach((name, index) => {
      paramsBox.append(field(`param-${index}`, `${name} (required)`, h("input", { type: "text", required: true, "data-param": name })));
    });
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const params = {};
    for (const input of paramsBox.querySelectorAll("input[data-param]")) params[input.dataset.param] = input.value;
    const body = { job_type: select.value, params };
    if (description.value.trim()) body.description = description.value.trim();
    try {
      const created = await api("api/jobs/requests", { method: "POST", body });
      say(`Submitted ${created.job_type}: request ${created.id}.`);
      location.hash = "#/requests/" + encodeURIComponent(created.id);
    } catch (error) {
      say(error.message, "error");
    }
  });
  return form;
}

export async function requestsPage(_params, signal, main) {
  const jobType = h("select", null, h("option", { value: "" }, "All job types"));
  const jobState = h("select", null, h("option", { value: "" }, "Any state"), JOB_STATES.map((s) => h("option", { value: s }, s)));
  const since = h("select", null, options(SINCE, ""));
  const live = h("p", { class: "live", "aria-live": "off" });
  const results = h("div");
  const submitBox = h("div");
  fill(
    main,
    h("h1", null, "Requests"),
    h(
      "form",
      { class: "row", "aria-label": "Filter requests" },
      field("filter-job-type", "Job type", jobType),
      field("filter-state", "State", jobState),
      field("filter-since", "Created", since),
    ),
    live,
    results,
    submitBox,
  );
  const definitions = await jobTypes().catch(() => []);
  if (signal.aborted) return;
  jobType.append(...definitions.map((d) => h("option", { value: d.job_type }, d.job_type)));
  submitBox.append(submitForm(definitions, signal));
  let refresh = null;
  const load = async () => {
    const answer = await api("api/jobs/requests", { query: { job_type: jobType.value, job_state: jobState.value, limit: 100 } });
    if (signal.aborted) return false;
    const cutoff = since.value ? Date.now() - Number(since.value) * 1000 : null;
    const records = answer.records.filter((r) => cutoff === null || new Date(r.created_at).getTime() >= cutoff);
    fill(
      results,
      records.length
        ? table(
            `${records.length} request${records.length === 1 ? "" : "s"}, newest first`,
            ["Request", "Job type", "State", "Created", "Description"],
            records.map((r) => [pageLink(r.id, "requests", r.id), r.job_type, stateBadge(r.job_state), when(r.created_at), r.description || ""]),
          )
        : h("p", { class: "muted" }, "No requests match."),
    );
    fill(live, `Live: updated ${new Date().toLocaleTimeString()}`);
    return true;
  };
  for (const control of [jobType, jobState, since]) control.addEventListener("change", () => load().catch((e) => say(e.message, "error")));
  refresh = poll(load, 2000, signal);
  return refresh;
}

export async function tokensPage(_params, signal, main) {
  const name = h("input", { type: "text", required: true, maxlength: 64 });
  const days = h("input", { type: "number", min: 1, max: 3650 });
  const scopeBoxes = SCOPES.map((scope) => h("input", { type: "checkbox", value: scope, checked: scope === "read" || scope === "submit" }));
  const created = h("div", { "aria-live": "polite" });
  const list = h("div");
  const form = h(
    "form",
    { class: "panel", "aria-labelledby": "new-token" },
    h("h2", { id: "new-token" }, "Create a token"),
    h("div", { class: "row" }, field("token-name", "Name", name), field("token-days", "Expires in days (optional)", days)),
    h(
      "fieldset",
      null,
      h("legend", null, "Scopes"),
      scopeBoxes.map((box, index) => h("span", null, (box.id = `scope-${index}`, box), " ", h("label", { for: `scope-${index}` }, box.value), "  ")),
    ),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Create token")),
  );
  fill(main, h("h1", null, "Tokens"), created, form, list);
  const load = async () => {
    const answer = await api("api/auth/tokens", { query: { limit: 100 } });
    if (signal.aborted) return;
    fill(
      list,
      table(
        "The organisation's tokens",
        ["Name", "Scopes", "Created", "Expires", "Revoked", ""],
        answer.records.map((t) => [t.name, t.scopes.join(", "), when(t.created_at), when(t.expires_at), when(t.revoked_at), t.revoked_at ? "" : revokeButton(t, load)]),
      ),
    );
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: name.value.trim(), scopes: scopeBoxes.filter((b) => b.checked).map((b) => b.value) };
    if (days.value) body.expires_in_days = Number(days.value);
    try {
      const token = await api("api/auth/tokens", { method: "POST", body });
      const secret = h("input", { type: "text", readonly: true, class: "secret", value: token.token });
      fill(
        created,
        h(
          "div",
          { class: "panel", role: "region", "aria-labelledby": "token-once" },
          h("h2", { id: "token-once" }, `Token "${token.name}" created`),
          field("token-secret", "Copy it now: it is shown only once", secret),
        ),
      );
      secret.select();
      form.reset();
      await load();
    } catch (error) {
      say(error.message, "error");
    }
  });
  await load();
}

function revokeButton(token, reload) {
  // Two steps instead of window.confirm (which blocks the page and is hard to reach by keyboard in some readers).
  const button = h("button", { type: "button", class: "quiet", "aria-label": `Revoke ${token.name}` }, "Revoke");
  button.addEventListener("click", async () => {
    if (!button.dataset.armed) {
      button.dataset.armed = "1";
      button.className = "danger";
      button.textContent = "Confirm revoke";
      button.setAttribute("aria-label", `Confirm revoking ${token.name}`);
      return;
    }
    try {
      await api(apiPath("auth", "tokens", token.id), { method: "DELETE" });
      say(`Token "${token.name}" revoked.`);
      await reload();
    } catch (error) {
      say(error.message, "error");
    }
  });
  return button;
}
